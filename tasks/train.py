"""Prefect task of the train stage: resolve the preset's train step, skip it if done, else train (resuming
from the step's staging folder: a retried or restarted task continues from its last checkpoint), finish
the step and register its checkpoints. Holds a slot of the `gpu` global concurrency limit while training
(`prefect gcl create gpu --limit N` on the server; without that limit it runs unthrottled)."""

from __future__ import annotations

import hashlib

from prefect import task
from prefect.concurrency.sync import concurrency
from prefect.tasks import exponential_backoff

from physlm import datasets, stages, storage
from physlm.presets import resolve
from tasks.generate import io_failure


def train_cache_key(context, parameters) -> str | None:
    """`train-<hash>@<root digest>` for a finished train step; None otherwise or with force."""
    if parameters.get("force"):
        return None
    step = stages.train_step(resolve(parameters["preset"], parameters["overrides"]))
    if not step.done():
        return None
    return f"{step.id}@{hashlib.sha256(storage.root().encode()).hexdigest()[:8]}"


@task(name="train", cache_key_fn=train_cache_key, persist_result=True, retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_condition_fn=io_failure)
def train(preset: str, overrides: list[str], force: bool = False) -> str:
    """Train the preset's model; returns the train step path."""
    p = resolve(preset, overrides)
    step = stages.train_step(p)
    if step.done() and not force:
        return step.path()
    with concurrency("gpu", occupy=1, strict=False):
        return stages.run_train(step, datasets.step_for(p, "train"), force=force)
