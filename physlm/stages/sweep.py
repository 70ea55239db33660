"""The depth x width sweep (igsm-spec.md C.7, E9): cells of a grid, and the `sweep` table step.

A sweep is a preset's `grid` of model shapes ("GPT2-l-h") x seeds over ONE dataset. Each cell is the
preset with two more overrides on top of the user's (``model.shape=GPT2-l-h``, ``train.seed=s``), so its
train / evaluate (/ probe) steps are ordinary content-addressed steps: a finished cell is never recomputed,
and the data steps (which depend on neither override) are shared by every cell.

sweep ``{root}/sweep/{hash}/`` — config: the grid, the seeds (+ the preset's name, not hashed); inputs: every
cell's evaluate step (named by cell). Writes

* ``sweep.parquet`` (:data:`SWEEP`): one row per (cell, test set, decoding) with the cell's pooled accuracy
  (the ``op = -1`` row of its ``accuracy.parquet``); ``best`` marks, per (model, test set), the best row
  over seeds x decodings (the paper reports the best of 2 seeds x beam {1, 4}); ties go to the lowest seed,
  then greedy before beam4;
* ``sweep.md``: the pivot of the best accuracies, model rows (by depth, then width) x test-set columns.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from physlm.config import ModelConfig, SweepConfig
from physlm.presets import Preset, apply
from physlm.stages import evaluate
from physlm.store import storage
from physlm.store.steps import Step, require_done, run_step
from physlm.tables import SWEEP, test_set_order

NAME = "sweep"
GPU = False
VERSION = 1
SEEDS = (0, 1)
"""Training seeds per shape when none are given (the paper reports the best of 2)."""

DECODING_ORDER = {"greedy": 0, "beam4": 1}


class SweepError(ValueError):
    """A preset without a grid, no seeds, or a cell whose evaluate output is missing."""


# ---------------------------------------------------------------------------------------------------------
# Cells


def cell_name(shape: str, seed: int) -> str:
    return f"{shape}-s{seed}"


def cells(preset: Preset, seeds, overrides=()) -> list[tuple[str, list[str]]]:
    """`[(cell name, overrides)]`, grid shape x seed (shape-major): each cell's overrides are the user's
    `overrides` followed by ``model.shape=<shape>`` and ``train.seed=<seed>`` (later keys win)."""
    seeds = tuple(int(s) for s in seeds)
    if not preset.grid:
        raise SweepError(f"preset {preset.name!r} has no grid (set grid=GPT2-2-2,GPT2-4-2 or use a grid-* preset)")
    if not seeds or len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds: expected distinct seeds, got {list(seeds)}")
    return [
        (cell_name(shape, seed), [*overrides, f"model.shape={shape}", f"train.seed={seed}"])
        for shape in preset.grid
        for seed in seeds
    ]


def cell_preset(preset: Preset, cell_overrides: list[str]) -> Preset:
    """The cell's preset: `preset` (already carrying the user's overrides) with the cell's overrides applied."""
    return apply(preset, cell_overrides)


def cell_eval_paths(preset: Preset, seeds, overrides=()) -> dict[str, str]:
    """`{cell name: evaluate step path}` of every cell (nothing is run)."""
    return {
        name: evaluate.evaluate_step(cell_preset(preset, ovr)).path() for name, ovr in cells(preset, seeds, overrides)
    }


# ---------------------------------------------------------------------------------------------------------
# The sweep step


def sweep_step(preset: Preset, seeds, cell_eval_paths: dict[str, str]) -> Step:
    """The sweep table step of `preset`'s grid x `seeds`; inputs: every cell's evaluate step path."""
    seeds = tuple(int(s) for s in seeds)
    want = [cell_name(shape, seed) for shape in preset.grid for seed in seeds]
    if sorted(want) != sorted(cell_eval_paths):
        raise SweepError(
            f"sweep {preset.name}: cell paths {sorted(cell_eval_paths)} do not match the grid x seeds {sorted(want)}"
        )
    cfg = SweepConfig(grid=tuple(preset.grid), seeds=seeds, preset=preset.name)
    return Step(NAME, cfg, inputs={name: cell_eval_paths[name] for name in want}, version=VERSION)


def plan(preset: Preset, seeds=SEEDS) -> list[Step]:
    """The sweep table step of a grid preset (its cells' steps are the train/evaluate/probe steps of the cell
    presets); none for a preset without a grid."""
    return [sweep_step(preset, seeds, cell_eval_paths(preset, seeds))] if preset.grid else []


def describe(step: Step) -> str:
    return f"{len(step.config.grid)} shapes x {len(step.config.seeds)} seeds"


def shape_sizes(shape: str) -> dict:
    mc = ModelConfig.from_name(shape)
    return {
        "model": shape,
        "n_layer": mc.n_layer,
        "n_head": mc.n_head,
        "width": mc.width,
        "params": mc.non_embedding_params(),
    }


def sweep_rows(cfg: SweepConfig, sweep_id: str, accuracy: dict[str, pa.Table]) -> list[dict]:
    """SWEEP rows from each cell's accuracy table (`{cell name: accuracy.parquet as a table}`)."""
    rows = []
    for shape in cfg.grid:
        sizes = shape_sizes(shape)
        for seed in cfg.seeds:
            name = cell_name(shape, seed)
            acc = accuracy[name]
            pooled = acc.filter(pc.equal(acc["op"], -1)).to_pylist()
            if not pooled:
                raise SweepError(f"sweep cell {name}: its accuracy table has no pooled (op = -1) rows")
            for a in pooled:
                rows.append(
                    {
                        "sweep_id": sweep_id,
                        "cell": name,
                        **sizes,
                        "seed": seed,
                        "test_set": a["test_set"],
                        "decoding": a["decoding"],
                        "accuracy": float(a["accuracy"]),
                        "n": int(a["n"]),
                        "best": False,
                    }
                )
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["model"], r["test_set"])
        rank = (-r["accuracy"], r["seed"], DECODING_ORDER.get(r["decoding"], 9), r["decoding"])
        if key not in best or rank < best[key][0]:
            best[key] = (rank, r)
    for _, r in best.values():
        r["best"] = True
    rows.sort(
        key=lambda r: (
            r["n_layer"],
            r["width"],
            r["seed"],
            test_set_order(r["test_set"]),
            DECODING_ORDER.get(r["decoding"], 9),
        )
    )
    return rows


def markdown(rows: list[dict]) -> str:
    """Model rows (by depth, then width) x test-set columns of the best accuracy (seed/decoding noted)."""
    best = [r for r in rows if r["best"]]
    sets = sorted({r["test_set"] for r in best}, key=test_set_order)
    models = sorted({(r["n_layer"], r["width"], r["model"], r["params"]) for r in best})
    cell = {(r["model"], r["test_set"]): r for r in best}
    lines = [
        "| model | layers | width | params | " + " | ".join(sets) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in sets) + " |",
    ]
    for n_layer, width, model, params in models:
        vals = []
        for s in sets:
            r = cell.get((model, s))
            vals.append("–" if r is None else f"{r['accuracy']:.1%} (s{r['seed']}, {r['decoding']}, n={r['n']})")
        lines.append(f"| {model} | {n_layer} | {width} | {params / 1e6:.2f}M | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def run(step: Step, force: bool = False) -> str:
    """Write `sweep.parquet` and `sweep.md` from every cell's finished evaluate step; returns the step path."""
    cfg: SweepConfig = step.config

    def body(out: str) -> dict:
        accuracy = {}
        for name, path in step.inputs.items():
            require_done(path)
            accuracy[name] = storage.read_parquet(storage.join(path, "accuracy.parquet"))
        rows = sweep_rows(cfg, f"{cfg.preset or 'sweep'}-{step.hash}", accuracy)
        storage.write_parquet(pa.Table.from_pylist(rows, schema=SWEEP), storage.join(out, "sweep.parquet"))
        storage.write_bytes(storage.join(out, "sweep.md"), markdown(rows).encode())
        return {"rows": len(rows), "cells": len(step.inputs)}

    return run_step(step, body, force=force)
