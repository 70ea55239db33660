"""Prefect task of the evaluate stage: decode every test set with the final checkpoint and check every
solution; cached by the evaluate step's hash; holds a `gpu` slot while decoding."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from physlm import stages, storage
from physlm.presets import resolve
from tasks.generate import io_failure


def evaluate_cache_key(context, parameters) -> str | None:
    if parameters.get("force"):
        return None
    step = stages.evaluate_step(resolve(parameters["preset"], parameters["overrides"]))
    if not step.done():
        return None
    return f"{step.id}@{hashlib.sha256(storage.root().encode()).hexdigest()[:8]}"


@task(name="evaluate", cache_key_fn=evaluate_cache_key, persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def evaluate(preset: str, overrides: list[str], force: bool = False) -> str:
    """Evaluate the preset's trained model on its test sets; returns the evaluate step path."""
    step = stages.evaluate_step(resolve(preset, overrides))
    if step.done() and not force:
        return step.path()
    with concurrency("gpu", occupy=1, strict=False):
        return stages.run_evaluate(step, force=force)
