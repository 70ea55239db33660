"""The generate flow: every dataset of a preset (training shards and the test sets of spec C.3).

Each dataset is one content-addressed step; its shards are mapped over in parallel (`generate-shard`
tasks on the flow's thread pool; with `data.processes` != 0 each shard is computed in a pool of spawned
processes, since generation is CPU-bound Python), then `generate-step` finishes the step folder. Cached
steps map nothing: only their `generate-step` task runs, and Prefect shows it as Cached.
"""

from __future__ import annotations

from prefect import flow, unmapped

from flows.common import table
from physlm import datasets
from physlm.presets import resolve
from tasks.generate import generate_shard, generate_step


@flow(name="generate", log_prints=True)
def generate(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
             force: bool = False) -> dict[str, str]:
    """Generate every dataset of `preset` (with `key=value` overrides); returns {dataset: step path}."""
    p = resolve(preset, overrides)
    steps = datasets.generate_steps(p)
    plan = datasets.plan(steps, force=force)
    print(f"generate plan for preset {p.name} ({'dry run' if dry_run else 'force' if force else 'run'}):\n"
          + table(plan, ["step", "dataset", "hash", "shards", "problems", "status"]))
    if dry_run:
        return {}

    # ---- shards of every step to run, in parallel; then one finishing task per step
    processes = datasets.processes_for(p, steps, force=force)
    finished = {}
    for row, step in zip(plan, steps):
        shards = []
        if row["status"] == "will-run":
            shards = generate_shard.map(unmapped(preset), unmapped(overrides), unmapped(row["dataset"]),
                                        range(step.config.n_shards), force=unmapped(force),
                                        processes=unmapped(processes))
        finished[row["dataset"]] = generate_step.submit(preset, overrides, row["dataset"], force=force,
                                                        wait_for=shards)
    paths = {name: fut.result() for name, fut in finished.items()}
    ran = sum(row["status"] == "will-run" for row in plan)
    print(f"generate: {len(plan)} steps, {len(plan) - ran} cached, {ran} ran")
    return paths


if __name__ == "__main__":
    generate(preset="tiny")
