"""Presets resolve, overrides apply with type checks, and each bad input gives its one-line message."""

import pytest

from physlm.config import ConfigError as PresetError
from physlm.igsm.config import HARD, MED
from physlm.presets import PRESETS, resolve


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves(name):
    p = resolve(name)
    sets = p.data.datasets()
    assert list(sets)[0] == "train" and "test_id" in sets and "test_reask" in sets
    assert sets["test_id"][0].split == "test" and sets["train"][0].split == "train"


def test_paper_test_sets_follow_spec_c3():
    med = resolve("med-qp").data.datasets()
    assert list(med) == [
        "train",
        "test_id",
        "test_op15",
        "test_op20",
        "test_op21",
        "test_op22",
        "test_op23",
        "test_reask",
    ]
    assert all(n == 4096 for name, (_, n) in med.items() if name != "train")
    assert med["test_op20"][0].op == 20 and med["test_op20"][0].format == "qp"
    assert med["test_reask"][0].reask and med["test_reask"][0].op == 23
    hard = resolve("hard-pq").data
    assert hard.family == HARD and hard.ood_ops_resolved() == (28, 29, 30, 31, 32)
    assert hard.datasets()["test_reask"][0].op == 32
    assert resolve("grid-size1").grid[2] == "GPT2-12-12" and len(resolve("grid-size2").grid) == 5


def test_tiny_is_small():
    d = resolve("tiny").data
    assert d.family.max_op == 4 and d.family.max_edge == 6 and d.test_problems <= 500
    assert list(d.datasets()) == [
        "train",
        "test_id",
        "test_seen",
        "test_op4",
        "test_op5",
        "test_op6",
        "test_reask",
        "test_reask_seen",
    ]
    assert d.datasets()["test_seen"][0] == d.datasets()["train"][0]  # same config, own seeds


def test_overrides_apply_and_parse_types():
    p = resolve(
        "tiny",
        [
            "data.train_shards=3",
            "data.family.max_op=5",
            "data.ood_ops=6",
            "data.childless=false",
            "data.processes=none",
            "grid=GPT2-2-2,GPT2-4-4",
        ],
    )
    assert p.data.train_shards == 3 and p.data.family.max_op == 5 and p.data.ood_ops == (6,)
    assert p.data.childless is False and p.data.processes is None and p.grid == ("GPT2-2-2", "GPT2-4-4")
    assert p.name == "tiny"
    # A family by name, then edited; custom families have no OOD test sets unless given.
    p = resolve("tiny", ["data.family=med", "data.ood_ops=[20,21]"])
    assert p.data.family == MED and list(p.data.datasets())[-4:] == [
        "test_op20",
        "test_op21",
        "test_reask",
        "test_reask_seen",
    ]
    p = resolve("tiny", ["data.family.max_op=3", "data.ood_ops=none"])
    assert list(p.data.datasets()) == ["train", "test_id", "test_seen", "test_op3", "test_reask", "test_reask_seen"]
    assert p.data.datasets()["test_reask"][0].op == 3
    assert resolve("tiny") == PRESETS["tiny"]  # overrides never mutate the registry


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nope", [], "unknown preset 'nope'; known: tiny, med-pq"),
        ("med_pq", [], "(did you mean med-pq?)"),
        ("tiny", ["data.trian_shards=3"], "unknown key 'data.trian_shards'; did you mean data.train_shards"),
        ("tiny", ["zzz=1"], "unknown key 'zzz'; known keys: data, data.family"),
        ("tiny", ["data.train_shards"], "expected key=value"),
        ("tiny", ["data.train_shards=three"], "data.train_shards: expected an int, got 'three'"),
        ("tiny", ["data.childless=maybe"], "data.childless: expected true or false"),
        ("tiny", ["data.ood_ops=[5,x]"], "data.ood_ops: expected a list"),
        ("tiny", ["data.family=zz"], "data.family: expected a family name"),
        ("tiny", ["data.train_shards=0"], "data.train_shards: must be an integer >= 1, got 0"),
        ("tiny", ["data.family.max_op=99"], "data.family.max_op: must be in 1..52, got 99"),
        ("tiny", ["data.format=xy"], "data.format: must be 'pq' or 'qp'"),
        ("tiny", ["data.ood_ops=3"], "data.ood_ops: 3 is not out of distribution"),
        ("tiny", ["data.ood_ops=60"], "data.ood_ops: 60 is out of reach of family 'tiny' (max_edge=6: op <= 52)"),
        ("tiny", ["data.bias=both"], "data.bias: must be 'code' or 'paper'"),  # GenConfig's own check, propagated
        ("tiny", ["grid=GPT2-x"], "grid: model shape 'GPT2-x' is not of the form GPT2-<layers>-<heads>"),
        ("tiny", ["data.test_seen=false"], "probe.test_sets: test_seen needs data.test_seen=true"),
        ("tiny", ["probe.test_sets=test_id,test_reask"], "probe.test_sets: distinct values among"),
    ],
)
def test_bad_input_messages(name, overrides, message):
    with pytest.raises(PresetError) as e:
        resolve(name, overrides)
    text = str(e.value)
    assert message in text and "\n" not in text
