"""The sweep flow: the depth x width grid of a preset (`grid-tiny`, `grid-size1`, `grid-size2`, or any preset
with `grid=GPT2-2-2,GPT2-4-2`) x seeds over ONE dataset (spec C.7, E9). Deployed on a cron schedule.

1. the data: the generate flow, once (every cell shares it; cached after the first run);
2. every cell (physlm.sweep.cells: the preset + ``model.shape=...`` + ``train.seed=...``) as a chain of
   Prefect tasks, train -> evaluate -> probe, all cells submitted at once
   (the task runner / work pool runs them concurrently; `gpu` concurrency slots throttle them). Each task is
   cached by its step: a finished cell is never recomputed, a rerun with nothing changed is all cache hits,
   and a cell whose train or evaluate fails fails alone (the others finish and stay cached);
3. the sweep table step (`sweep.parquet`, `sweep.md`) once every cell is evaluated; the pivot is printed and
   published as the `sweep` markdown artifact. If cells failed, they are listed and the flow fails at the
   end (no partial table is ever cached under the full grid's hash); the rerun redoes only those cells.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import table
from flows.generate import generate
from physlm import stages, storage, sweep as psweep
from physlm.presets import resolve
from tasks.evaluate import evaluate as evaluate_task
from tasks.sweep import sweep_table
from tasks.train import train as train_task


class SweepCellsFailed(RuntimeError):
    """Some cells of the sweep failed; the others finished (and are cached)."""


def probe_task():
    """HOOK for the probe stage (issue 6): the probe task chained after evaluate in each cell, or None while
    the stage does not exist yet (`tasks/probe.py` with a `probe(preset, overrides, force)` task and
    `physlm.stages.probe_step`). The sweep table does not read probe outputs; the cells just produce them."""
    if not hasattr(stages, "probe_step"):
        return None
    try:
        from tasks.probe import probe
    except ImportError:
        return None
    return probe


def _warm_imports() -> None:
    """Import the model classes once, before cells run in parallel threads: transformers' lazy module is not
    thread-safe on first import (two cells importing it at once fail with "cannot import name ...")."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM  # noqa: F401

    import physlm.train  # noqa: F401


def _status(step, force: bool) -> str:
    return "cached" if step.done() and not force else "will-run"


@flow(name="sweep", log_prints=True)
def sweep(preset: str = "grid-tiny", overrides: list[str] = [], seeds: list[int] = [0, 1],  # noqa: B006
          dry_run: bool = False, force: bool = False) -> str:
    """Train, evaluate (and probe) every cell of `preset`'s grid x `seeds`, then the sweep table; returns the
    sweep step path. `force` reruns every cell's stages and the table (the data stays cached)."""
    p = resolve(preset, overrides)
    seeds = [int(s) for s in seeds]
    cell_list = psweep.cells(p, seeds, overrides)
    probe = probe_task()
    plan, eval_paths = [], {}
    for name, ovr in cell_list:
        cp = resolve(preset, ovr)
        tstep, estep = stages.train_step(cp), stages.evaluate_step(cp)
        eval_paths[name] = estep.path()
        plan.append({"cell": name, "train": tstep.hash, "train status": _status(tstep, force),
                     "evaluate": estep.hash, "evaluate status": _status(estep, force)})
        if probe is not None:
            pstep = stages.probe_step(cp)
            plan[-1].update({"probe": pstep.hash, "probe status": _status(pstep, force)})
    sstep = psweep.sweep_step(p, seeds, eval_paths)
    print(f"sweep plan for preset {p.name}: {len(p.grid)} shapes x {len(seeds)} seeds = {len(cell_list)} cells"
          f"{'' if probe else ' (probe stage not available yet: cells are train -> evaluate)'}; "
          f"table {sstep.id} {_status(sstep, force)}\n"
          + table(plan, ["cell", "train", "train status", "evaluate", "evaluate status"]
                  + (["probe", "probe status"] if probe else [])))
    generate(preset=preset, overrides=overrides, dry_run=dry_run)
    if dry_run:
        return sstep.path()

    # ---- every cell's chain at once; a failed train leaves its evaluate NotReady, the other cells run on
    _warm_imports()
    last = {}
    for name, ovr in cell_list:
        t = train_task.with_options(task_run_name=f"train-{name}").submit(preset, ovr, force=force)
        e = evaluate_task.with_options(task_run_name=f"evaluate-{name}").submit(preset, ovr, force=force,
                                                                                 wait_for=[t])
        last[name] = [t, e]
        if probe is not None:
            last[name].append(probe.with_options(task_run_name=f"probe-{name}").submit(preset, ovr, force=force,
                                                                                       wait_for=[e]))
    failed = {}
    for name, futures in last.items():
        for fut in futures:
            fut.wait()
        bad = [f"{fut.state.name}: {_message(fut.state)}" for fut in futures if not fut.state.is_completed()]
        if bad:
            failed[name] = bad[0]
    if failed:
        lines = "\n".join(f"  {name}: {why}" for name, why in failed.items())
        print(f"sweep: {len(failed)} of {len(cell_list)} cells failed (the others are done and cached):\n{lines}")
        raise SweepCellsFailed(f"{len(failed)} of {len(cell_list)} sweep cells failed: {', '.join(failed)}; "
                               "rerun the sweep to redo only those")

    path = sweep_table.with_options(task_run_name="sweep-table")(preset, overrides, seeds, force=force)
    pivot = storage.read_bytes(storage.join(path, "sweep.md")).decode()
    print(f"sweep {p.name} ({sstep.id}): best accuracy of {len(seeds)} seed(s) x decodings\n{pivot}")
    create_markdown_artifact(key="sweep", markdown=f"# Depth x width sweep ({p.name}, {sstep.id})\n\n"
                                                   f"Best of seeds {seeds} x decodings {list(p.evaluate.decodings)}"
                                                   f"\n\n{pivot}")
    return path


def _message(state) -> str:
    return " ".join((state.message or "").split())[:300]


if __name__ == "__main__":
    sweep(preset="grid-tiny")
