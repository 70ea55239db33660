"""Prefect task of the analyze stage: every canned query (one per paper figure) -> Parquet + markdown in the
analyze step folder; cached by that step's hash, like every other task (no GPU, no retries on bad SQL)."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from physlm import analysis, stages
from physlm.presets import resolve
from tasks.common import io_failure, step_cache_key


def analyze_step_for(preset: str, overrides: list[str], **_):
    """The preset's analyze step (over its evaluate and probe steps)."""
    return stages.analyze_step(resolve(preset, overrides))


@task(name="analyze", cache_key_fn=step_cache_key(analyze_step_for), persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def analyze(preset: str, overrides: list[str], force: bool = False) -> str:
    """Run every canned query over the warehouse; returns the analyze step path."""
    return analysis.run_analyze_step(analyze_step_for(preset, overrides), force=force)
