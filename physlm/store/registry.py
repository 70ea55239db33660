"""The checkpoint registry: one Parquet row per registered checkpoint, under ``{root}/registry/checkpoints/``.

"Which models exist" has one source of truth (README §3): every periodic and final checkpoint of a training
run is a row — model name and sizes, the data and train step hashes, step, tokens seen, loss, path, time.
Each registration writes its own small file ``{checkpoint_id}.parquet`` (whole-object write: atomic rename
locally, one PUT on S3), so concurrent trainers never read-modify-write a shared table and re-registering
the same checkpoint just rewrites the same file. Readers (``list_checkpoints``, DuckDB's
``read_parquet('{root}/registry/checkpoints/*.parquet')``) see the union.

The id is ``sha256(path)[:16]``: a checkpoint is its meta file's location.
"""

from __future__ import annotations

import hashlib
import time

import pyarrow as pa

from physlm.store import storage
from physlm.tables import CHECKPOINTS

SCHEMA = CHECKPOINTS


def folder(root: str | None = None) -> str:
    return storage.join(root or storage.root(), "registry", "checkpoints")


def checkpoint_id(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:16]


def row_from_meta(meta: dict, data_hash: str, train_hash: str) -> dict:
    """A registry row from a checkpoint meta dict (as passed to ``train(on_checkpoint=...)``)."""
    from physlm.config import ModelConfig

    mc = ModelConfig(**meta["model_config"])
    return {
        "checkpoint_id": checkpoint_id(meta["path"]),
        "model": mc.name,
        "n_layer": mc.n_layer,
        "n_head": mc.n_head,
        "width": mc.width,
        "params": mc.params(),
        "non_embedding_params": mc.non_embedding_params(),
        "data_hash": data_hash,
        "train_hash": train_hash,
        "step": meta["step"],
        "tokens_seen": meta["tokens_seen"],
        "loss": meta.get("loss"),
        "final": meta["step"] >= meta["train_config"]["steps"],
        "path": meta["path"],
        "created_at": int(meta.get("created_at", time.time()) * 1e6),
    }


def register(row: dict, root: str | None = None) -> str:
    """Write one row (keys of ``SCHEMA``; ``created_at`` in µs or omitted = now); returns its file URL."""
    row = {**row, "created_at": row.get("created_at") or int(time.time() * 1e6)}
    missing = [f.name for f in SCHEMA if f.name not in row]
    if missing:
        raise ValueError(f"registry row: missing fields {missing}")
    table = pa.Table.from_pylist([{f.name: row[f.name] for f in SCHEMA}], schema=SCHEMA)
    url = storage.join(folder(root), f"{row['checkpoint_id']}.parquet")
    storage.write_parquet(table, url)
    return url


def list_checkpoints(root: str | None = None) -> pa.Table:
    """Every registered checkpoint, sorted by (train_hash, step)."""
    urls = storage.glob(storage.join(folder(root), "*.parquet"))
    if not urls:
        return SCHEMA.empty_table()
    table = storage.read_parquet(urls).cast(SCHEMA)
    return table.sort_by([("train_hash", "ascending"), ("step", "ascending")])


def latest(train_hash: str, root: str | None = None, final_only: bool = False) -> dict | None:
    """The row with the highest step of a train step hash (``final_only``: only a finished run's), or None."""
    rows = [
        r
        for r in list_checkpoints(root).to_pylist()
        if r["train_hash"] == train_hash and (r["final"] or not final_only)
    ]
    return max(rows, key=lambda r: (r["step"], r["created_at"])) if rows else None
