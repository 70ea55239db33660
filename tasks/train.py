"""Prefect task of the train stage: resolve the preset's train step, skip it if done, else train (resuming
from the step's staging folder: a retried or restarted task continues from its last checkpoint), finish
the step and register its checkpoints, holding a `gpu` slot while training."""

from __future__ import annotations

from prefect import task
from prefect.tasks import exponential_backoff

from physlm import datasets, stages
from physlm.presets import resolve
from tasks.common import io_failure, run_on_gpu, step_cache_key


def _step(preset: str, overrides: list[str], **_):
    return stages.train_step(resolve(preset, overrides))


@task(name="train", cache_key_fn=step_cache_key(_step), persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def train(preset: str, overrides: list[str], force: bool = False) -> str:
    """Train the preset's model; returns the train step path."""
    data = datasets.step_for(resolve(preset, overrides), "train")
    return run_on_gpu(_step(preset, overrides), lambda step, force: stages.run_train(step, data, force=force), force)
