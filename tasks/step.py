"""The Prefect tasks of every stage: one generic task runs any step, one any part of a step.

Thin by design (STYLE practice 12): each takes a `physlm` step (planned by the flow, `physlm.plan`), skips
it if done, calls its stage's runner (`physlm.stages`), and returns a path string. Stages whose runner needs
an accelerator (`stage.GPU`) hold a slot of the `gpu` concurrency limit while they run. Retries (exponential
backoff) are for storage/I/O failures only; a bad config or a bug fails at once.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from physlm import stages
from physlm.store.steps import Step
from tasks.common import io_failure, run_on_gpu, step_cache_key


@task(
    name="step",
    cache_key_fn=step_cache_key,
    persist_result=True,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=io_failure,
)
def run_step(stage: str, step: Step, force: bool = False) -> str:
    """Make `step` with its stage's runner (a no-op when it is done); returns the step path."""
    s = stages.get(stage)
    if s.GPU:
        return run_on_gpu(step, s.run, force)
    return step.path() if step.done() and not force else s.run(step, force=force)


@task(
    name="part",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=io_failure,
)
def run_part(stage: str, step: Step, part: int, force: bool = False, processes: int = 0) -> str:
    """Make one part of a step (a shard of a dataset) into the step's staging folder; returns its URL."""
    return stages.get(stage).run_part(step, part, force=force, processes=processes)
