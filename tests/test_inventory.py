"""`physlm steps`: what a root holds, on local disk and on S3 (moto), with damaged and unfinished steps shown."""

import json
import os
import subprocess
import sys

from physlm.presets import resolve
from physlm.stages import generate
from physlm.store import inventory, storage

SMALL = [
    "data.train_shards=2",
    "data.problems_per_shard=10",
    "data.test_problems=4",
    "data.seen_problems=0",
    "data.processes=0",
]


def _generate(root: str) -> list:
    steps = generate.plan(resolve("tiny", SMALL))
    for s in steps:
        generate.run(s)
    return steps


def _cli_steps(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows", "steps", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "120"})  # fmt: skip


def test_steps_lists_done_damaged_and_unfinished(root):
    steps = _generate(root)
    rows = {r["step"]: r for r in inventory.list_steps().to_pylist()}
    assert set(rows) == {s.id for s in steps} and {r["state"] for r in rows.values()} == {"done"}
    assert all(r["bytes"] > 0 and r["size"].endswith("KB") for r in rows.values())
    train = next(s for s in steps if s.config.dataset == "train")
    shard = os.path.join(train.path(), "shard_00001.parquet")
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    more = generate.plan(resolve("tiny", SMALL + ["data.train_shards=3"]))[0]
    generate.run_part(more, 0)  # a step being written in parts: staged, not finished
    out = _cli_steps("--format", "json")
    assert out.returncode == 0, out.stderr
    listed = {r["step"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert listed[train.id]["state"] == "damaged" and "shard_00001.parquet" in listed[train.id]["problem"]
    assert listed[more.id]["state"] == "unfinished" and "staging" in listed[more.id]["problem"]
    assert sum(r["state"] == "done" for r in listed.values()) == len(steps) - 1
    table = _cli_steps().stdout
    assert all(len(line) <= 120 for line in table.splitlines()) and train.id in table and "damaged" in table


def test_steps_on_s3(s3_root):
    steps = _generate(s3_root)
    out = _cli_steps("--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 + len(steps) and all(s.id in out.stdout for s in steps)
    assert all(line.split(",")[2] == '"done"' for line in lines[1:])
    assert all(p.startswith(s3_root) for p in (r["path"] for r in inventory.list_steps(storage.root()).to_pylist()))
