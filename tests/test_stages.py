"""The train and evaluate steps end to end on a tiny preset (no Prefect): cached reruns, the checkpoint
registry, the generations and accuracy tables, and SQL over them agreeing with the table."""

from __future__ import annotations

import os

import pytest

from physlm.presets import resolve
from physlm.sql import warehouse
from physlm.stages import evaluate, train
from physlm.stages import generate as datasets
from physlm.store import registry, storage

TINY = [
    "data.train_shards=1",
    "data.problems_per_shard=30",
    "data.test_problems=4",
    "data.seen_problems=0",
    "data.processes=0",
    "train.steps=4",
    "train.compile=off",
    "probe.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=2",
    "evaluate.limit=3",
    "evaluate.max_new_tokens=6",
]


def test_train_then_evaluate(root):
    p = resolve("tiny", TINY)
    for step in datasets.plan(p):
        datasets.run(step)
    tstep = train.train_step(p)
    path = train.run(tstep)
    assert tstep.done() and path == tstep.path()
    names = set(os.listdir(path))
    assert {"config.json", "model.safetensors", "tokenizer.json", "meta_000004.json", "meta_000002.json"} <= names
    rows = registry.list_checkpoints().to_pylist()
    assert sorted(r["step"] for r in rows) == [2, 4] and all(r["train_hash"] == tstep.hash for r in rows)
    assert [r["final"] for r in sorted(rows, key=lambda r: r["step"])] == [False, True]
    _assert_tensorboard_reads_the_curve(path, rows)
    stamp = os.stat(os.path.join(path, "step.json")).st_mtime_ns
    assert train.run(tstep) == path  # cache hit: nothing retrained
    assert os.stat(os.path.join(path, "step.json")).st_mtime_ns == stamp

    estep = evaluate.evaluate_step(p)
    out = evaluate.run(estep)
    n_sets = len(evaluate.test_sets(p))
    gens = warehouse.query("select test_set, op, decoding, correct, error from generations").to_pylist()
    assert len(gens) == 3 * n_sets and all(g["error"] for g in gens)  # an untrained model: all wrong, classed
    by_sql = warehouse.query(
        "select test_set, avg(correct::int) as acc, count(*) as n from generations group by all order by all"
    ).to_pylist()
    table = warehouse.query("select test_set, accuracy, n from accuracy where op = -1 order by all").to_pylist()
    assert [(r["test_set"], r["acc"], r["n"]) for r in by_sql] == [
        (r["test_set"], r["accuracy"], r["n"]) for r in table
    ]
    ck = warehouse.query("select count(*) as n from checkpoints").to_pylist()[0]["n"]
    assert ck == 2
    assert storage.exists(storage.join(out, "accuracy.md"))


def test_bad_train_override_fails_before_work(root):
    with pytest.raises(Exception, match="train.batch_size"):
        resolve("tiny", ["train.batch_size=0"])
    assert not os.path.exists(root)


def test_bad_training_input_fails_before_training(root):
    """A context too short for the family's problems, and a missing data step, each fail before any training
    with a message naming the problem; nothing is written under the root."""
    from physlm.igsm.config import ConfigError
    from physlm.store.steps import StepNotDone

    short = resolve("tiny", TINY + ["model.n_ctx=64"])
    train.train_step(short)  # planning (a step's identity) does no work, so it cannot tell
    with pytest.raises(ConfigError, match=r"model\.n_ctx: 64 tokens is shorter than most problems"):
        train.check_preset(short)  # what the CLI checks before any work
    p = resolve("tiny", TINY)
    with pytest.raises(StepNotDone, match="not a finished step"):
        train.run(train.train_step(p))  # generate never ran
    assert not os.path.exists(root) or not any(files for _, _, files in os.walk(root))


def _assert_tensorboard_reads_the_curve(path: str, rows: list[dict]) -> None:
    """The train step's event file: our reader and TensorBoard's own loader see the registry's loss curve."""
    from physlm.model import tensorboard

    data = open(os.path.join(path, tensorboard.FILENAME), "rb").read()
    ours = tensorboard.read(data)
    want = {r["step"]: r["loss"] for r in rows}
    assert [s for s, _ in ours] == [2, 4]
    assert all(v["train/loss"] == pytest.approx(want[s], rel=1e-6) and v["train/lr"] > 0 for s, v in ours)
    pytest.importorskip("tensorboard")  # a dev dependency: CI has it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(path)
    acc.Reload()
    assert {"train/loss", "train/lr", "train/tokens_seen"} <= set(acc.Tags()["scalars"])
    assert [(e.step, pytest.approx(e.value, rel=1e-6)) for e in acc.Scalars("train/loss")] == [
        (s, want[s]) for s in (2, 4)
    ]


def test_train_on_s3_writes_the_model_folder(s3_root):
    """On an s3:// root the train step holds config.json and model.safetensors too (save_pretrained writes
    local files: they are uploaded), and nothing is written to the local working folder."""
    p = resolve("tiny", TINY)
    for step in datasets.plan(p):
        datasets.run(step)
    path = train.run(train.train_step(p))
    from physlm.store.steps import read_info, verify

    files = read_info(path)["files"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "events.out.tfevents.physlm"} <= set(files)
    assert verify(path) == [] and not os.path.exists("s3:")
