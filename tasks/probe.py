"""Prefect task of the probe stage: V-probes of the trained model on every task with baselines, the
layer-wise nece probe and the error-analysis probe points (physlm.stages.run_probe_stage); cached by the
probe step's hash; holds a `gpu` slot while probing."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from physlm import stages, storage
from physlm.presets import resolve
from tasks.generate import io_failure


def probe_cache_key(context, parameters) -> str | None:
    if parameters.get("force"):
        return None
    step = stages.probe_step(resolve(parameters["preset"], parameters["overrides"]))
    if not step.done():
        return None
    return f"{step.id}@{hashlib.sha256(storage.root().encode()).hexdigest()[:8]}"


@task(name="probe", cache_key_fn=probe_cache_key, persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def probe(preset: str, overrides: list[str], force: bool = False) -> str:
    """Probe the preset's trained model; returns the probe step path."""
    step = stages.probe_step(resolve(preset, overrides))
    if step.done() and not force:
        return step.path()
    with concurrency("gpu", occupy=1, strict=False):
        return stages.run_probe_stage(step, force=force)
