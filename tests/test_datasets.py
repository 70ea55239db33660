"""The generate step: caching (mtimes unchanged), knob sensitivity, SIGKILL safety, local == S3 bytes."""

import os
import signal
import subprocess
import sys
import time

import pytest
from fstree import mtimes

from physlm import plan
from physlm.presets import resolve
from physlm.stages.generate import finalize
from physlm.stages.generate import plan as generate_steps
from physlm.stages.generate import run as run_generate
from physlm.stages.generate import run_part as run_generate_shard
from physlm.store import storage
from physlm.store.shards import read_shards
from physlm.store.steps import StepNotDone, parts_path, read_info, verify

SMALL = ["data.train_shards=2", "data.problems_per_shard=20", "data.test_problems=15", "data.seen_problems=0"]


def generate_all(overrides, processes=0):
    return {s.config.dataset: run_generate(s, processes=processes) for s in generate_steps(resolve("tiny", overrides))}


def shard_hashes(paths: dict) -> dict:
    return {
        name: {f: m["sha256"] for f, m in read_info(p)["files"].items() if f.startswith("shard_")}
        for name, p in paths.items()
    }


def test_generate_writes_every_dataset_and_second_run_is_cached(root):
    paths = generate_all(SMALL)
    assert list(paths) == [
        "train",
        "test_id",
        "test_seen",
        "test_op4",
        "test_op5",
        "test_op6",
        "test_reask",
        "test_reask_seen",
    ]
    info = read_info(paths["train"])
    assert info["rows"] == {"shard_00000.parquet": 20, "shard_00001.parquet": 20} and info["rows_total"] == 40
    assert info["config"]["dataset"] == "train" and verify(paths["train"]) == []
    test = read_shards(paths["test_op5"])
    assert test.num_rows == 15 and set(test.column("op").to_pylist()) == {5}
    assert set(test.column("split").to_pylist()) == {"test"}
    reask = read_shards(paths["test_reask"])
    assert all(reask.column("reask").to_pylist()) and set(reask.column("base_op").to_pylist()) == {6}
    assert not [p for p in os.listdir(os.path.join(root, "generate")) if p.startswith((".parts", ".tmp"))]

    before = mtimes(root)
    steps = generate_steps(resolve("tiny", SMALL))
    assert {plan.status(s) for s in steps} == {"cached"}
    assert generate_all(SMALL) == paths
    assert mtimes(root) == before  # nothing rewritten, nothing added


def test_seen_set_is_fresh_problems_of_the_training_templates(root):
    paths = generate_all(SMALL + ["data.test_problems=60"])  # tiny has test_seen on
    assert "test_seen" in paths
    seen, train = read_shards(paths["test_seen"]), read_shards(paths["train"])
    assert seen.num_rows == 60 and set(seen.column("dataset").to_pylist()) == {"test_seen"}
    assert set(seen.column("split").to_pylist()) == {"train"} and max(seen.column("template_hash").to_pylist()) < 17
    assert len(set(seen.column("op").to_pylist())) > 1  # the training op law, not one forced op
    assert not set(seen.column("problem").to_pylist()) & set(train.column("problem").to_pylist())
    assert not set(seen.column("seed").to_pylist()) & set(train.column("seed").to_pylist())
    more = generate_all(SMALL + ["data.test_problems=60", "data.seen_problems=75"])
    assert read_shards(more["test_seen"]).num_rows == 75 and read_shards(more["test_id"]).num_rows == 60
    off = generate_all(SMALL + ["data.test_seen=false", "probe.test_sets=test_id"])
    assert "test_seen" not in off and off["train"] == paths["train"]  # the knob touches no other dataset


def test_one_knob_regenerates_only_the_affected_datasets(root):
    base = {s.config.dataset: s.hash for s in generate_steps(resolve("tiny", SMALL))}
    generate_all(SMALL)
    more_train = generate_steps(resolve("tiny", SMALL + ["data.train_shards=3"]))
    assert {s.config.dataset for s in more_train if plan.status(s) == "will-run"} == {"train"}
    more_test = generate_steps(resolve("tiny", SMALL + ["data.test_problems=16"]))
    assert {s.config.dataset for s in more_test if plan.status(s) == "will-run"} == set(base) - {"train"}
    # The op law moves the drawn-op sets only: a forced-op set ignores it and keeps its id.
    uniform = generate_steps(resolve("tiny", SMALL + ["data.op_dist=uniform"]))
    assert {s.config.dataset for s in uniform if plan.status(s) == "will-run"} == {"train", "test_id", "test_seen"}
    # Retry data (Part 2.2) enters the training set only: the test sets keep clean solutions and their ids.
    retry = {s.config.dataset: s for s in generate_steps(resolve("tiny", SMALL + ["data.retry_rate=0.3"]))}
    assert {d for d, s in retry.items() if plan.status(s) == "will-run"} == {"train"}
    assert " as BACK." in " ".join(read_shards(run_generate(retry["train"]), ["solution"])["solution"].to_pylist())
    qp = generate_steps(resolve("tiny", SMALL + ["data.format=qp"]))
    assert {plan.status(s) for s in qp} == {"will-run"}
    # A non-semantic knob (how many processes) changes nothing.
    assert {s.config.dataset: s.hash for s in generate_steps(resolve("tiny", SMALL + ["data.processes=2"]))} == base


def test_process_pool_gives_the_same_bytes(root, tmp_path, monkeypatch):
    inline = shard_hashes(generate_all(SMALL[:2] + ["data.test_problems=25"]))
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "pooled"))
    pooled = shard_hashes(generate_all(SMALL[:2] + ["data.test_problems=25"], processes=2))
    assert pooled == inline


def test_finalize_needs_every_shard_and_staged_shards_are_kept(root):
    step = generate_steps(resolve("tiny", SMALL))[0]
    url = run_generate_shard(step, 1)
    assert url.startswith(parts_path(step)) and storage.listdir(os.path.join(root, "generate")) == []
    with pytest.raises(StepNotDone, match="1 of 2 parts are not written"):
        finalize(step)
    mtime = os.stat(url).st_mtime_ns
    path = run_generate(step)  # the staged shard 1 is kept, shard 0 is made
    assert read_info(path)["files"]["shard_00001.parquet"]["size"] > 0
    assert os.stat(os.path.join(path, "shard_00001.parquet")).st_mtime_ns == mtime  # a hard link of it
    assert not os.path.exists(parts_path(step))


def test_sigkill_midway_leaves_nothing_a_reader_accepts(root, tmp_path, monkeypatch):
    overrides = ["data.train_shards=8", "data.problems_per_shard=150", "data.test_problems=150"]
    script = (
        "import sys; from physlm.presets import resolve; from physlm.stages import generate\n"
        "[generate.run(s) for s in generate.plan(resolve('tiny', sys.argv[1:]))]"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, *overrides], env={**os.environ})
    gen = os.path.join(root, "generate")
    deadline = time.monotonic() + 60
    while not (
        os.path.isdir(gen) and any(n.startswith(".parts") and os.listdir(os.path.join(gen, n)) for n in os.listdir(gen))
    ):
        assert proc.poll() is None and time.monotonic() < deadline, "no shard appeared before the run ended"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    steps = generate_steps(resolve("tiny", overrides))
    assert not all(s.done() for s in steps), "killed too late: every step had finished"
    for folder in storage.listdir(gen):  # what a reader can see: only finished, intact step folders
        assert storage.exists(storage.join(folder, "_SUCCESS")) and verify(folder) == []

    resumed = shard_hashes(generate_all(overrides))
    # staging is cleared by each finished step (a killed run's hidden .tmp-* folder may remain: no reader sees it)
    assert not [n for n in os.listdir(gen) if n.startswith(".parts")]
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "fresh"))
    assert resumed == shard_hashes(generate_all(overrides))  # same content as an uninterrupted run


def test_same_bytes_on_local_disk_and_s3(tmp_path, monkeypatch, s3_root):
    on_s3 = generate_all(SMALL)
    assert all(p.startswith(s3_root + "/generate/") for p in on_s3.values())
    assert read_info(on_s3["train"])["rows_total"] == 40 and verify(on_s3["train"]) == []
    assert storage.glob(storage.join(s3_root, "generate", ".parts-*")) == []
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "local"))
    local = generate_all(SMALL)
    assert [p.rsplit("/", 1)[1] for p in local.values()] == [p.rsplit("/", 1)[1] for p in on_s3.values()]
    monkeypatch.setenv("PHYSLM_ROOT", s3_root)
    s3_hashes = shard_hashes(on_s3)
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "local"))
    assert shard_hashes(local) == s3_hashes
