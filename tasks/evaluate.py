"""Prefect task of the evaluate stage: decode every test set with the final checkpoint and check every
solution; cached by the evaluate step's hash; holds a `gpu` slot while decoding."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from physlm import stages
from physlm.presets import resolve
from tasks.common import io_failure, run_on_gpu, step_cache_key


def _step(preset: str, overrides: list[str], **_):
    return stages.evaluate_step(resolve(preset, overrides))


@task(name="evaluate", cache_key_fn=step_cache_key(_step), persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def evaluate(preset: str, overrides: list[str], force: bool = False) -> str:
    """Evaluate the preset's trained model on its test sets; returns the evaluate step path."""
    return run_on_gpu(_step(preset, overrides), stages.run_evaluate, force)
