"""Problem shards: generate one shard, write it as ``shard_{i:05d}.parquet``, read shards back.

Seeds: shard i of a dataset gets ``shard_seed(base_seed, dataset, i)`` (SHA-256 of the three, 63 bits), and
problem j of that shard ``problem_seed(shard_seed, j)``. Shards are therefore independent — any one can be
regenerated alone — and a problem is a pure function of (config, base seed, dataset, shard, index).
Writes go through ``physlm.store.storage`` (atomic on local disk; a single PUT on S3) with the explicit schema
of ``physlm.igsm.record``; readers iterate shards in name order, rank-strided for multi-process readers.

Reading a step's shards is checked: a folder under ``PHYSLM_ROOT`` must be a finished step (``_SUCCESS``,
else ``StepNotDone``), its shards are the ones step.json lists, and each is read whole and compared with
the size and sha256 recorded there before it is parsed (``steps.read_checked``): a truncated, altered or
deleted shard is a ``CorruptStep`` naming the file, never wrong rows. Hashing costs about 1 s per GB, small
beside parsing. A plain folder outside the root (tests, ad-hoc files) is read as it is.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from physlm.igsm import record
from physlm.igsm.config import GenConfig
from physlm.igsm.generate import generate
from physlm.store import steps, storage

SHARD = "shard_{:05d}.parquet"


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: fits Parquet int64


def shard_seed(base_seed: int, dataset: str, shard: int) -> int:
    return _seed("shard", base_seed, dataset, shard)


def problem_seed(seed_of_shard: int, index: int) -> int:
    return _seed("problem", seed_of_shard, index)


def problem_id(dataset: str, shard: int, index: int) -> str:
    return f"{dataset}-{shard:05d}-{index:06d}"


def generate_shard(cfg: GenConfig, base_seed: int, dataset: str, shard: int, count: int) -> pa.Table:
    """``count`` problems of one shard as an Arrow table with the record schema."""
    s = shard_seed(base_seed, dataset, shard)
    rows = [
        record.row(generate(cfg, problem_seed(s, j)), problem_id(dataset, shard, j), dataset, cfg.train_bins)
        for j in range(count)
    ]
    return record.table(rows)


def write_shard(table: pa.Table, folder: str, shard: int) -> str:
    """Write one shard under ``folder`` (validated against the schema first); returns its URL."""
    if table.schema != record.SCHEMA:
        raise ValueError(f"shard {shard}: schema differs from the problem record schema")
    url = storage.join(folder, SHARD.format(shard))
    storage.write_parquet(table, url)
    return url


def shard_urls(folder: str, rank: int = 0, world: int = 1) -> list[str]:
    """The shard files of a folder in name order, rank-strided (files[rank::world])."""
    urls = [u for u in storage.glob(storage.join(folder, "shard_*.parquet"))]
    return sorted(urls)[rank::world]


def _recorded_shards(folder: str) -> dict | None:
    """step.json's `{name: {size, sha256}}` of the shards of a finished step folder; None for a plain folder
    outside the root; `StepNotDone` for an unfinished folder under the root."""
    if storage.exists(storage.join(folder, steps.SUCCESS)):
        files = steps.read_info(folder)["files"]
        return {k: v for k, v in files.items() if "/" not in k and k.startswith("shard_") and k.endswith(".parquet")}
    if steps.in_root(folder):
        steps.require_done(folder)
    return None


def read_shards(folder: str, columns: list[str] | None = None, rank: int = 0, world: int = 1) -> pa.Table:
    """The rows of a folder's shards (rank-strided), checked against step.json (see the module docstring)."""
    recorded = _recorded_shards(folder)
    empty = record.SCHEMA.empty_table() if columns is None else record.SCHEMA.empty_table().select(columns)
    if recorded is None:
        urls = shard_urls(folder, rank, world)
        return storage.read_parquet(urls, columns=columns) if urls else empty
    names = sorted(recorded)[rank::world]
    tables = [storage.parquet_table(steps.read_checked(folder, n, recorded), columns) for n in names]
    if not tables:
        return empty
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
