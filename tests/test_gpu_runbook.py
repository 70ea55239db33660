"""The GPU runbook's script (benchmarks/gpu_train.py) runs a preset's steps end to end: train, evaluate, probe
(CPU dry run), and keeps the trained model folder."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_script_dry_run_trains_evaluates_and_probes(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "gpu_train.py"),
            "--dry-run",
            "--json",
            str(tmp_path / "fig.json"),
            "--out",
            str(tmp_path / "model"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert re.search(r"GPT2-2-2 n_ctx 256 batch 4 \(micro 2\) on cpu: [\d,]+ tokens/s, final loss \d", text)
    assert re.search(r"data: one process makes [\d,]+ problems/s", text)
    for test_set in ("test_id", "test_seen", "test_op4", "test_op5", "test_op6", "test_reask"):
        assert re.search(rf"eval {test_set} op all: fully correct \d+\.\d%.*answers \d+\.\d%, n=8", text)
    for task in ("nece", "known"):
        for name in ("vprobe", "random_init"):  # the tiny preset's baselines
            for test_set in ("test_id", "test_seen"):
                assert re.search(
                    rf"probe {task} layer -1 {name} on {test_set}: accuracy \d+\.\d% \(majority \d+\.\d%\), "
                    r"MCC .*n=\d+",
                    text,
                )
    fig = json.loads((tmp_path / "fig.json").read_text())
    assert fig["family"] == "tiny" and fig["tokens_seen"] == 4 * 4 * 256 and len(fig["history"]) == 2
    assert {a["test_set"] for a in fig["accuracy"]} >= {"test_id", "test_seen", "test_op4"}
    assert {(p["task"], p["baseline"], p["test_set"]) for p in fig["probes"]} == {
        (t, m, s) for t in ("nece", "known") for m in ("vprobe", "random_init") for s in ("test_id", "test_seen")
    }
    # the kept model folder loads with transformers (the Canon model type registered by importing physlm's) and
    # with physlm's tokenizer
    from transformers import AutoModelForCausalLM

    import physlm.model.canon  # noqa: F401
    from physlm.model.tokenizer import load

    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "model")).config.num_hidden_layers == 2
    # ... and it is a pretrained folder: its card names the train step and carries the evaluation's accuracy
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    (trained,) = [d for d in os.listdir(tmp_path / "physlm-gpu" / "train") if not d.startswith(".")]
    assert card["train_step"] == f"train-{trained}" and card["checkpoint"]["step"] == 4
    assert {a["test_set"] for a in card["accuracy"]} == {a["test_set"] for a in fig["accuracy"]}
    assert load(str(tmp_path / "model")).vocab_size > 1000


def test_gpu_script_rejects_a_bad_override_before_any_work(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "gpu_train.py"),
            "--dry-run",
            "--set",
            "probe.tasks=nece,bogus",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode != 0 and "probe.tasks: distinct values among" in out.stderr and "bogus" in out.stderr
    assert "tokens/s" not in out.stdout and not os.path.exists(tmp_path / "physlm-gpu")
