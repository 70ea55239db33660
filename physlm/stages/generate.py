"""The generate step: one content-addressed step per dataset of a preset, written shard by shard.

A preset's `data` section names the datasets (`DataConfig.datasets()`: "train", "test_id", "test_seen"
when `data.test_seen` is on, "test_op{max}", one "test_op{k}" per OOD op, "test_reask"). Each becomes a
`Step("generate", GenerateConfig(...), version=VERSION)` living at `{root}/generate/{hash}/` with
`shard_{i:05d}.parquet` files (the problem record schema), and a step.json holding the resolved config,
every shard's sha256 and row count. The preset's name is not in the hash: `tiny` and `grid-tiny` share their data.

Shards are independent (seeded from (seed, dataset, shard), `physlm.store.shards`), so a step is written in
parts (`physlm.store.steps.write_part` / `finalize_parts`): any number of tasks make shards in parallel into
the step's staging folder, and `finalize` makes the step folder with `_SUCCESS` last once all are there.
A killed run leaves staged shards that the rerun keeps; the bytes of a shard are a function of its
config and seed only, on local disk and on S3 alike.

Generation is pure-Python and CPU-bound, so threads do not help (the GIL): with `processes=N` shards are
made in a pool of N *spawned* processes (s3fs is not fork-safe), shared by every caller in this process.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import multiprocessing
import os
import threading

import pyarrow.parquet as pq

from physlm.config import GenerateConfig
from physlm.igsm import record
from physlm.presets import Preset
from physlm.store import storage
from physlm.store.shards import SHARD, generate_shard
from physlm.store.steps import Step, finalize_parts, write_part

NAME = "generate"
GPU = False
VERSION = 1
"""Bump when the bytes a generate step writes change for the same config (generator or schema changes)."""


def plan(preset: Preset) -> list[Step]:
    """One generate step per dataset of the preset, "train" first."""
    d = preset.data
    return [
        Step(
            NAME,
            GenerateConfig(dataset=name, gen=gen, seed=d.seed, count=count, per_shard=min(d.problems_per_shard, count)),
            version=VERSION,
        )
        for name, (gen, count) in d.datasets().items()
    ]


def dataset_step(preset: Preset, dataset: str) -> Step:
    """The generate step of one dataset of the preset ("train", "test_id", ...)."""
    for step in plan(preset):
        if step.config.dataset == dataset:
            return step
    raise KeyError(f"preset {preset.name!r} has no dataset {dataset!r}")


def describe(step: Step) -> str:
    cfg: GenerateConfig = step.config
    return f"{cfg.dataset}: {cfg.count} problems in {cfg.n_shards} shards"


def shard_names(step: Step) -> list[str]:
    return [SHARD.format(i) for i in range(step.config.n_shards)]


def parts(step: Step) -> list[int]:
    """The shards of a dataset: computed independently (in parallel, anywhere), then `run` finishes the step."""
    return list(range(step.config.n_shards))


# ---------------------------------------------------------------------------------------------------------
# Shards, in this process or in a pool of spawned ones

_ENV = (
    "PHYSLM_ROOT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
_pools: dict[int, concurrent.futures.ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(n: int) -> concurrent.futures.ProcessPoolExecutor:
    with _pools_lock:
        if n not in _pools:
            _pools[n] = concurrent.futures.ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
        return _pools[n]


@atexit.register
def _shutdown_pools() -> None:  # before interpreter teardown, or the executor's weakref callback fails noisily
    with _pools_lock:
        for pool in _pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        _pools.clear()


def _make_shard(step: Step, shard: int, force: bool, root: str | None) -> str:
    cfg: GenerateConfig = step.config
    if not 0 <= shard < cfg.n_shards:
        raise IndexError(f"generate {cfg.dataset}: shard {shard} is not in 0..{cfg.n_shards - 1}")

    def write(url: str) -> None:
        table = generate_shard(cfg.gen, cfg.seed, cfg.dataset, shard, cfg.shard_size(shard))
        storage.write_parquet(table, url)

    return write_part(step, SHARD.format(shard), write, force=force, root=root)


def _make_shard_in_worker(step: Step, shard: int, force: bool, root: str | None, env: dict) -> str:
    for k in _ENV:  # the caller's storage settings now, not those of when the pool was spawned
        if env.get(k) is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = env[k]
    return _make_shard(step, shard, force, root)


_bars: dict[str, tuple] = {}  # step id -> (progress bar, shards counted)
_bars_lock = threading.Lock()


def _count(step: Step, shard: int) -> None:
    """Report a finished shard, once, on its dataset's progress bar (problems); closed with the last shard."""
    from physlm.progress import progress

    cfg: GenerateConfig = step.config
    with _bars_lock:
        if step.id not in _bars:
            _bars[step.id] = (progress(cfg.count, f"generate {cfg.dataset}", "problems"), set())
        bar, counted = _bars[step.id]
        if shard in counted:
            return
        counted.add(shard)
        bar.update(cfg.shard_size(shard))
        if len(counted) == cfg.n_shards:
            bar.close()  # the entry stays: a finished dataset is not counted again


def run_part(step: Step, shard: int, force: bool = False, root: str | None = None, processes: int = 0) -> str:
    """Make shard `shard` of a generate step into its staging folder (kept if already staged, unless
    `force`); return its URL. `processes > 0` computes it in the shared pool of that many spawned processes
    (call from several threads to keep them busy)."""
    if processes <= 0:
        url = _make_shard(step, shard, force, root)
    else:
        env = {k: os.environ.get(k) for k in _ENV}
        url = _pool(processes).submit(_make_shard_in_worker, step, shard, force, root, env).result()
    _count(step, shard)
    return url


def _row_counts(out: str) -> dict:
    counts = {}
    for url in storage.glob(storage.join(out, "shard_*.parquet")):
        fs, path = storage.filesystem(url)
        with fs.open(path, "rb") as f:
            counts[url.rsplit("/", 1)[1]] = pq.ParquetFile(f).metadata.num_rows
    return counts


def finalize(step: Step, force: bool = False, root: str | None = None) -> str:
    """Make the step folder from the staged shards (all must be there), with row counts in step.json."""
    cfg: GenerateConfig = step.config

    def info(out: str) -> dict:
        rows = _row_counts(out)
        expected = {SHARD.format(i): cfg.shard_size(i) for i in range(cfg.n_shards)}
        if rows != expected:
            raise ValueError(f"generate {cfg.dataset}: shard row counts {rows} differ from {expected}")
        return {"rows": rows, "rows_total": sum(rows.values()), "dataset": cfg.dataset, "schema": record.SCHEMA.names}

    return finalize_parts(step, shard_names(step), info=info, force=force, root=root)


def run(step: Step, force: bool = False, root: str | None = None, processes: int = 0) -> str:
    """The whole step in one call (no orchestrator): every shard, then `finalize`; returns the step path."""
    if not force and step.done(root):
        return step.path(root)
    shards = parts(step)
    if processes <= 0:
        for i in shards:
            run_part(step, i, force, root)
    else:
        with concurrent.futures.ThreadPoolExecutor(processes) as ex:
            list(ex.map(lambda i: run_part(step, i, force, root, processes), shards))
    return finalize(step, force, root)


def processes_for(preset: Preset, steps: list[Step], force: bool = False, root: str | None = None) -> int:
    """The preset's `data.processes`, or (None) one process per core when more than one shard is to be made."""
    if preset.data.processes is not None:
        return preset.data.processes
    todo = sum(s.config.n_shards for s in steps if force or not s.done(root))
    return min(os.cpu_count() or 1, todo) if todo > 1 else 0
