"""Shard writer/reader: fixed-width names, explicit schema, per-shard seeds, rank striding."""

from __future__ import annotations

import pytest

from physlm.igsm import record
from physlm.igsm.config import Family, GenConfig
from physlm.store import shards, storage

CFG = GenConfig(family=Family("tiny", max_op=4, max_edge=6))


def test_write_read_round_trip_and_names(tmp_path):
    folder = str(tmp_path / "ds")
    urls = [shards.write_shard(shards.generate_shard(CFG, 5, "train", i, 7), folder, i) for i in range(3)]
    assert [u.rsplit("/", 1)[1] for u in urls] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    t = shards.read_shards(folder)
    assert t.schema == record.SCHEMA and t.num_rows == 21
    assert t.column("id").to_pylist()[:2] == ["train-00000-000000", "train-00000-000001"]
    # rank striding covers every shard exactly once
    parts = [shards.shard_urls(folder, r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(urls) and not set(parts[0]) & set(parts[1])


def test_shards_are_independent_and_deterministic():
    a = shards.generate_shard(CFG, 5, "train", 3, 4)
    b = shards.generate_shard(CFG, 5, "train", 3, 4)
    c = shards.generate_shard(CFG, 5, "train", 4, 4)
    d = shards.generate_shard(CFG, 5, "test_id", 3, 4)
    assert a.equals(b)
    assert a.column("problem") != c.column("problem") and a.column("problem") != d.column("problem")
    assert len(set(a.column("seed").to_pylist() + c.column("seed").to_pylist())) == 8


def test_schema_mismatch_is_refused_and_nothing_written(tmp_path):
    t = shards.generate_shard(CFG, 5, "train", 0, 2).drop_columns(["answer"])
    with pytest.raises(ValueError, match="schema"):
        shards.write_shard(t, str(tmp_path), 0)
    assert not list(tmp_path.iterdir())


def test_empty_folder_reads_empty_table(tmp_path):
    assert shards.read_shards(str(tmp_path)).num_rows == 0
    assert storage.glob(str(tmp_path / "shard_*.parquet")) == []
