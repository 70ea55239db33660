"""The probe-recipe harness (benchmarks/probe_recipe.py) on a finished tiny root: one JSON line per probe seed,
with the V-probe's and the random-init probe's metrics on every test set, and the table made from them."""

import json
import os
import subprocess
import sys

import pytest

from physlm.presets import resolve
from physlm.stages import generate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = [
    "data.train_shards=1",
    "data.problems_per_shard=30",
    "data.test_problems=8",
    "data.seen_problems=8",
    "data.processes=0",
    "train.steps=3",
    "train.compile=off",
    "train.batch_size=2",
    "train.progress=false",
]
PROBE = ["probe.steps=4", "probe.batch_size=8", "probe.train_problems=12", "probe.test_problems=6"]
PROBE += ["probe.processes=0", "probe.compile=off", "probe.device=cpu"]


def harness(*args, env=None):
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "probe_recipe.py"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    return out


@pytest.mark.filterwarnings("ignore")
def test_probe_recipe_harness_records_each_seed(root, tmp_path):
    p = resolve("tiny", RUN)
    for step in generate.plan(p):
        generate.run(step)
    train.run(train.train_step(p))
    results = tmp_path / "probe_recipe.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    sets = [a for o in RUN + PROBE for a in ("--set", o)]
    out = harness("--root", root, "--name", "short", "--seeds", "0,1", "--results", str(results), *sets, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["seed"] for r in lines] == [0, 1] and {r["variant"] for r in lines} == {"short"}
    for r in lines:
        assert r["task"] == "nece" and r["probe"]["steps"] == 4 and r["probe"]["train_problems"] == 12
        assert set(r["scores"]) == {"test_id", "test_seen"}  # the tiny preset's probe.test_sets
        for by in r["scores"].values():
            assert set(by) == {"vprobe", "random_init"}
            assert all(0 <= m["accuracy"] <= 1 and m["n"] > 0 for m in by.values())
        assert len(r["git_sha"]) >= 7 and r["wall_s"] > 0
    assert out.stdout.count("short seed") == 2
    # the same probe seed gives the same probe: seed 0 again, the same scores
    again = harness("--root", root, "--name", "again", "--seeds", "0", "--results", str(results), *sets, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(results.read_text().splitlines()[-1])["scores"] == lines[0]["scores"]
    table = harness("--table", "--results", str(results), env=env)
    assert table.returncode == 0 and "| short |" in table.stdout and "| again |" in table.stdout
    # a root where the run has not happened: one line naming what is missing, nothing appended
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = harness("--root", str(empty), "--name", "x", "--results", str(results), *sets, env=env)
    assert bad.returncode != 0 and len(results.read_text().splitlines()) == 3
    assert bad.stderr.strip().startswith("probe_recipe: ") and "\n" not in bad.stderr.strip()
    assert "not a finished step" in bad.stderr
