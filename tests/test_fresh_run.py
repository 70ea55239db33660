"""The fresh-run harness (benchmarks/fresh_run.py): `physlm run` into a fresh root, then one JSON line of its
figures; recording the same finished root again gives the same figures; the table is made from the file."""

import json
import os
import subprocess
import sys

import pytest
from test_flows import SMALL

from physlm.sql import warehouse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def harness(*args, env):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "fresh_run.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


def test_fresh_run_records_the_study_and_rerecords_it_alike(prefect_harness, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness, "OMP_NUM_THREADS": "1"}
    results, root = tmp_path / "fresh_runs.jsonl", tmp_path / "root"
    sets = [a for kv in SMALL for a in ("--set", kv)]
    out = harness("--name", "small", "--root", str(root), "--results", str(results), *sets, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [json.loads(x) for x in results.read_text().splitlines()]
    assert run["name"] == "small" and run["overrides"] == SMALL
    assert set(run["stage_s"]) == {"generate", "train", "evaluate", "probe", "analyze"}
    assert all(s >= 0 for s in run["stage_s"].values()) and run["stage_s"]["generate"] > 0  # start-up at least
    assert sum(run["stage_s"].values()) == pytest.approx(run["wall_s"], abs=0.2)
    sha = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert run["train_git_sha"] == sha.stdout.strip() and run["train"]["step"] == 2

    # the accuracy as the warehouse's view gives it, every test set and op
    view = warehouse.query("select test_set, op, n, correct from accuracy where decoding = 'greedy'", str(root))
    assert view.num_rows > 0
    for r in view.to_pylist():
        got = run["accuracy"][r["test_set"]]
        cell = got["all"] if r["op"] == -1 else got["by_op"][str(r["op"])]
        assert (cell["n"], cell["correct"]) == (r["n"], r["correct"]) and cell["ci_low"] <= cell["ci_high"]
    nece = {(p["test_set"], p["baseline"]) for p in run["probes"] if p["task"] == "nece" and p["layer"] == -1}
    assert ("test_id", "vprobe") in nece and ("test_id", "random_init") in nece

    # the same root recorded without running: the same figures, no wall time of its own
    again = harness("--name", "again", "--record", str(root), "--results", str(results), *sets, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(results.read_text().splitlines()[-1])
    assert second["wall_s"] is None and second["stage_s"] == run["stage_s"] | {"generate": None}
    for key in ("accuracy", "probes", "train", "e8_can_next"):
        assert second[key] == run[key], key

    table = harness("--table", "--results", str(results), env=env)
    assert table.returncode == 0 and table.stdout.count("| small |") == table.stdout.count("| again |") == 1

    # a root that is not a finished study, or a fresh run into a used root: one line, nothing appended
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, why in ((("--record", str(empty)), "not a finished step"), (("--root", str(root)), "is not empty")):
        bad = harness("--name", "bad", *args, "--results", str(results), *sets, env=env)
        assert bad.returncode != 0 and bad.stderr.strip().startswith("fresh_run: ") and why in bad.stderr
        assert "\n" not in bad.stderr.strip() and len(results.read_text().splitlines()) == 2
