"""Prefect task of the probe stage: V-probes of the trained model on every task with baselines, the
layer-wise nece probe and the error-analysis probe points (physlm.stages.run_probe_stage); cached by the
probe step's hash; holds a `gpu` slot while probing."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from physlm import stages
from physlm.presets import resolve
from tasks.common import io_failure, run_on_gpu, step_cache_key


def _step(preset: str, overrides: list[str], **_):
    return stages.probe_step(resolve(preset, overrides))


@task(name="probe", cache_key_fn=step_cache_key(_step), persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def probe(preset: str, overrides: list[str], force: bool = False) -> str:
    """Probe the preset's trained model; returns the probe step path."""
    return run_on_gpu(_step(preset, overrides), stages.run_probe_stage, force)
