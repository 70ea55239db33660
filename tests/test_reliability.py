"""Reliability: faults injected into the real system, bad input wherever a user types, fuzzing, secrets.

Every test here is marked `faults` (`python -m pytest -q -m faults`); nothing is mocked: steps run in real
subprocesses that are SIGKILLed, a real moto S3 server is killed and restarted, files are truncated and
altered on disk, two real processes race for one step, and the real CLI is run for every bad input.

- SIGKILL at seeded random points of generate, train, evaluate and probe; the rerun's outputs equal an
  uninterrupted run's, byte for byte, and no reader ever accepts a step folder without `_SUCCESS`.
- An S3 endpoint down mid-flow and back on the same port: the Prefect task retries and succeeds.
- A torn step folder on S3 (what a writer killed before `_SUCCESS` leaves) is refused by every reader.
- A truncated or altered file is caught when read (its name in the error), found by `physlm repair`,
  and repaired by it (or by `--force`), with the original bytes.
- Two processes writing the same steps at once both finish; one result wins, nothing is torn.
- Bad input: one line on stderr naming the problem, a non-zero exit, no traceback, nothing written.
- Fuzzing the checker and the problem-text parser (a quick run here, 100,000 cases under `-m slow`).
- Secrets: S3 credentials appear in no step.json, object, log, artifact, Prefect record or error message.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import pytest
from conftest import free_port

from physlm.store import storage
from physlm.store.steps import CorruptStep, StepNotDone, damage, read_info, require_done, verify

pytestmark = pytest.mark.faults

HERE = os.path.dirname(os.path.abspath(__file__))
PHYSLM = [sys.executable, "-m", "flows"]
SEED = 20260509  # every random choice below comes from here

# A pipeline small enough for CPU, big enough that each stage runs long enough to be killed inside it:
# shard data (not online), so that training reads its shards through the checked reader.
PIPELINE = [
    "data.train_shards=4",
    "data.problems_per_shard=60",
    "data.test_problems=40",
    "data.seen_problems=0",
    "data.processes=0",
    "data.online=false",
    "train.steps=12",
    "train.compile=off",
    "probe.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=3",
    "train.num_threads=1",
    "evaluate.limit=6",
    "evaluate.max_new_tokens=24",
    "probe.steps=8",
    "probe.batch_size=8",
    "probe.train_problems=20",
    "probe.test_problems=8",
    "probe.tasks=nece,can_next",
    "probe.layers=0",
    "probe.device=cpu",
]
STAGES = ("generate", "train", "evaluate", "probe")


@pytest.fixture
def root(root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def run_pipeline(upto: str, overrides: list[str]) -> dict[str, float]:
    """generate -> train -> evaluate -> probe of the tiny preset (library calls, no Prefect), stopping after
    `upto`; returns each stage's wall seconds. Also the body of the subprocesses that get killed."""
    import torch

    from physlm.presets import resolve
    from physlm.stages import evaluate, probe, train
    from physlm.stages import generate as datasets

    torch.set_num_threads(1)
    p = resolve("tiny", overrides)
    runs = {
        "generate": lambda: [datasets.run(s) for s in datasets.plan(p)],
        "train": lambda: train.run(train.train_step(p)),
        "evaluate": lambda: evaluate.run(evaluate.evaluate_step(p)),
        "probe": lambda: probe.run(probe.probe_step(p)),
    }
    seconds = {}
    for stage in STAGES[: STAGES.index(upto) + 1]:
        t = time.monotonic()
        runs[stage]()
        seconds[stage] = time.monotonic() - t
    return seconds


def pipeline_steps(overrides: list[str]) -> dict[str, list]:
    from physlm.presets import resolve
    from physlm.stages import evaluate, probe, train
    from physlm.stages import generate as datasets

    p = resolve("tiny", overrides)
    return {
        "generate": datasets.plan(p),
        "train": [train.train_step(p)],
        "evaluate": [evaluate.evaluate_step(p)],
        "probe": [probe.probe_step(p)],
    }


def fingerprint(root: str) -> dict[str, str]:
    """sha256 of every file of every finished step (checkpoint metadata without its `created_at` stamp; step.json
    left out: it holds timings and the host), and of every registry row without `created_at`."""
    out = {}
    for success in sorted(glob.glob(os.path.join(root, "*", "*", "_SUCCESS"))):
        folder = os.path.dirname(success)
        for rel in read_info(folder)["files"]:
            data = open(os.path.join(folder, rel), "rb").read()
            if os.path.basename(rel).startswith("meta_") and rel.endswith(".json"):
                meta = json.loads(data)
                meta.pop("created_at", None)
                data = json.dumps(meta, sort_keys=True).encode()
            out[os.path.relpath(os.path.join(folder, rel), root)] = hashlib.sha256(data).hexdigest()
    from physlm.store import registry

    rows = registry.list_checkpoints(root).to_pylist() if os.path.isdir(registry.folder(root)) else []
    for r in rows:
        r.pop("created_at")
        out[f"registry/{r['checkpoint_id']}"] = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()
    return out


def assert_only_finished_steps_visible(root: str) -> None:
    """Every step folder a listing shows has `_SUCCESS` and matches its step.json (temp folders are hidden)."""
    for name_dir in storage.listdir(root):
        if name_dir.endswith("/registry"):
            continue
        for folder in storage.listdir(name_dir):
            assert storage.exists(storage.join(folder, "_SUCCESS")), f"torn step folder visible: {folder}"
            assert damage(folder) == {}, folder


# ---------------------------------------------------------------------------------------------------------
# SIGKILL in every stage


def _parts_made(root: str) -> int:
    """Shards written so far by the generate stage: staged ones and those already in finished steps."""
    seen = set()
    for path in glob.glob(os.path.join(root, "generate", ".parts-*", "shard_*.parquet")):
        seen.add((os.path.basename(os.path.dirname(path))[len(".parts-") :], os.path.basename(path)))
    for path in glob.glob(os.path.join(root, "generate", "*", "shard_*.parquet")):
        seen.add((os.path.basename(os.path.dirname(path)), os.path.basename(path)))
    return len(seen)


def _kill_point(stage: str, root: str, rng: random.Random, seconds: dict[str, float], n_shards: int, shrink: float):
    """A seeded random kill point inside `stage`: (a predicate on the root that says the stage is under way,
    then a delay). generate: after the k-th shard; train: after the k-th checkpoint plus part of a checkpoint
    interval; evaluate and probe (which write nothing until they finish): part of their measured duration after
    their temp folder appears."""
    if stage == "generate":
        k = rng.randint(1, n_shards - 1)
        return (lambda: _parts_made(root) >= k), 0.0, f"after shard {k} of {n_shards}"
    if stage == "train":
        k = rng.randint(1, 3)  # 12 steps, a checkpoint every 3: kill after checkpoint 1, 2 or 3 of 4
        delay = rng.uniform(0, 0.5) * seconds["train"] / 4 * shrink
        pattern = os.path.join(root, "train", ".parts-*", f"meta_{3 * k:06d}.json")
        return (lambda: bool(glob.glob(pattern))), delay, f"{delay:.2f}s after checkpoint {3 * k}"
    delay = rng.uniform(0.05, 0.6) * seconds[stage] * shrink
    pattern = os.path.join(root, stage, ".tmp-*")
    return (lambda: bool(glob.glob(pattern))), delay, f"{delay:.2f}s into the step"


def _unregister(train_hash: str) -> None:
    from physlm.store import registry

    for url in storage.glob(storage.join(registry.folder(), "*.parquet")):
        if storage.read_parquet(url).column("train_hash").to_pylist() == [train_hash]:
            storage.remove(url)


def _assert_unfinished_is_refused(stage: str, step, root: str) -> None:
    from physlm.sql import warehouse
    from physlm.store import registry
    from physlm.store.shards import read_shards

    assert not step.done()
    with pytest.raises(StepNotDone):
        require_done(step.path())
    assert_only_finished_steps_visible(root)
    if stage == "generate":
        with pytest.raises(StepNotDone):
            read_shards(step.path())
        finished = sum(read_info(f)["rows_total"] for f in storage.listdir(os.path.join(root, "generate")))
        assert warehouse.query("select count(*) as n from problems").to_pylist() == [{"n": finished}]
    elif stage == "train":  # checkpoints are registered once the step is finished, not before
        assert step.hash not in set(registry.list_checkpoints().column("train_hash").to_pylist())
    else:
        view = {"evaluate": "generations", "probe": "probe_metrics"}[stage]
        assert warehouse.query(f"select count(*) as n from {view}").to_pylist() == [{"n": 0}]


PIPELINE_CODE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); import test_reliability as t; "
    "print(json.dumps(t.run_pipeline(sys.argv[2], sys.argv[3:])))"
)
"""``python -c PIPELINE_CODE HERE UPTO OVERRIDES...``: ``run_pipeline`` in a fresh process, its seconds on stdout."""


def _pipeline_in_subprocess(upto: str) -> dict[str, float]:
    """``run_pipeline`` in a fresh process, as the killed runs are: a checkpoint saves the process's global RNG
    states, which threads left running by earlier tests in this process would advance at random moments."""
    out = subprocess.run([sys.executable, "-c", PIPELINE_CODE, HERE, upto, *PIPELINE], capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sigkill_in_every_stage_then_rerun_matches_uninterrupted(root, tmp_path):
    # The reference: one uninterrupted run at the same absolute root (checkpoint ids hash the path), moved aside.
    seconds = _pipeline_in_subprocess("probe")
    reference = fingerprint(root)
    assert len([k for k in reference if k.endswith(".parquet")]) >= 9 + 3
    os.rename(root, str(tmp_path / "reference"))

    rng = random.Random(SEED)
    steps = pipeline_steps(PIPELINE)
    n_shards = sum(s.config.n_shards for s in steps["generate"])
    for stage in STAGES:
        for attempt in range(4):  # a kill that lands after the stage finished is retried sooner
            until, delay, where = _kill_point(stage, root, rng, seconds, n_shards, 0.5**attempt)
            proc = subprocess.Popen(
                [sys.executable, "-c", PIPELINE_CODE, HERE, stage, *PIPELINE],
                env={**os.environ},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 120
            while not until() and proc.poll() is None:
                assert time.monotonic() < deadline, f"{stage}: never got under way"
                time.sleep(0.002)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=120)  # a stage's leftover child holding stderr fails here, not hangs
            rc, err = proc.returncode, err.decode(errors="replace")
            assert rc in (0, -signal.SIGKILL), err[-2000:]
            killed = [s for s in steps[stage] if not s.done()]
            if rc == -signal.SIGKILL and killed:
                break
            for s in steps[stage]:  # too late: the stage had finished; undo it and try an earlier point
                shutil.rmtree(s.path(), ignore_errors=True)
                _unregister(s.hash)
        else:
            pytest.fail(f"{stage}: no kill landed inside the stage in 4 tries")
        print(f"killed {stage} {where}")
        _assert_unfinished_is_refused(stage, killed[0], root)
        if stage == "generate":  # the next stage refuses to start on unfinished input
            from physlm.presets import resolve
            from physlm.stages import generate as datasets
            from physlm.stages import train

            p = resolve("tiny", PIPELINE)
            if not datasets.dataset_step(p, "train").done():
                with pytest.raises(StepNotDone):
                    train.run(train.train_step(p))

    _pipeline_in_subprocess("probe")  # the rerun finishes what each kill left
    assert fingerprint(root) == reference
    assert_only_finished_steps_visible(root)


def test_resume_records_the_same_loss(tmp_path):
    """A checkpoint records the mean loss since the previous checkpoint, so a run resumed from one records the
    same loss (and registry row) as an uninterrupted run."""
    import torch

    from physlm.config import ModelConfig, TrainConfig
    from physlm.igsm.config import Family, GenConfig
    from physlm.model import tokenizer as T
    from physlm.model.data import OnlineProblems
    from physlm.model.train import train
    from physlm.store import checkpoint

    torch.set_num_threads(1)
    tok = T.build_wordlevel()
    data = OnlineProblems(GenConfig(family=Family("tiny", max_op=4, max_edge=6)), tok)
    mc = ModelConfig.from_name("GPT2-2-2", vocab_size=tok.vocab_size, n_ctx=256)
    cfg = TrainConfig(steps=6, batch_size=2, warmup=1, ckpt_every=3, log_every=10, seed=1, num_threads=1)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(mc, cfg, data, a)
    train(mc, cfg, data, b, until_step=3)  # stopped at a checkpoint, as a kill would leave it
    train(mc, cfg, data, b)
    assert checkpoint.read_meta(b, 6)["loss"] == checkpoint.read_meta(a, 6)["loss"]


def test_torn_step_on_s3_is_never_read(s3_root):
    """On S3 a step is written in place, `_SUCCESS` last: a writer killed before it leaves a torn folder. Every
    reader refuses it, and a rerun replaces it."""
    from physlm.presets import resolve
    from physlm.sql import warehouse
    from physlm.stages import generate as datasets
    from physlm.store.shards import read_shards

    step = datasets.plan(
        resolve(
            "tiny",
            ["data.train_shards=2", "data.problems_per_shard=10", "data.test_problems=5", "data.seen_problems=0"],
        )
    )[0]
    path = datasets.run(step)
    good = read_shards(path)
    for name in ("_SUCCESS", "step.json"):  # exactly what a writer killed before its last two writes leaves
        storage.remove(storage.join(path, name))
    assert storage.glob(storage.join(path, "shard_*.parquet"))  # the shards are there ...
    with pytest.raises(StepNotDone):  # ... and nobody reads them
        read_shards(path)
    with pytest.raises(StepNotDone):
        require_done(path)
    assert warehouse.query("select count(*) as n from problems").to_pylist() == [{"n": 0}]
    assert datasets.run(step) == path and read_shards(path).equals(good)


# ---------------------------------------------------------------------------------------------------------
# The S3 endpoint goes away mid-flow


def _task_run_counts(flow_run_id) -> dict[str, int]:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return {r.name: r.run_count for r in runs}

    return asyncio.run(read())


def test_s3_endpoint_down_mid_flow_task_retries_and_succeeds(prefect_harness, restartable_moto, tmp_path, monkeypatch):
    from flows.pipeline import generate

    overrides = [
        "data.train_shards=8",
        "data.problems_per_shard=150",
        "data.test_problems=20",
        "data.seen_problems=0",
        "data.processes=0",
    ]
    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "local"))
    # uninterrupted bytes, by step id (the flow's result is keyed so; ids do not depend on the root)
    local = {f"generate-{os.path.basename(p)}": read_info(p)["files"] for p in _generate_all(overrides).values()}

    # botocore's own retries (AWS_MAX_ATTEMPTS, default 5: 3-8 s per refused call) would ride out a short
    # outage by themselves; with 2 attempts a call fails within about a second, so the task's retry is what
    # has to carry the flow through the 5 s outage.
    for k, v in {
        "AWS_ENDPOINT_URL": restartable_moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    bucket = f"physlm-outage-{uuid.uuid4().hex[:8]}"
    storage.filesystem(f"s3://{bucket}")[0].mkdir(bucket)
    root = f"s3://{bucket}/p"
    monkeypatch.setenv("PHYSLM_ROOT", root)

    outage = {}

    def injector():
        """The moment the first shard task asks whether its part is staged (it then computes the shard and
        writes it), the endpoint dies; 5 s later it is back on the same port with its data."""
        deadline = time.monotonic() + 120
        while "/.parts-" not in open(restartable_moto.recording).read():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        restartable_moto.stop()
        outage["down"] = time.monotonic()
        time.sleep(5)
        restartable_moto.start()
        outage["up"] = time.monotonic()

    thread = threading.Thread(target=injector, daemon=True)
    thread.start()
    state = generate(preset="tiny", overrides=overrides, return_state=True)
    ended = time.monotonic()
    thread.join(timeout=60)
    paths = state.result()  # the flow succeeded
    assert "up" in outage and outage["up"] < ended, f"the outage did not happen while the flow ran: {outage}"
    counts = _task_run_counts(state.state_details.flow_run_id)
    assert max(counts.values()) >= 2, f"no task was retried: {counts}"
    for name, path in paths.items():  # and what it wrote is whole and the same as without the outage
        assert damage(path) == {}
        assert {f: m["sha256"] for f, m in read_info(path)["files"].items()} == {
            f: m["sha256"] for f, m in local[name].items()
        }


def _generate_all(overrides):
    from physlm.presets import resolve
    from physlm.stages import generate as datasets

    return {s.config.dataset: datasets.run(s) for s in datasets.plan(resolve("tiny", overrides))}


# ---------------------------------------------------------------------------------------------------------
# Damaged files: detected on read, found and repaired


def cli(*args: str, env: dict | None = None, cwd: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PHYSLM, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})}
    )


def test_damaged_shard_is_detected_on_read_and_repaired(root):
    from physlm.store.shards import read_shards

    paths = _generate_all(
        ["data.train_shards=2", "data.problems_per_shard=30", "data.test_problems=10", "data.seen_problems=0"]
    )
    truncated = os.path.join(paths["train"], "shard_00001.parquet")
    altered = os.path.join(paths["test_id"], "shard_00000.parquet")
    original = {f: open(f, "rb").read() for f in (truncated, altered)}
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(truncated) // 2)
    with open(altered, "r+b") as f:  # one byte inside the data, same size: only the sha256 can tell
        f.seek(len(original[altered]) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))

    for path, bad in ((paths["train"], truncated), (paths["test_id"], altered)):
        with pytest.raises(CorruptStep) as err:
            read_shards(path)
        assert bad in str(err.value) and "physlm repair" in str(err.value) and "\n" not in str(err.value)
    assert read_shards(paths["test_op4"]).num_rows == 10  # intact steps read as before

    report = cli("repair", "--dry-run")
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "2 damaged" in report.stdout and "shard_00001.parquet" in report.stdout
    assert "shard_00000.parquet: sha256 differs" in report.stdout
    assert open(truncated, "rb").read() != original[truncated]  # a dry run changes nothing

    fixed = cli("repair")
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.count("repaired ") == 2
    assert {f: open(f, "rb").read() for f in original} == original  # the very bytes of before
    assert cli("repair", "--dry-run").returncode == 0 and verify(paths["train"]) == []

    # Or by hand: rerun the one step with force.
    from physlm.presets import resolve
    from physlm.stages import generate as datasets

    with open(altered, "wb") as f:
        f.write(b"PAR1 not really")
    step = datasets.dataset_step(
        resolve(
            "tiny",
            ["data.train_shards=2", "data.problems_per_shard=30", "data.test_problems=10", "data.seen_problems=0"],
        ),
        "test_id",
    )
    datasets.run(step, force=True)
    assert open(altered, "rb").read() == original[altered]


@pytest.mark.slow
def test_repair_recomputes_a_damaged_train_step(root):
    """Damaged weights: `physlm repair --preset` retrains that step alone, to the same bytes."""
    overrides = PIPELINE
    run_pipeline("train", overrides)
    from physlm.presets import resolve
    from physlm.stages import train

    path = train.train_step(resolve("tiny", overrides)).path()
    files = {f: open(f, "rb").read() for f in glob.glob(os.path.join(path, "*.safetensors"))}
    with open(os.path.join(path, "model.safetensors"), "r+b") as f:
        f.truncate(100)
    os.remove(os.path.join(path, "model_000006.safetensors"))
    sets = [x for kv in overrides for x in ("--set", kv)]
    report = cli("repair", "--preset", "tiny", *sets, "--dry-run")
    assert report.returncode == 1
    assert "model.safetensors: 100 bytes" in report.stdout and "model_000006.safetensors: missing" in report.stdout
    fixed = cli("repair", "--preset", "tiny", *sets)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert f"repaired train/{os.path.basename(path)}" in fixed.stdout
    assert {f: open(f, "rb").read() for f in files} == files


# ---------------------------------------------------------------------------------------------------------
# Concurrent writers


def _race(stage: str, tmp_path, n: int = 2) -> None:
    """`n` processes run the pipeline up to `stage` at the same moment: each imports everything, says it is
    ready, and waits for the go file; all must exit 0."""
    run = tmp_path / f"race-{stage}-{uuid.uuid4().hex[:6]}"
    run.mkdir()
    code = (
        "import os, sys, time; sys.path.insert(0, sys.argv[1]); import torch, test_reliability as t\n"
        "from physlm.stages import generate as datasets, stages, probe\n"
        "open(sys.argv[2] + '/ready-' + str(os.getpid()), 'w').close()\n"
        "while not os.path.exists(sys.argv[2] + '/go'): time.sleep(0.001)\n"
        "t.run_pipeline(sys.argv[3], sys.argv[4:])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, HERE, str(run), stage, *PIPELINE],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(n)
    ]
    deadline = time.monotonic() + 120
    while len(glob.glob(str(run / "ready-*"))) < n:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a racer did not start"
        time.sleep(0.01)
    (run / "go").write_text("")
    errs = [p.communicate(timeout=600)[1].decode(errors="replace") for p in procs]
    tracebacks = [e[e.rfind("Traceback") :][-3000:] for e in errs if "Traceback" in e]
    assert [p.returncode for p in procs] == [0] * n, tracebacks


def _assert_whole(steps) -> None:
    for s in steps:
        assert s.done() and damage(s.path()) == {}, s.id
    for parent in {os.path.dirname(s.path()) for s in steps}:  # no swapped-out loser left behind
        assert not [n for n in os.listdir(parent) if n.startswith(".old-")]


@pytest.mark.slow
def test_two_processes_write_the_same_steps_at_once(root, tmp_path):
    steps = pipeline_steps(PIPELINE)
    run_pipeline("train", PIPELINE)  # one trainer (two at once: test_two_processes_train_the_same_step_at_once)
    alone = {s.id: {f: m["sha256"] for f, m in read_info(s.path())["files"].items()} for s in steps["generate"]}
    for s in steps["generate"]:  # the data goes again; the finished train step stays
        shutil.rmtree(s.path())
    # Both processes now write the six generate steps (shard by shard, into shared staging folders), then the
    # evaluate and the probe step (each in its private temp folder), at the same time.
    _race("probe", tmp_path)
    _assert_whole(steps["generate"] + steps["evaluate"] + steps["probe"])
    assert_only_finished_steps_visible(root)
    raced = {s.id: {f: m["sha256"] for f, m in read_info(s.path())["files"].items()} for s in steps["generate"]}
    assert raced == alone  # one result won, and it is what a single writer makes


@pytest.mark.slow
def test_two_processes_train_the_same_step_at_once(root, tmp_path):
    """Two trainers of one step: the second waits on the step's lock (steps.exclusive), then takes the
    finished step; both exit cleanly."""
    run_pipeline("generate", PIPELINE)
    _race("train", tmp_path)
    _assert_whole(pipeline_steps(PIPELINE)["train"])


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line, non-zero exit, no traceback, nothing written

BAD_INPUT = [
    # (id, arguments, environment kind, what the message must name)
    ("unknown-preset", ["generate", "--preset", "nope"], "local", "unknown preset 'nope'"),
    ("unknown-preset-run", ["run", "--preset", "nope"], "local", "unknown preset 'nope'"),
    ("misspelt-key", ["run", "--set", "data.trian_shards=2"], "local", "did you mean data.train_shards"),
    ("no-equals", ["evaluate", "--preset", "tiny", "--set", "nonsense"], "local", "expected key=value"),
    ("wrong-type", ["sweep", "--preset", "grid-tiny", "--set", "data.train_shards=x"], "local", "expected an int"),
    ("out-of-range", ["train", "--preset", "tiny", "--set", "train.batch_size=0"], "local", "train.batch_size"),
    ("sql-syntax", ["sql", "selec 1"], "local", "syntax error"),
    ("sql-write", ["sql", "create table t (a int)"], "local", "read-only"),
    ("sql-copy", ["sql", "copy (select 1) to 'x.csv'"], "local", "read-only"),
    ("sql-unknown-view", ["sql", "select * from nosuch_view"], "local", "nosuch_view"),
    ("sql-two-statements", ["sql", "select 1; select 2"], "local", "exactly one statement"),
    ("sql-unknown-query", ["sql", "--query", "nope"], "local", "unknown query 'nope'"),
    ("sql-format", ["sql", "select 1", "--format", "xml"], "local", "--format"),
    ("check-missing-file", ["check", "--input", "/nonexistent/in.jsonl"], "local", "cannot read"),
    ("check-directory", ["check", "--input", "{cwd}"], "local", "cannot read"),
    ("sample-family", ["sample", "--family", "nope"], "local", "unknown family"),
    ("sample-op", ["sample", "--op", "400"], "local", "op"),
    ("not-a-model", ["evaluate-model", "/not/a/model"], "local", "/not/a/model is not a model folder"),
    ("model-is-a-file", ["evaluate-model", "/etc/hostname"], "local", "is not a model folder"),
    ("repair-not-a-step", ["repair", "/not/a/step"], "local", "/not/a/step is not a finished step folder"),
    ("pretrained-unknown", ["train", "--preset", "tiny", "--set", "train.pretrained=no"], "local", "neither a shipped"),
    ("export-untrained", ["export-model", "{cwd}/out"], "local", "is not done under"),
    ("repair-set-alone", ["repair", "--set", "a=b"], "local", "--set needs --preset"),
    ("repair-preset", ["repair", "--preset", "nope"], "local", "unknown preset 'nope'"),
    ("report-unwritable", ["report", "--out", "/proc/physlm-report"], "local", "cannot write the report"),
    ("s3-down-generate", ["generate", "--preset", "tiny"], "s3-down", "S3 storage failed for root s3://"),
    ("s3-down-sql", ["sql", "select count(*) from problems"], "s3-down", "S3 storage failed for root s3://"),
    ("s3-down-repair", ["repair"], "s3-down", "S3 storage failed for root s3://"),
    ("s3-down-evaluate-model", ["evaluate-model", "{cwd}/model"], "s3-down", "S3 storage failed for root"),
    ("s3-no-credentials-run", ["run"], "s3-no-credentials", "NoCredentialsError"),
    ("s3-no-credentials-sql", ["sql", "select count(*) from problems"], "s3-no-credentials", "NoCredentialsError"),
]
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY-reliability"


def _listing(folder: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs) if os.path.isdir(folder) else []


@pytest.mark.parametrize("args,kind,needle", [row[1:] for row in BAD_INPUT], ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_one_line_error(args, kind, needle, tmp_path, request):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {
        "PHYSLM_ROOT": str(tmp_path / "root"),
        "AWS_ACCESS_KEY_ID": "AKIARELIABILITYTEST1",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/config",
    }
    bucket = None
    if kind == "s3-down":  # nothing listens there; one attempt (botocore's default 5 take 3-8 s, same message)
        env.update(
            PHYSLM_ROOT="s3://nowhere-bucket/prefix",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
            AWS_MAX_ATTEMPTS="1",
        )
    elif kind == "s3-no-credentials":
        endpoint = request.getfixturevalue("moto_s3")
        bucket = f"physlm-nocreds-{uuid.uuid4().hex[:8]}"
        import s3fs

        fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir(bucket)
        env.update(
            PHYSLM_ROOT=f"s3://{bucket}/p", AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY=""
        )
    if "{cwd}/model" in args:  # a model folder that exists (so the failure is the storage's)
        (cwd / "model").mkdir()
        (cwd / "model" / "config.json").write_text("{}")
    before = _listing(str(cwd))
    out = cli(*[a.replace("{cwd}", str(cwd)) for a in args], env=env, cwd=str(cwd), timeout=120)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr[-3000:]
    assert lines[0].startswith("physlm: error: ") and needle in lines[0], lines[0]
    assert SECRET not in out.stderr + out.stdout and "AKIARELIABILITYTEST1" not in out.stderr + out.stdout
    assert _listing(str(tmp_path / "root")) == [] and _listing(str(cwd)) == before  # nothing written
    if bucket:
        assert fs.find(bucket) == []


def test_check_takes_malformed_jsonl_without_crashing(tmp_path):
    """`physlm check` judges model output line by line: a malformed line is a `bad_input` verdict (exit 0),
    never a crash, whatever the bytes (README: 'never crashes')."""
    good = json.loads(cli("sample", "--count", "1").stdout)
    lines = [
        b"not json",
        b"[" * 100_000,
        b'{"problem": "x", "solution": ' + b"[" * 5000 + b"}",
        b"\xff\xfe\x00\x01 binary",
        b'{"problem": 5, "solution": null}',
        b"1e999999",
        b'"a string"',
        b"9" * 5000,
        json.dumps({"problem": good["problem"], "solution": good["solution"], "answer": {"a": [1]}}).encode(),
        json.dumps({"problem": good["problem"] * 50, "solution": good["solution"] * 50}).encode(),
    ]
    f = tmp_path / "in.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    out = cli("check", "--input", str(f))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    verdicts = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(verdicts) == len(lines) and not any(v["correct"] for v in verdicts)
    assert [v["errors"][0]["kind"] for v in verdicts[:8]] == ["bad_input"] * 8


# ---------------------------------------------------------------------------------------------------------
# Fuzzing: the checker and the problem-text parser never raise

_PIECES = [
    " ",
    ".",
    ". ",
    ";",
    "; so ",
    " = ",
    " + ",
    " - ",
    " * ",
    "Define ",
    " as ",
    "'s ",
    " BACK",
    "0",
    "7",
    "22",
    "23",
    "-1",
    "999999999999",
    "a",
    "z",
    "\n",
    "\x00",
    "é",
    " How many ",
    " does ",
    " have?",
    " The number of each ",
    " equals ",
    " more than ",
    " times as much as ",
    "the sum of ",
    "the difference of ",
    " and ",
    ", ",
    "?",
]


def _mutate(text: str, rng: random.Random, donors: list[str]) -> str:
    """1-6 random edits: delete, insert a grammar piece, duplicate, swap or drop sentences, change numbers,
    splice in a piece of another problem's text."""
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        n = len(text)
        i, j = sorted((rng.randint(0, n), rng.randint(0, n)))
        if op == 0:
            text = text[:i] + text[i + rng.randint(1, 12) :]
        elif op == 1:
            text = text[:i] + rng.choice(_PIECES) + text[i:]
        elif op == 2:
            text = text[:i] + text[i:j] + text[i:]
        elif op == 3:
            parts = text.split(". ")
            rng.shuffle(parts) if rng.random() < 0.5 else parts.pop(rng.randrange(len(parts)))
            text = ". ".join(parts)
        elif op == 4:
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                k = rng.choice(digits)
                text = text[:k] + str(rng.randint(0, 30)) + text[k + 1 :]
        elif op == 5:
            d = rng.choice(donors)
            a = rng.randint(0, len(d))
            text = text[:i] + d[a : a + rng.randint(1, 80)] + text[j:]
        else:
            text = text[:i] + "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(1, 5))) + text[j:]
    return text


def fuzz(cases: int, seed: int) -> dict[str, int]:
    """`cases` seeded cases over generated med/hard problems: mutated solutions through the checker (with a
    random claimed answer) and through `judge` (problem text parsed), mutated problem texts through the parser;
    returns how many of each ran. Any exception but ParseError from the parser fails."""
    from physlm.igsm.check import Verdict, check
    from physlm.igsm.config import GenConfig, family
    from physlm.igsm.generate import generate
    from physlm.igsm.judge import judge
    from physlm.igsm.parse import ParseError, parse_candidates

    rng = random.Random(seed)
    problems = [
        generate(
            GenConfig(
                family=family(rng.choice(["med", "hard"])),
                format=rng.choice(["pq", "qp"]),
                op=rng.choice([None, None, 3, 20]) if i % 5 else None,
                reask=False,
            ),
            rng.randrange(2**31),
        )
        for i in range(60)
    ]
    texts = [p.problem for p in problems] + [p.solution for p in problems]
    counts = {"check": 0, "judge": 0, "parse": 0}
    answers = [None, 0, 22, "7", " 13 ", "x", -1, 10**30, 2.5, True, [1], {"a": 1}]
    for case in range(cases):
        p = rng.choice(problems)
        kind = rng.random()
        try:
            if kind < 0.6:
                v = check(p.graph, _mutate(p.solution, rng, texts), rng.choice(answers))
                assert isinstance(v, Verdict)
                json.dumps(v.to_dict())
                counts["check"] += 1
            elif kind < 0.7:
                v = judge(
                    _mutate(p.problem, rng, texts) if rng.random() < 0.5 else p.problem,
                    _mutate(p.solution, rng, texts),
                    rng.choice(answers),
                )
                json.dumps(v)
                counts["judge"] += 1
            else:
                try:
                    graphs = parse_candidates(_mutate(p.problem, rng, texts))
                    assert graphs
                except ParseError as e:
                    assert str(e)
                counts["parse"] += 1
        except Exception as e:  # pragma: no cover - the failure report
            raise AssertionError(f"fuzz case {case} (seed {seed}) raised {type(e).__name__}: {e}") from e
    return counts


def test_fuzz_checker_and_parser_quick():
    counts = fuzz(10_000, SEED)
    assert sum(counts.values()) == 10_000 and min(counts.values()) > 500


@pytest.mark.slow
def test_fuzz_checker_and_parser_100k():
    counts = fuzz(100_000, SEED + 1)
    assert sum(counts.values()) == 100_000


# ---------------------------------------------------------------------------------------------------------
# Secrets


def test_s3_credentials_never_leave_the_process(prefect_harness, s3_root, monkeypatch, tmp_path):
    """A flow on S3 with real-looking credentials, through the CLI and its Prefect API: the secret key and the
    key id are in no object under the root, no step.json, no output, no log line, no artifact, no Prefect
    database row or result file; and a failing run's error message does not carry them either."""
    key_id, secret = "AKIAPHYSLMSECRETTEST", "s3cr3t/VALUE+never-to-be-written-anywhere-0123456789"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)  # moto accepts any credentials
    results = tmp_path / "prefect-results"
    sets = [
        "--set",
        "data.train_shards=1",
        "--set",
        "data.problems_per_shard=10",
        "--set",
        "data.test_problems=4",
        "--set",
        "data.seen_problems=0",
        "--set",
        "data.processes=0",
    ]
    env = {
        "PREFECT_API_URL": prefect_harness,
        "PREFECT_LOCAL_STORAGE_PATH": str(results),
        "PREFECT_LOGGING_LEVEL": "DEBUG",
    }
    out = cli("generate", "--preset", "tiny", *sets, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    down = cli("sql", "select 1", env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_MAX_ATTEMPTS": "1"})
    assert down.returncode == 2 and "S3 storage failed" in down.stderr

    texts = {"generate output": out.stdout + out.stderr, "error message": down.stdout + down.stderr}
    fs, base = storage.filesystem(s3_root)
    objects = fs.find(base)
    assert any(o.endswith("/step.json") for o in objects)
    for o in objects:
        texts[o] = fs.cat_file(o).decode("latin-1")
    for f in _listing(str(results)):  # persisted results (JSON holding a base64 cloudpickle): inside the pickle too
        raw = open(f, "rb").read()
        texts[f] = raw.decode("latin-1")
        try:
            texts[f + " (result)"] = base64.b64decode(json.loads(raw)["result"]).decode("latin-1")
        except (ValueError, KeyError, TypeError):
            pass
    records = _prefect_records()
    assert any(k.endswith(".db") for k in records), "the Prefect database file was not found"
    # what is searched is the real thing: this run's parameters are in the database, its plan in the logs
    assert "data.problems_per_shard=10" in "".join(v for k, v in records.items() if ".db" in k)
    assert "plan for preset tiny" in records["prefect logs"]
    texts.update(records)
    for where, text in texts.items():
        for value in (secret, key_id, urllib.parse.quote(secret, safe="")):
            assert value not in text, f"credentials found in {where}"


def _prefect_records() -> dict[str, str]:
    """Every log line and artifact the Prefect API holds, and the raw bytes of its database file."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    async def read():
        async with get_client() as client:
            logs, artifacts, offset = [], [], 0
            while batch := await client.read_logs(limit=200, offset=offset):
                logs += [log.message for log in batch]
                offset += len(batch)
            artifacts = [json.dumps(a.model_dump(mode="json")) for a in await client.read_artifacts()]
            return logs, artifacts

    logs, artifacts = asyncio.run(read())
    assert logs, "no Prefect logs were read"
    out = {"prefect logs": "\n".join(logs), "prefect artifacts": "\n".join(artifacts)}
    url = get_current_settings().server.database.connection_url
    url = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url or "")
    db = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    for path in (db, db + "-wal"):
        if path and os.path.exists(path):
            out[path] = open(path, "rb").read().decode("latin-1")
    return out
