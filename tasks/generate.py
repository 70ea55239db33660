"""Prefect tasks of the generate stage: make one shard, finish one dataset's step. Thin by design: each
resolves the preset to a `physlm` step, skips what is done, calls the library, and returns a path string.

Caching has one authority, the step folder (`_SUCCESS`). The `generate-step` task's Prefect cache key is
the step id (`generate-<hash>`) plus a digest of the root, and only while the folder is finished: a
deleted or never-written folder gives no key, so Prefect never reports "Cached" for output that is not
there. Retries (exponential backoff) are for storage/I/O failures only; a bad config fails at once.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from physlm import datasets
from physlm.presets import resolve
from tasks.common import io_failure, step_cache_key


def _step(preset: str, overrides: list[str], dataset: str, **_):
    return datasets.step_for(resolve(preset, overrides), dataset)


@task(name="generate-shard", task_run_name="generate-{dataset}-{shard:05d}", cache_policy=NO_CACHE,
      retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=io_failure)
def generate_shard(preset: str, overrides: list[str], dataset: str, shard: int, force: bool = False,
                   processes: int = 0) -> str:
    """Stage one shard of a dataset's generate step (kept if staged already); returns its URL."""
    return datasets.run_generate_shard(_step(preset, overrides, dataset), shard, force=force, processes=processes)


@task(name="generate-step", task_run_name="generate-{dataset}", cache_key_fn=step_cache_key(_step), persist_result=True,
      retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=io_failure)
def generate_step(preset: str, overrides: list[str], dataset: str, force: bool = False) -> str:
    """Finish a dataset's generate step from its staged shards (a no-op if done); returns the step path."""
    return datasets.finalize(_step(preset, overrides, dataset), force=force)
