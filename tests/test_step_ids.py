"""Golden step ids of every preset: users' cached roots depend on them.

Every step of every named preset (each dataset, train, evaluate, probe, analyze, and the sweep table of the
grid presets over seeds 0 and 1) is pinned here. A refactor must leave them all unchanged; a change that
alters what a step outputs changes its id on purpose, with a version bump and the reason in the commit
message, and updates the pin in the same commit. New config fields enter no existing id while they hold
their default (``steps.HASH_IF_SET``).
"""

import pytest

from physlm import presets

GOLDEN = {
    "tiny": {
        "generate:train": "dcadbd46",
        "generate:test_id": "5bb7ffcc",
        "generate:test_seen": "e3ae965e",
        "generate:test_op4": "d33ac535",
        "generate:test_op5": "3ba52513",
        "generate:test_op6": "198f4b55",
        "generate:test_reask": "292785e4",
        "generate:test_reask_seen": "97345f73",
        "train": "f1cc07aa",
        "evaluate": "e464e0e4",
        "probe": "3a9b9d70",
        "analyze": "9f306a8e",
    },
    # installs physlm/pretrained/tiny (every section from its card): tiny's steps while tiny is the card's; they
    # stay when tiny changes
    "tiny-pretrained": {
        "generate:train": "dcadbd46",
        "generate:test_id": "5bb7ffcc",
        "generate:test_seen": "e3ae965e",
        "generate:test_op4": "d33ac535",
        "generate:test_op5": "3ba52513",
        "generate:test_op6": "198f4b55",
        "generate:test_reask": "292785e4",
        "generate:test_reask_seen": "97345f73",
        "train": "f1cc07aa",
        "evaluate": "e464e0e4",
        "probe": "1417f25e",
        "analyze": "8a5f5b42",
    },
    "med-pq": {
        "generate:train": "f9e011d4",
        "generate:test_id": "0256044b",
        "generate:test_op15": "7694796c",
        "generate:test_op20": "9e272922",
        "generate:test_op21": "3ab10d40",
        "generate:test_op22": "c5511046",
        "generate:test_op23": "8ca0585a",
        "generate:test_reask": "d1f80051",
        "train": "f2c7da85",
        "evaluate": "82d1b171",
        "probe": "fe6b9593",
        "analyze": "ca2b8f9e",
    },
    "med-qp": {
        "generate:train": "19da129b",
        "generate:test_id": "db804db4",
        "generate:test_op15": "f6fab24a",
        "generate:test_op20": "ee76f09e",
        "generate:test_op21": "190bebba",
        "generate:test_op22": "67911041",
        "generate:test_op23": "ac01aa25",
        "generate:test_reask": "a4e5e676",
        "train": "edb53fa4",
        "evaluate": "55703459",
        "probe": "9321c775",
        "analyze": "56cf9a3c",
    },
    "hard-pq": {
        "generate:train": "7d4016d4",
        "generate:test_id": "a8abf97a",
        "generate:test_op21": "ef88cfeb",
        "generate:test_op28": "6bdeb4f2",
        "generate:test_op29": "d68d9695",
        "generate:test_op30": "5745dbf2",
        "generate:test_op31": "bbbfabe9",
        "generate:test_op32": "f468d9c7",
        "generate:test_reask": "ed96c2eb",
        "train": "4ddd331d",
        "evaluate": "bde50207",
        "probe": "e6d37b03",
        "analyze": "4693d1af",
    },
    "hard-qp": {
        "generate:train": "92ee9e6a",
        "generate:test_id": "d1ccf300",
        "generate:test_op21": "7fcbdd9a",
        "generate:test_op28": "06c86ae1",
        "generate:test_op29": "505b32b7",
        "generate:test_op30": "3f0e49a2",
        "generate:test_op31": "274dd1b8",
        "generate:test_op32": "ee5388fb",
        "generate:test_reask": "b01e2fc6",
        "train": "301eb779",
        "evaluate": "66d7977f",
        "probe": "542d5a94",
        "analyze": "81afa3f2",
    },
    "grid-tiny": {
        "generate:train": "dcadbd46",
        "generate:test_id": "5bb7ffcc",
        "generate:test_seen": "e3ae965e",
        "generate:test_op4": "d33ac535",
        "generate:test_op5": "3ba52513",
        "generate:test_op6": "198f4b55",
        "generate:test_reask": "292785e4",
        "generate:test_reask_seen": "97345f73",
        "train": "81cad387",
        "evaluate": "b3e18e70",
        "probe": "17ede35c",
        "analyze": "0e0df2be",
        "sweep": "aa403656",
    },
    "grid-size1": {
        "generate:train": "f9e011d4",
        "generate:test_id": "0256044b",
        "generate:test_op15": "7694796c",
        "generate:test_op20": "9e272922",
        "generate:test_op21": "3ab10d40",
        "generate:test_op22": "c5511046",
        "generate:test_op23": "8ca0585a",
        "generate:test_reask": "d1f80051",
        "train": "f2c7da85",
        "evaluate": "82d1b171",
        "probe": "7ecd0d66",
        "analyze": "60ac5568",
        "sweep": "ec7b57d0",
    },
    "grid-size2": {
        "generate:train": "f9e011d4",
        "generate:test_id": "0256044b",
        "generate:test_op15": "7694796c",
        "generate:test_op20": "9e272922",
        "generate:test_op21": "3ab10d40",
        "generate:test_op22": "c5511046",
        "generate:test_op23": "8ca0585a",
        "generate:test_reask": "d1f80051",
        "train": "f2c7da85",
        "evaluate": "82d1b171",
        "probe": "7ecd0d66",
        "analyze": "60ac5568",
        "sweep": "28f706d2",
    },
}


def step_ids(preset) -> dict[str, str]:
    """``{step label: hash}`` of every step a preset plans (nothing is run, nothing is generated)."""
    from physlm import plan
    from physlm.stages import sweep

    out = {}
    for stage, step in plan.steps(preset):
        out[f"generate:{step.config.dataset}" if stage == "generate" else stage] = step.hash
    if preset.grid:
        out["sweep"] = sweep.sweep_step(preset, (0, 1), sweep.cell_eval_paths(preset, (0, 1))).hash
    return out


def test_every_preset_is_pinned():
    assert sorted(GOLDEN) == sorted(presets.PRESETS)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_preset_step_ids_are_unchanged(name, root):
    assert step_ids(presets.PRESETS[name]) == GOLDEN[name]
