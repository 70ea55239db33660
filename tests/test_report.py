"""The report end to end on a synthetic warehouse: every canned query, the analyze step and `physlm report`,
checked in headless Chromium (every <img> decoded with naturalWidth > 0).

The fixture root is built by WRITING small Parquet files with the real schemas (evaluate.GENERATIONS via
evaluate.write_results, the schemas of physlm.tables, the checkpoint registry) into finished
step folders (`_SUCCESS`), with values chosen so that each query's answer is known (see test_analysis.py).
"""

import base64
import os
import re
import shutil
import subprocess
import sys

import pytest

from physlm import tables
from physlm.config import QUERIES
from physlm.store import storage

CKPT = "c0ffee0000000001"
MODEL = "GPT2-4-4"
EVAL_HASH, PROBE_HASH, PROBE_HASH2, SWEEP_HASH = "e0000001", "b0000001", "b0000003", "5e000001"
TASKS = ("nece", "dep", "known", "value", "can_next", "nece_next")


# ---------------------------------------------------------------------------------------------------------
# The fixture warehouse


def _gen(pid, test_set, op, decoding, correct, unnecessary=(), first_wrong=None, output=" Define A as a; so a = 1."):
    return {
        "checkpoint_id": CKPT,
        "problem_id": pid,
        "test_set": test_set,
        "op": op,
        "decoding": decoding,
        "output": output,
        "correct": correct,
        "answer_correct": correct,
        "n_unnecessary": len(unnecessary),
        "unnecessary": list(unnecessary),
        "first_wrong_param": first_wrong,
        "error": None if correct else "wrong_value",
        "errors": [] if correct else ["wrong_value"],
        "n_tokens": 20,
        "ended": True,
        "answer": "1",
        "true_answer": 1,
    }


def generations() -> list[dict]:
    rows = []
    # test_id: ops 1..3, 4 problems each; greedy: all correct except one at op 3; beam4: all correct
    for op in (1, 2, 3):
        for i in range(4):
            pid, wrong = f"id-{op}-{i}", op == 3 and i == 0
            if wrong:  # first wrong parameter B after one sentence
                rows.append(
                    _gen(
                        pid,
                        "test_id",
                        op,
                        "greedy",
                        False,
                        first_wrong="B",
                        output=" Define A as a; so a = 1. Define B as b; so b = 2.",
                    )
                )
            else:
                rows.append(_gen(pid, "test_id", op, "greedy", True))
            rows.append(_gen(pid, "test_id", op, "beam4", True))
    # test_op7 (OOD): 4 problems, 2 correct (greedy); the wrong ones feed E8
    rows.append(_gen("ood-0", "test_op7", 7, "greedy", True))
    rows.append(_gen("ood-1", "test_op7", 7, "greedy", True))
    # w0: first wrong W after 1 sentence (exact state 1)
    rows.append(
        _gen(
            "ood-2",
            "test_op7",
            7,
            "greedy",
            False,
            first_wrong="W",
            output=" Define A as a; so a = 1. Define W as w; so w = 5.",
        )
    )
    # w1: first wrong W after 2 sentences, one of them unnecessary (U9): approximate state 2 - 1 = 1
    rows.append(
        _gen(
            "ood-3",
            "test_op7",
            7,
            "greedy",
            False,
            unnecessary=["U9"],
            first_wrong="W",
            output=" Define A as a; so a = 1. Define U9 as u; so u = 3. Define W as w; so w = 5.",
        )
    )
    # test_reask (op 7): correct with unnecessary params (E3, E7)
    rows.append(_gen("re-0", "test_reask", 7, "greedy", True, unnecessary=["U1", "U2"]))
    rows.append(_gen("re-1", "test_reask", 7, "greedy", True, unnecessary=["U3"]))
    rows.append(_gen("re-2", "test_reask", 7, "greedy", True))
    rows.append(_gen("re-3", "test_reask", 7, "greedy", False, first_wrong="Z", output=" Define Z as z; so z = 0."))
    return rows


def _pred(
    task,
    pid,
    a,
    state,
    label,
    prediction,
    layer=-1,
    baseline="vprobe",
    necessary=True,
    distance=1,
    source="probe_test",
    test_set="test_id",
):
    return {
        "checkpoint_id": CKPT,
        "test_set": test_set,
        "task": task,
        "layer": layer,
        "baseline": baseline,
        "problem_id": pid,
        "state": state,
        "param_a": a,
        "param_b": "B" if task == "dep" else None,
        "param_a_necessary": necessary,
        "distance": distance if necessary else -1,
        "label": label,
        "prediction": prediction,
        "probability": 0.9 if prediction else 0.1,
        "source": source,
    }


def predictions_e7() -> list[dict]:
    """nece for the unnecessary A of correct reask solutions: U1 true, U2 false, U3 true -> 2/3. Written
    WITHOUT the probe stage's `source` and `test_set` columns (an older probe step): the view must still expose
    them."""
    return [
        _pred("nece", "re-0", "U1", 0, 0, 1, necessary=False, test_set="test_reask"),
        _pred("nece", "re-0", "U2", 0, 0, 0, necessary=False, test_set="test_reask"),
        _pred("nece", "re-1", "U3", 0, 0, 1, necessary=False, test_set="test_reask"),
        _pred("nece", "re-1", "U3", 0, 0, 1, layer=0, necessary=False, test_set="test_reask"),
    ]  # another layer: ignored


def predictions_e8() -> list[dict]:
    """can_next(W) = false: ood-2 probed at the model's own prefix (exact state 1, probe false; the gold
    sample at the same state says true and must not win); ood-3 only from a gold sample at k - u = 1."""
    return [
        _pred("can_next", "ood-2", "W", 1, 0, 0, source="first_wrong"),
        _pred("can_next", "ood-2", "W", 1, 0, 1),
        _pred("can_next", "ood-3", "W", 1, 0, 1),
        _pred("can_next", "ood-3", "W", 0, 0, 0),  # another state: not matched
        _pred("nece_next", "ood-2", "W", 1, 0, 0, source="first_wrong"),
        _pred("can_next", "ood-2", "W", 1, 0, 1, baseline="random_init", source="first_wrong"),
    ]  # ignored


def metrics() -> list[dict]:
    """E4-E6 rows on test_id for every task, and on test_seen for nece (its own accuracies)."""
    rows = []
    base = {"checkpoint_id": CKPT, "mcc": 0.5, "test_set": "test_id"}
    for task in TASKS:
        for baseline, acc in (("vprobe", 0.95), ("random_init", 0.6)):
            for slice_, n, maj in (
                ("all", 100, 0.8),
                ("positive", 20, 0.0),
                ("negative", 80, 1.0),
                ("unnecessary", 30, 0.9),
            ):
                rows.append(
                    {
                        **base,
                        "task": task,
                        "layer": -1,
                        "baseline": baseline,
                        "slice": slice_,
                        "n": n,
                        "accuracy": acc if slice_ != "positive" else acc - 0.1,
                        "majority_accuracy": maj,
                    }
                )
    for baseline, acc, mcc in (("vprobe", 0.9, 0.7), ("random_init", 0.7, 0.1)):
        rows.append(
            {
                **base,
                "test_set": "test_seen",
                "task": "nece",
                "layer": -1,
                "baseline": baseline,
                "slice": "all",
                "n": 50,
                "accuracy": acc,
                "mcc": mcc,
                "majority_accuracy": 0.7,
            }
        )
    return rows


def metrics_e10() -> list[dict]:
    """E10: nece per layer x distance: accuracy falls with t, rises with depth. Written WITHOUT `test_set` (an
    older probe step): the view reads them as test_id's."""
    rows = []
    base = {"checkpoint_id": CKPT, "mcc": 0.5}
    for layer in (0, 1, 2, 3, -1):
        depth = 4 if layer == -1 else layer
        for t in range(1, 9):
            rows.append(
                {
                    **base,
                    "task": "nece",
                    "layer": layer,
                    "baseline": "vprobe",
                    "slice": f"t={t}",
                    "n": 10,
                    "accuracy": min(1.0, 0.5 + 0.1 * depth + 0.3 / t),
                    "majority_accuracy": 0.5,
                }
            )
    return rows


def sweep() -> list[dict]:
    rows = []
    for n_layer, n_head in ((4, 4), (4, 8), (8, 4), (8, 8)):
        for seed in (0, 1):
            for test_set in ("test_op7", "test_reask"):
                for decoding in ("greedy", "beam4"):
                    acc = 0.1 * n_layer + 0.01 * n_head + 0.01 * seed + (0.005 if decoding == "beam4" else 0)
                    rows.append(
                        {
                            "sweep_id": "s1",
                            "cell": f"GPT2-{n_layer}-{n_head}/{test_set}",
                            "model": f"GPT2-{n_layer}-{n_head}",
                            "n_layer": n_layer,
                            "n_head": n_head,
                            "width": 64 * n_head,
                            "params": n_layer * n_head * 1000,
                            "seed": seed,
                            "test_set": test_set,
                            "decoding": decoding,
                            "accuracy": acc,
                            "n": 10,
                            "best": False,
                        }
                    )
    for r in rows:  # mark the best row of each (model, test set)
        r["best"] = r["accuracy"] == max(
            x["accuracy"] for x in rows if (x["model"], x["test_set"]) == (r["model"], r["test_set"])
        )
    return rows


def write_fixture(root: str) -> None:
    """A warehouse with one finished evaluate, probe and sweep step and one registered checkpoint."""
    import pyarrow as pa

    from physlm.stages import evaluate
    from physlm.store import registry

    def finish(folder):
        storage.write_bytes(storage.join(folder, "_SUCCESS"), b"")

    ev = storage.join(root, "evaluate", EVAL_HASH)
    evaluate.write_results(generations(), ev)
    finish(ev)
    pr = storage.join(root, "probe", PROBE_HASH)
    storage.write_parquet(
        tables.table(predictions_e8(), tables.PROBE_PREDICTIONS), storage.join(pr, "probe_predictions.parquet")
    )
    storage.write_parquet(tables.table(metrics(), tables.PROBE_METRICS), storage.join(pr, "probe_metrics.parquet"))
    finish(pr)
    pr2 = storage.join(root, "probe", PROBE_HASH2)
    older = pa.schema([f for f in tables.PROBE_PREDICTIONS if f.name not in ("source", "test_set")])
    storage.write_parquet(tables.table(predictions_e7(), older), storage.join(pr2, "probe_predictions.parquet"))
    older = pa.schema([f for f in tables.PROBE_METRICS if f.name != "test_set"])
    storage.write_parquet(tables.table(metrics_e10(), older), storage.join(pr2, "probe_metrics.parquet"))
    finish(pr2)
    sw = storage.join(root, "sweep", SWEEP_HASH)
    storage.write_parquet(pa.Table.from_pylist(sweep(), schema=tables.SWEEP), storage.join(sw, "sweep.parquet"))
    finish(sw)
    # an unfinished probe step must stay invisible
    storage.write_parquet(
        tables.table(metrics(), tables.PROBE_METRICS), storage.join(root, "probe", "b0000002", "probe_metrics.parquet")
    )
    registry.register(
        {
            "checkpoint_id": CKPT,
            "model": MODEL,
            "n_layer": 4,
            "n_head": 4,
            "width": 256,
            "params": 10_000,
            "non_embedding_params": 8_000,
            "data_hash": "d0000001",
            "train_hash": "a0000001",
            "step": 100,
            "tokens_seen": 1000,
            "loss": 0.5,
            "final": True,
            "path": "x/meta_000100.json",
            "created_at": None,
        },
        root,
    )


@pytest.fixture
def root(root):
    write_fixture(root)
    return root


# ---------------------------------------------------------------------------------------------------------
# The report


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_has_every_section_with_a_valid_plot(root, tmp_path):
    import io

    import matplotlib.image as mpimg

    from physlm.sql.report import build_report

    url = build_report(str(tmp_path / "out"))
    page = open(url, encoding="utf-8").read()
    for name in (*QUERIES, "training_curves"):
        assert f'<section id="{name}">' in page
    assert "no data yet" not in page and "plot failed" not in page
    images = _images(page)
    assert len(images) == len(QUERIES) + 1  # the training curves first, then one plot per paper figure
    for png in images:
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        h, w = mpimg.imread(io.BytesIO(png)).shape[:2]
        assert h > 50 and w > 50
    assert page.count("<b>Paper:</b>") == len(QUERIES) + 1
    assert "GPT2-4-4 (train a0000001): loss 0.500 -&gt; 0.500 over 1,000 tokens, 1 checkpoints" in page
    assert "GPT2-4-4 (train a0000001) at 1,000 tokens: test_id fully correct 91.7%" in page
    assert "GPT2-4-4 greedy: test_id 91.7%" in page  # 11 of 12 in distribution (the fixture)
    assert "GPT2-4-4 greedy test_id by op: op 1 100.0% (n=4); op 2 100.0% (n=4); op 3 75.0% (n=4)" in page
    assert "test_op7 by op" not in page and "test_reask by op" not in page  # one op each: no by-op line
    assert "about 80% at the largest out-of-distribution op" in page  # the paper's finding beside it
    assert "GPT2-4-4 on test_id (probe step b0000001): nece 95.0% vs random-init 60.0%" in page  # E4 names its step


def test_report_on_an_empty_root_says_no_data_yet(tmp_path, monkeypatch):
    from physlm.sql.report import build_report

    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "empty"))
    page = open(build_report(str(tmp_path / "out")), encoding="utf-8").read()
    assert page.count("no data yet") == len(QUERIES) + 1
    assert _images(page) == []


def _chromium() -> str | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600)
        exe = shutil.which("chromium")
    return exe


CHECK_JS = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length;
  const out = document.createElement('pre');
  out.id = 'img-check';
  out.textContent = 'IMAGES ' + imgs.length + ' LOADED ' + ok;
  document.body.appendChild(out);
});
</script>"""


def test_cli_report_renders_in_headless_chromium(root, tmp_path):

    out = tmp_path / "report"
    r = subprocess.run(
        [sys.executable, "-m", "flows", "report", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert r.returncode == 0, r.stderr
    index = out / "index.html"
    assert r.stdout.strip() == str(index)
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium and it cannot be installed here (apt-get missing or not root)")
    # a copy with a script that counts the decoded images once the page has loaded
    probe_page = tmp_path / "check.html"
    probe_page.write_text(index.read_text(encoding="utf-8").replace("</body>", CHECK_JS + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probe_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    m = re.search(r"IMAGES (\d+) LOADED (\d+)", dom.stdout)
    assert m, f"chromium printed no image check: {dom.stderr[-2000:]}"
    n = len(QUERIES) + 1
    assert (int(m.group(1)), int(m.group(2))) == (n, n)
