"""The sweep flow: the depth x width grid of a preset (`grid-tiny`, `grid-size1`, `grid-size2`, or any preset
with `grid=GPT2-2-2,GPT2-4-2`) x seeds over ONE dataset (spec C.7, E9). Deployed on a cron schedule.

1. the data: every generate step of the preset, once (every cell shares it; cached after the first run);
2. every cell (physlm.stages.sweep.cells: the preset + ``model.shape=...`` + ``train.seed=...``) as a chain of
   tasks, train -> evaluate -> probe, all cells submitted at once (the task runner / work pool runs them
   concurrently; `gpu` concurrency slots throttle them). Each task is cached by its step: a finished cell is
   never recomputed, a rerun with nothing changed is all cache hits, and a cell whose train or evaluate
   fails fails alone (the others finish and stay cached);
3. the sweep table step (`sweep.parquet`, `sweep.md`) once every cell is evaluated; the pivot is printed and
   published as the `sweep` markdown artifact. If cells failed, they are listed and the flow fails at the
   end (no partial table is ever cached under the full grid's hash); the rerun redoes only those cells.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact

from flows import fleet
from physlm import plan
from physlm.presets import resolve
from physlm.progress import progress
from physlm.stages import evaluate, generate, probe, train
from physlm.stages import sweep as psweep
from physlm.store import storage
from physlm.store.steps import made_by
from tasks.step import run_part, run_step

CELL = ("train", "evaluate", "probe")
"""The stages of one cell, in order."""


class SweepCellsFailed(RuntimeError):
    """Some cells of the sweep failed; the others finished (and are cached)."""


def _warm_imports() -> None:
    """Import the model classes once, before cells run in parallel threads: transformers' lazy module is not
    thread-safe on first import (two cells importing it at once fail with "cannot import name ...")."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: F401

    import physlm.model.train  # noqa: F401


def cell_steps(preset: str, overrides: list[str], seeds: list[int]) -> dict[str, list]:
    """`{cell: [(stage, step), ...]}`: each cell's train, evaluate and probe steps."""
    p = resolve(preset, overrides)
    out = {}
    for name, ovr in psweep.cells(p, seeds, overrides):
        cp = resolve(preset, ovr)
        out[name] = [
            ("train", train.train_step(cp)),
            ("evaluate", evaluate.evaluate_step(cp)),
            ("probe", probe.probe_step(cp)),
        ]
    return out


def plan_text(preset: str, overrides: list[str], seeds: list[int], force: bool = False, fan_out: str = "auto") -> str:
    """The sweep's plan: every cell's steps, cached or will-run, the table step, and where cells run."""
    p = resolve(preset, overrides)
    cells = cell_steps(preset, overrides, seeds)
    sstep = psweep.sweep_step(p, seeds, {name: dict(pairs)["evaluate"].path() for name, pairs in cells.items()})
    return (
        f"sweep plan for preset {p.name}: {len(p.grid)} shapes x {len(seeds)} seeds = {len(cells)} cells; "
        f"table {sstep.id} {plan.status(sstep, force)}; {fleet.describe(fan_out)}\n{_plan_table(cells, force)}"
    )


def _plan_table(cells: dict[str, list], force: bool) -> str:
    rows = [
        {
            "cell": name,
            **{f"{s} step": step.id for s, step in pairs},
            **{s: plan.status(step, force) for s, step in pairs},
        }
        for name, pairs in cells.items()
    ]
    return plan.table(rows, ("cell", *CELL, *(f"{s} step" for s in CELL)))


def _data(preset: str, overrides: list[str], fan_out: str = "auto") -> None:
    """Every generate step of the preset (shards, then the step), as in the study's flow; on a fleet, datasets
    of more than `data.block_shards` shards as blocks on the cpu pool."""
    p = resolve(preset, overrides)
    steps = generate.plan(p)
    if p.data.block_shards and fleet.mode(fan_out, fleet.BLOCK):
        fleet.generate_in_blocks(preset, overrides, steps)
    processes = generate.processes_for(p, steps)
    done = []
    for step in steps:
        parts = (
            []
            if step.done()
            else run_part.with_options(task_run_name=f"generate-{step.config.dataset}-{{part:05d}}").map(
                unmapped("generate"), unmapped(step), generate.parts(step), processes=unmapped(processes)
            )
        )
        done.append(
            run_step.with_options(task_run_name=f"generate-{step.config.dataset}").submit(
                "generate", step, wait_for=parts
            )
        )
    for fut in done:
        fut.result()


@flow(name="sweep", log_prints=True)
def sweep(
    preset: str = "grid-tiny",
    overrides: list[str] = [],  # noqa: B006 (Prefect flow parameters: JSON defaults)
    seeds: list[int] = [0, 1],  # noqa: B006
    dry_run: bool = False,
    force: bool = False,
    fan_out: str = "auto",
) -> str:
    """Train, evaluate and probe every cell of `preset`'s grid x `seeds`, then the sweep table; returns the
    sweep step path. `force` reruns every cell's stages and the table (the data stays cached). `fan_out`:
    "auto" runs each cell as its own flow run on the gpu pool when a server has the `cell` deployment
    (flows/fleet.py), "on" / "off" force the choice."""
    p = resolve(preset, overrides)
    seeds = [int(s) for s in seeds]
    cells = cell_steps(preset, overrides, seeds)
    sstep = psweep.sweep_step(p, seeds, {name: dict(pairs)["evaluate"].path() for name, pairs in cells.items()})
    print(plan_text(preset, overrides, seeds, force, fan_out))
    if dry_run:
        return sstep.path()
    with made_by(preset=p.name, overrides=list(overrides)):  # recorded in each step.json (`physlm steps`)
        _data(preset, overrides, fan_out)
        failed = _cells(preset, overrides, seeds, cells, force, fan_out)
    if failed:
        lines = "\n".join(f"  {name}: {why}" for name, why in failed.items())
        print(f"sweep: {len(failed)} of {len(cells)} cells failed (the others are done and cached):\n{lines}")
        raise SweepCellsFailed(
            f"{len(failed)} of {len(cells)} sweep cells failed: {', '.join(failed)}; rerun the sweep to redo only those"
        )
    with made_by(preset=p.name, overrides=list(overrides)):
        path = run_step.with_options(task_run_name="sweep-table")("sweep", sstep, force=force)
    pivot = storage.read_bytes(storage.join(path, "sweep.md")).decode()
    print(f"sweep {p.name} ({sstep.id}): best accuracy of {len(seeds)} seed(s) x decodings\n{pivot}")
    create_markdown_artifact(
        key="sweep",
        markdown=f"# Depth x width sweep ({p.name}, {sstep.id})\n\n"
        f"Best of seeds {seeds} x decodings {list(p.evaluate.decodings)}\n\n{pivot}",
    )
    return path


def _cells(preset: str, overrides: list[str], seeds: list[int], cells: dict, force: bool, fan_out: str) -> dict:
    """Every cell, here or on the pool; `{cell: why}` of the failed ones."""
    if not fleet.mode(fan_out):
        _warm_imports()
        return _run_cells(cells, force)
    todo = {name: ovr for name, ovr in psweep.cells(resolve(preset, overrides), seeds, overrides)
            if force or not dict(cells[name])["probe"].done()}  # fmt: skip
    print(f"sweep: {len(cells) - len(todo)} cells cached, {len(todo)} started as runs of {fleet.CELL}")
    return fleet.run_cells(preset, todo, force)


def _run_cells(cells: dict[str, list], force: bool) -> dict[str, str]:
    """Every cell's chain at once; returns `{cell: why}` of the cells that failed (a failed train leaves its
    evaluate NotReady, the other cells run on)."""
    chains = {}
    for name, pairs in cells.items():
        futures = []
        for stage, step in pairs:
            futures.append(
                run_step.with_options(task_run_name=f"{stage}-{name}").submit(
                    stage, step, force=force, wait_for=futures[-1:]
                )
            )
        chains[name] = futures
    failed = {}
    with progress(len(chains), "sweep", "cells") as bar:
        for name, futures in chains.items():
            for fut in futures:
                fut.wait()
            bad = [f"{fut.state.name}: {_message(fut.state)}" for fut in futures if not fut.state.is_completed()]
            if bad:
                failed[name] = bad[0]
            bar.update(1)
    return failed


def _message(state) -> str:
    return " ".join((state.message or "").split())[:300]


if __name__ == "__main__":
    sweep(preset="grid-tiny")
