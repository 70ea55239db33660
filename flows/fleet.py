"""Fanning out over the fleet: each sweep cell and each block of shards its own flow run on the work pools.

Inside one flow run everything runs on the one machine that picked it up. When a Prefect server with the
physlm deployments is configured, the sweep instead starts every cell as a run of the `cell` deployment (gpu
pool) and a dataset of many shards as runs of the `generate-block` deployment (cpu pool): any idle worker of
the pool picks each up, and the results meet in the shared root (`PHYSLM_ROOT=s3://...`), where every step is
the same content-addressed folder it would be on one machine.

* `mode(fan_out)`: "on", "off", or "auto" — on exactly when `PREFECT_API_URL` names a server (not Prefect's
  ephemeral API on a laptop) and the `cell` deployment exists there; the choice is printed in dry runs.
* Cells: a cell whose probe step is done is not started at all. Each started run is awaited; a run that ends
  Crashed (its process died: a preempted machine, a SIGKILL) is started again, up to `RESTARTS` times, and the
  new run resumes training from the last checkpoint in the shared root; a run that Failed (an exception) fails
  alone, as in-process cells do.
* Blocks: with `data.block_shards=N`, a dataset of more than N shards is made as blocks of N shards, each a
  `generate-block` run staging its shards (`physlm.store.steps.write_part`); the step is finalized once every
  block is done (`finalize_parts`), byte for byte what one machine writes (shards are seeded independently).
"""

from __future__ import annotations

import os
import time

from prefect import flow, unmapped
from prefect.deployments import run_deployment

from physlm.presets import resolve
from physlm.stages import generate as gen_stage
from tasks.step import run_part

CELL = "cell/cell"
BLOCK = "generate-block/generate-block"
RESTARTS = 2
"""Times a crashed cell run is started again before the cell counts as failed."""
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(name)
        return True
    except ObjectNotFound:
        return False


def mode(fan_out: str = "auto", deployment: str = CELL) -> bool:
    """Whether work goes to the pools as runs of `deployment` (module docstring)."""
    if fan_out not in ("auto", "on", "off"):
        raise ValueError(f"fan_out: must be 'auto', 'on' or 'off', got {fan_out!r}")
    if fan_out != "auto":
        return fan_out == "on"
    return bool(os.environ.get("PREFECT_API_URL")) and _deployment_exists(deployment)


def describe(fan_out: str) -> str:
    on = mode(fan_out)
    where = "each cell a run of the `cell` deployment on the gpu pool" if on else "cells run in this flow run"
    return f"fan-out {'on' if on else 'off'} ({fan_out}): {where}"


# ---------------------------------------------------------------------------------------------------------
# The flows the fleet runs


@flow(name="cell", log_prints=True)
def cell(preset: str = "grid-tiny", overrides: list[str] = [], force: bool = False) -> dict[str, str]:  # noqa: B006
    """One sweep cell (the preset with the cell's overrides): train, evaluate, probe; its data steps are done."""
    from flows.pipeline import run_study

    return run_study(preset, overrides, "probe", False, {"train", "evaluate", "probe"} if force else set())


@flow(name="generate-block", log_prints=True)
def generate_block(preset: str = "tiny", overrides: list[str] = [], dataset: str = "train",  # noqa: B006
                   first: int = 0, last: int = 1) -> list[str]:  # fmt: skip
    """Stage shards `first` .. `last - 1` of one dataset of the preset (its step is finalized by the caller)."""
    p = resolve(preset, overrides)
    step = gen_stage.dataset_step(p, dataset)
    processes = gen_stage.processes_for(p, [step])
    name = f"generate-{dataset}-{{part:05d}}"
    shards = list(range(first, last))
    futures = run_part.with_options(task_run_name=name).map(
        unmapped("generate"), unmapped(step), shards, processes=unmapped(processes)
    )
    return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------------------
# Starting runs and waiting for them


def _start(deployment: str, parameters: dict, name: str):
    return run_deployment(deployment, parameters=parameters, timeout=0, flow_run_name=name)


def _states(run_ids: list) -> dict:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {rid: client.read_flow_run(rid).state for rid in run_ids}


def wait(runs: dict[str, object], poll: float = 2.0) -> dict[str, object]:
    """Wait until every run (`{key: FlowRun}`) reached a final state; returns `{key: State}`."""
    pending, done = dict(runs), {}
    while pending:
        states = _states([r.id for r in pending.values()])
        for key, run in list(pending.items()):
            state = states[run.id]
            if state is not None and state.type.value in FINAL:
                done[key] = state
                del pending[key]
        if pending:
            time.sleep(poll)
    return done


def run_cells(preset: str, cells: dict[str, list[str]], force: bool) -> dict[str, str]:
    """Start every cell (`{cell: its overrides}`) as a `cell` run and wait; crashed runs are started again.
    Returns `{cell: why}` of the cells that did not complete."""
    runs = {
        c: _start(CELL, {"preset": preset, "overrides": ovr, "force": force}, f"cell-{c}") for c, ovr in cells.items()
    }
    failed: dict[str, str] = {}
    restarts = dict.fromkeys(cells, 0)
    while runs:
        states = wait(runs)
        runs = {}
        for c, state in states.items():
            if state.type.value == "COMPLETED":
                continue
            if state.type.value == "CRASHED" and restarts[c] < RESTARTS:
                restarts[c] += 1
                print(f"cell {c}: run crashed ({' '.join((state.message or '').split())[:200]}); starting it again "
                      f"({restarts[c]} of {RESTARTS}), it resumes from its last checkpoint")  # fmt: skip
                runs[c] = _start(
                    CELL, {"preset": preset, "overrides": cells[c], "force": False}, f"cell-{c}-r{restarts[c]}"
                )
            else:
                failed[c] = f"{state.name}: {' '.join((state.message or '').split())[:300]}"
    return failed


def generate_in_blocks(preset: str, overrides: list[str], steps: list) -> dict[str, str]:
    """Make the datasets of more than `data.block_shards` shards as `generate-block` runs, then finalize each;
    returns `{step id: path}` of those (the other datasets are left to the caller)."""
    p = resolve(preset, overrides)
    size = p.data.block_shards
    big = [s for s in steps if size and s.config.n_shards > size and not s.done()]
    runs = {}
    for s in big:
        for first in range(0, s.config.n_shards, size):
            last = min(first + size, s.config.n_shards)
            params = {"preset": preset, "overrides": overrides, "dataset": s.config.dataset, "first": first,
                      "last": last}  # fmt: skip
            runs[(s.id, first)] = _start(BLOCK, params, f"generate-{s.config.dataset}-{first:05d}-{last - 1:05d}")
    bad = {k: st for k, st in wait(runs).items() if st.type.value != "COMPLETED"}
    if bad:
        raise RuntimeError(f"generate blocks failed: {', '.join(f'{k[0]}[{k[1]}:]' for k in bad)}")
    return {s.id: gen_stage.finalize(s) for s in big}
