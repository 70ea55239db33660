"""Canned queries (one per paper figure), the analyze step and `physlm sql --query`, on the synthetic
warehouse of test_report.py (values chosen so each answer is known), on an empty root and on S3 (moto)."""

import os
import re
import subprocess
import sys
from importlib import resources

import pyarrow.parquet as pq
import pytest
from test_report import CKPT, MODEL, root, write_fixture  # noqa: F401  (root: the shared fixture)

from physlm.config import QUERIES
from physlm.sql.queries import describe, run_queries, run_query
from physlm.sql.warehouse import QueryError
from physlm.stages import analyze as analysis
from physlm.stages.analyze import analyze_step, run_analyze
from physlm.store import storage

PHYSLM = [sys.executable, "-m", "flows"]


def documented_columns(name: str) -> list[str]:
    """The "Columns:" list of a query's header comment (parenthesised notes dropped)."""
    text = describe(name)
    cols = re.sub(r"\([^)]*\)", "", text.split("Columns:", 1)[1])
    return [c.strip().rstrip(".").strip() for c in cols.replace("\n", " ").split(",") if c.strip()]


def rows_of(name: str, **where) -> list[dict]:
    return [r for r in run_query(name).to_pylist() if all(r[k] == v for k, v in where.items())]


# ---------------------------------------------------------------------------------------------------------
# The query files and their contracts


def test_one_sql_file_per_query_with_a_header():
    files = {
        p.name[:-4] for p in resources.files("physlm.sql").joinpath("queries").iterdir() if p.name.endswith(".sql")
    }
    assert files == set(QUERIES) | {"training_curves"}  # the report's curves: a query, but no paper figure
    for name in QUERIES:
        head = describe(name)
        assert head.startswith(name) and re.search(r"E\d+, paper Fig", head) and "Paper:" in head, name
        assert "Columns:" in head, name


def test_every_query_runs_on_an_empty_root_with_its_documented_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "empty"))
    for name, table in run_queries().items():
        assert table.num_rows == 0, name
        assert table.column_names == documented_columns(name), name


def test_unknown_query_lists_the_known_ones(root):
    with pytest.raises(QueryError, match="unknown query 'nope'; known: accuracy_by_op, unnecessary"):
        run_query("nope")


# ---------------------------------------------------------------------------------------------------------
# Values on the fixture


def test_every_query_has_rows_with_the_documented_columns(root):
    for name, table in run_queries().items():
        assert table.num_rows > 0, name
        assert table.column_names == documented_columns(name), name


def test_accuracy_by_op_with_wilson_ci(root):
    (r,) = rows_of("accuracy_by_op", test_set="test_id", op=-1, decoding="greedy")
    assert (r["model"], r["n"], r["correct"]) == (MODEL, 12, 11)  # model from the checkpoint registry
    assert r["accuracy"] == pytest.approx(11 / 12)
    assert r["ci_low"] == pytest.approx(0.6461, abs=1e-3) and r["ci_high"] == pytest.approx(0.9851, abs=1e-3)
    from physlm.model.scoring import wilson

    for x in run_query("accuracy_by_op").to_pylist():  # the SQL macro is Python's interval, to the last bit
        assert (x["ci_low"], x["ci_high"]) == wilson(x["correct"], x["n"])
    assert [x["accuracy"] for x in rows_of("accuracy_by_op", test_set="test_id", decoding="greedy")] == pytest.approx(
        [11 / 12, 1, 1, 0.75]
    )  # pooled first, then op 1..3
    (ood,) = rows_of("accuracy_by_op", test_set="test_op7", op=7)
    assert ood["accuracy"] == 0.5


def test_unnecessary_counts_correct_solutions_only(root):
    (r,) = rows_of("unnecessary", test_set="test_reask", op=-1, decoding="greedy")
    assert (r["n_correct"], r["mean_unnecessary"], r["max_unnecessary"]) == (3, 1.0, 2)  # (2 + 1 + 0) / 3
    assert r["share_with_unnecessary"] == pytest.approx(2 / 3)
    assert all(x["mean_unnecessary"] == 0 for x in rows_of("unnecessary", test_set="test_id"))


def test_probe_tables_put_baselines_side_by_side(root):
    acc = rows_of("probe_accuracy", test_set="test_id")
    assert [r["task"] for r in acc] == ["nece", "dep", "known", "value", "can_next", "nece_next"]
    assert all((r["vprobe"], r["random_init"], r["majority"], r["n"]) == (0.95, 0.6, 0.8, 100) for r in acc)
    assert all(r["linear"] is None for r in acc)  # no linear baseline in the fixture
    (seen,) = rows_of("probe_accuracy", test_set="test_seen")  # each test set its own row
    assert (seen["task"], seen["vprobe"], seen["random_init"], seen["n"]) == ("nece", 0.9, 0.7, 50)
    assert (seen["vprobe_mcc"], seen["random_init_mcc"]) == (0.7, 0.1)
    assert [r["test_set"] for r in run_query("probe_accuracy").to_pylist()] == ["test_id"] * 6 + ["test_seen"]
    unn = run_query("probe_unnecessary").to_pylist()
    assert sorted(r["task"] for r in unn) == ["can_next", "dep"] and all(r["n"] == 30 for r in unn)
    by_label = run_query("probe_by_label").to_pylist()
    assert [(r["task"], r["label"], round(r["vprobe"], 6)) for r in by_label] == [
        ("dep", "positive", 0.85),
        ("dep", "negative", 0.95),
        ("nece_next", "positive", 0.85),
        ("nece_next", "negative", 0.95),
    ]


def test_error_unnecessary_plan_joins_unnested_params_with_the_nece_probe(root):
    (r,) = run_query("error_unnecessary_plan").to_pylist()
    # re-0: U1 (probe true), U2 (false); re-1: U3 (true); the layer-0 row is not the paper's probe site
    assert (r["test_set"], r["n_solutions"], r["n_unnecessary"], r["n_probed"], r["n_probe_true"]) == (
        "test_reask",
        2,
        3,
        3,
        2,
    )
    assert r["share_probe_true"] == pytest.approx(2 / 3) and 0 < r["ci_low"] < 2 / 3 < r["ci_high"] < 1


def test_error_not_ready_matches_the_state_before_the_wrong_sentence(root):
    (can,) = rows_of("error_not_ready", task="can_next", test_set="all")
    # 4 wrong greedy solutions; ood-2 matched at its exact state 1 (probe false), ood-3 at 2 - 1 unnecessary
    # sentence = state 1 (probe true); the state-0 row and the random_init row never match
    assert (can["n_wrong"], can["n_located"], can["n_matched"], can["n_exact_state"], can["n_probe_false"]) == (
        4,
        4,
        2,
        1,
        1,
    )
    assert can["share_probe_false"] == 0.5
    (nn,) = rows_of("error_not_ready", task="nece_next", test_set="all")
    assert (nn["n_matched"], nn["share_probe_false"]) == (1, 1.0)
    (none,) = rows_of("error_not_ready", task="can_next", test_set="test_reask")
    assert none["n_matched"] == 0 and none["share_probe_false"] is None and none["ci_low"] is None


def test_depth_width_takes_the_best_of_seeds_and_decodings(root):
    rows = rows_of("depth_width", test_set="test_op7")
    assert [(r["n_layer"], r["width"]) for r in rows] == [(4, 256), (4, 512), (8, 256), (8, 512)]
    best = {r["model"]: r for r in rows}["GPT2-8-4"]
    assert best["best_accuracy"] == pytest.approx(0.8 + 0.04 + 0.01 + 0.005)
    assert (best["best_seed"], best["best_decoding"], best["n_runs"]) == (1, "beam4", 4)


def test_layer_distance_grid(root):
    rows = run_query("layer_distance").to_pylist()
    assert len(rows) == 5 * 8 and {r["t"] for r in rows} == set(range(1, 9))
    assert {r["test_set"] for r in rows} == {"test_id"}  # written without test_set: the only set probes had
    assert [r["layer"] for r in rows[::8]] == [0, 1, 2, 3, -1]  # blocks in order, the final LN last
    grid = {(r["layer"], r["t"]): r["accuracy"] for r in rows}
    assert grid[(0, 1)] > grid[(0, 8)] and grid[(3, 8)] > grid[(0, 8)]


def test_probe_views_read_steps_written_before_test_set(root):
    from physlm.sql.warehouse import query

    rows = query("select source, test_set, count(*) n from probe_predictions group by all order by all").to_pylist()
    # the older step's rows (no source, no test_set) stay unknown; the newer step's rows keep their own
    assert [(r["source"], r["test_set"]) for r in rows] == [
        ("first_wrong", "test_id"),
        ("probe_test", "test_id"),
        (None, None),
    ]


def test_the_unfinished_probe_step_is_invisible(root):
    assert {r["n"] for r in rows_of("probe_accuracy", test_set="test_id")} == {100}  # not 200


def _probe_step(root: str, h: str, ended_at: str, nece_accuracy: float, flip: bool) -> None:
    """A finished probe step of the fixture's checkpoint with a step.json: E4-E6 rows whose nece V-probe
    accuracy is `nece_accuracy` (mcc alike), and E7's and E8's rows in today's schema, every prediction flipped
    if `flip`."""
    from test_report import metrics, predictions_e7, predictions_e8

    from physlm import tables

    folder = storage.join(root, "probe", h)
    rows = [
        {**r, "accuracy": nece_accuracy, "mcc": nece_accuracy}
        if (r["task"], r["baseline"], r["slice"]) == ("nece", "vprobe", "all")
        else r
        for r in metrics()
    ]
    e7 = [{**p, "source": "reask_all_params"} for p in predictions_e7()]
    preds = [{**p, "prediction": 1 - p["prediction"]} if flip else p for p in predictions_e8() + e7]
    storage.write_parquet(tables.table(rows, tables.PROBE_METRICS), storage.join(folder, "probe_metrics.parquet"))
    storage.write_parquet(
        tables.table(preds, tables.PROBE_PREDICTIONS), storage.join(folder, "probe_predictions.parquet")
    )
    storage.write_json(storage.join(folder, "step.json"), {"ended_at": ended_at})
    storage.write_bytes(storage.join(folder, "_SUCCESS"), b"")


def test_the_newest_probe_step_of_a_checkpoint_replaces_the_older_ones(root):
    from physlm.sql.warehouse import query

    # the step that ended last wins, whatever its hash; the fixture's steps (no step.json) count as oldest
    _probe_step(root, "b0000009", "2026-12-03T10:00:00+00:00", 0.4, flip=True)
    _probe_step(root, "b000000f", "2026-12-01T10:00:00+00:00", 0.1, flip=False)
    acc = rows_of("probe_accuracy", test_set="test_id")
    assert [(r["task"], r["n"]) for r in acc][:2] == [("nece", 100), ("dep", 100)]  # one step's rows, not pooled
    assert (acc[0]["vprobe"], acc[0]["vprobe_mcc"], acc[0]["random_init"]) == (0.4, 0.4, 0.6)
    assert {r["probe_step"] for r in acc} == {"b0000009"}  # each row names the step it comes from
    assert {r["n"] for r in run_query("probe_unnecessary").to_pylist()} == {30}
    for name in ("probe_unnecessary", "probe_by_label"):
        assert {r["probe_step"] for r in run_query(name).to_pylist()} == {"b0000009"}
    (nn,) = rows_of("error_not_ready", task="nece_next", test_set="all")
    assert (nn["n_matched"], nn["share_probe_false"]) == (1, 0.0)  # the newest step's flipped prediction
    # E7: the newest step's rows (U1 false, U2 true, U3 false), not pooled with the fixture's older step's rows,
    # which have no source and no test_set
    (e7,) = run_query("error_unnecessary_plan").to_pylist()
    assert (e7["n_probed"], e7["n_probe_true"]) == (3, 1)
    assert len(run_query("layer_distance").to_pylist()) == 5 * 8  # E10's grid: only the fixture's older step
    # the views keep every step's rows, marked
    rows = query("select step, ended_at, bool_and(latest) l, bool_or(latest) a from probe_metrics group by all")
    by_step = {r["step"]: (r["ended_at"], r["l"], r["a"]) for r in rows.to_pylist()}
    assert by_step["b0000009"] == ("2026-12-03T10:00:00+00:00", True, True)
    assert by_step["b000000f"] == ("2026-12-01T10:00:00+00:00", False, False)
    assert by_step["b0000001"] == (None, False, False) and by_step["b0000003"] == (None, True, True)
    # an analyze step reports its own probe input where the checkpoint was probed more than once
    old = run_queries(("probe_accuracy", "error_unnecessary_plan"), prefer_probes=("b000000f",))
    assert old["probe_accuracy"].to_pylist()[0]["vprobe"] == 0.1
    assert old["error_unnecessary_plan"].to_pylist()[0]["n_probe_true"] == 2
    step = analyze_step({"evaluate": "evaluate-e0000001", "probe": "probe-b000000f"})
    table = pq.read_table(os.path.join(analysis.run(step), "probe_accuracy.parquet")).to_pylist()
    assert table[0]["task"] == "nece" and table[0]["vprobe"] == 0.1


def test_a_probe_step_json_that_cannot_be_read_counts_as_written_by_hand(root):
    for h, text in (("b000000a", "[1, 2]"), ("b000000b", '{"ended_at": 5}'), ("b000000c", "{not json")):
        _probe_step(root, h, "2026-12-02T10:00:00+00:00", 0.2, flip=False)
        storage.write_bytes(storage.join(root, "probe", h, "step.json"), text.encode())
    assert rows_of("probe_accuracy", test_set="test_id")[0]["vprobe"] == 0.2  # b000000c: the last hash


# ---------------------------------------------------------------------------------------------------------
# The analyze step


def test_run_analyze_writes_parquet_and_markdown(root, tmp_path):
    out = str(tmp_path / "analysis")
    counts = run_analyze(out)
    assert set(counts) == set(QUERIES) and all(n > 0 for n in counts.values())
    for name in QUERIES:
        assert pq.read_table(os.path.join(out, f"{name}.parquet")).num_rows == counts[name]
        md = open(os.path.join(out, f"{name}.md"), encoding="utf-8").read()
        assert md.startswith(f"# {name}") and "| model |" in md
    assert CKPT in open(os.path.join(out, "accuracy_by_op.md"), encoding="utf-8").read()


def test_run_analyze_on_an_empty_root_writes_empty_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "empty"))
    out = str(tmp_path / "analysis")
    assert set(run_analyze(out).values()) == {0}
    for name in QUERIES:
        assert pq.read_table(os.path.join(out, f"{name}.parquet")).column_names == documented_columns(name)
        assert "no data yet" in open(os.path.join(out, f"{name}.md"), encoding="utf-8").read()


def test_analyze_step_identity(root, tmp_path):
    ids = {"evaluate": "evaluate-e0000001", "probe": "probe-b0000001"}
    step = analyze_step(ids)
    assert step.name == "analyze" and step.config.queries == QUERIES
    assert step.inputs == {"evaluate": f"{root}/evaluate/e0000001", "probe": f"{root}/probe/b0000001"}
    assert analyze_step({"probe": f"{root}/probe/b0000001", "evaluate": f"{root}/evaluate/e0000001"}).hash == step.hash
    assert analyze_step({"evaluate": "evaluate-e0000001"}).hash != step.hash
    assert analyze_step({**ids, "evaluate": "evaluate-e0000002"}).hash != step.hash
    # the hash sees inputs relative to the root: the same ids under another root hash the same
    other = str(tmp_path / "elsewhere")
    assert analyze_step(ids, root=other).path(other).endswith(f"/analyze/{step.hash}")
    with pytest.raises(ValueError, match="expected a step id"):
        analyze_step({"evaluate": "nohash"})


def test_run_analyze_step_is_cached_by_its_folder(root):
    step = analyze_step({"evaluate": "evaluate-e0000001", "probe": "probe-b0000001"})
    path = analysis.run(step)
    assert path == f"{root}/analyze/{step.hash}" and storage.exists(f"{path}/_SUCCESS")
    assert sorted(os.listdir(path)) == sorted(
        ["_SUCCESS", "step.json"] + [f"{n}.{e}" for n in QUERIES for e in ("parquet", "md")]
    )
    mtime = os.path.getmtime(f"{path}/_SUCCESS")
    assert analysis.run(step) == path and os.path.getmtime(f"{path}/_SUCCESS") == mtime


# ---------------------------------------------------------------------------------------------------------
# The command line


def test_cli_sql_query(root):
    out = subprocess.run(
        [*PHYSLM, "sql", "--query", "error_unnecessary_plan", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('"model","checkpoint_id","test_set"') and len(lines) == 2
    assert lines[1].startswith(f'"{MODEL}","{CKPT}","test_reask",2,3,3,2,')


def test_cli_unknown_query_and_bad_sql_are_one_line_errors(root):
    out = subprocess.run([*PHYSLM, "sql", "--query", "nope"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("physlm: error: unknown query 'nope'; known: accuracy_by_op,")
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    out = subprocess.run(
        [*PHYSLM, "sql", "select nosuchcolumn from probe_metrics"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert 'Referenced column "nosuchcolumn" not found' in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run(
        [*PHYSLM, "sql", "select 1", "--query", "unnecessary"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "either a SQL statement or --query NAME" in out.stderr


# ---------------------------------------------------------------------------------------------------------
# S3


def test_every_query_runs_on_s3(s3_root):
    write_fixture(s3_root)
    tables = run_queries()
    assert all(t.num_rows > 0 for t in tables.values())
    assert run_query("error_unnecessary_plan").to_pylist()[0]["n_probe_true"] == 2


# ---------------------------------------------------------------------------------------------------------
# The analyze step as the flows run it: the generic step task, then its tables published as artifacts


def test_analyze_task_writes_tables_and_publishes_artifacts(prefect_harness, root):
    from prefect import flow
    from prefect.artifacts import Artifact

    from flows.pipeline import publish
    from tasks.step import run_step

    step = analyze_step({"evaluate": "evaluate-e0000001", "probe": "probe-b0000001"})

    @flow
    def analyze_fixture() -> str:
        path = run_step("analyze", step)
        publish("tiny", [("analyze", step)])
        return path

    path = analyze_fixture()
    assert path.startswith(f"{root}/analyze/") and storage.exists(f"{path}/_SUCCESS")
    for name in QUERIES:
        art = Artifact.get(key=f"analyze-{name.replace('_', '-')}")
        assert art is not None and art.data.startswith(f"# {name}"), name
    assert "test_reask" in Artifact.get(key="analyze-error-unnecessary-plan").data
    mtime = os.path.getmtime(f"{path}/_SUCCESS")
    assert analyze_fixture() == path and os.path.getmtime(f"{path}/_SUCCESS") == mtime  # cached


def test_report_on_s3_goes_to_a_local_folder(s3_root, tmp_path, monkeypatch):
    from physlm.sql.report import build_report, default_out

    write_fixture(s3_root)
    monkeypatch.chdir(tmp_path)
    assert default_out() == str(tmp_path / "physlm-report")
    page = open(build_report(default_out()), encoding="utf-8").read()
    assert "no data yet" not in page and page.count("data:image/png;base64,") == len(QUERIES) + 1  # + curves
