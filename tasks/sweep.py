"""Prefect task of the sweep table step: resolve the sweep step of a preset's grid x seeds (every cell's
evaluate step is an input), skip it if done, else build `sweep.parquet` + `sweep.md`. Cached by the step id
while the step folder is finished (as every stage task)."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from physlm import sweep as psweep
from physlm.presets import resolve
from tasks.common import io_failure, step_cache_key


def _step(preset: str, overrides: list[str], seeds: list[int], **_):
    p = resolve(preset, overrides)
    return psweep.sweep_step(p, seeds, psweep.cell_eval_paths(p, seeds, ()))


@task(name="sweep-table", cache_key_fn=step_cache_key(_step), persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def sweep_table(preset: str, overrides: list[str], seeds: list[int], force: bool = False) -> str:
    """The sweep table of `preset`'s grid x `seeds` (every cell evaluated already); returns the step path."""
    return psweep.run_sweep_table(_step(preset, overrides, seeds), force=force)
