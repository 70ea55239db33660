"""What every task shares: the retry condition, the step-id cache key, and the GPU-throttled step run.

Caching has one authority, the step folder: a task's Prefect cache key is the id of the step it produces
(`<name>-<hash>`) plus a digest of the root, and only while that step's folder is finished — a deleted or
never-written folder gives no key, so the Prefect UI never shows "Cached" for output that is not there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable

from prefect.concurrency.sync import concurrency

from physlm.store import storage
from physlm.store.steps import Step


def io_failure(task, task_run, state) -> bool:
    """Retry only what storage can fix by itself: unreachable S3, timeouts, OS-level I/O errors."""
    return isinstance(state.data, (storage.StorageError, OSError, TimeoutError))


def step_cache_key(context, parameters) -> str | None:
    """A ``cache_key_fn`` for tasks with a ``step`` parameter: its id while its folder is finished; None with
    ``force`` or while the step is not finished."""
    step: Step = parameters["step"]
    if parameters.get("force") or not step.done():
        return None
    return f"{step.id}@{hashlib.sha256(storage.root().encode()).hexdigest()[:8]}"


GPU_LIMIT = "gpu"


@functools.cache
def limit_exists(name: str = GPU_LIMIT) -> bool:
    """Whether the server has a global concurrency limit called `name` (asked once per process)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(name)
        return True
    except ObjectNotFound:
        return False


def run_on_gpu(step: Step, run: Callable[..., str], force: bool) -> str:
    """The step's path if it is done (and not forced); otherwise ``run(step, force=force)`` while holding a
    slot of the `gpu` global concurrency limit when the server has one (`prefect gcl create gpu --limit N`);
    without it the step runs unthrottled, silently (a laptop never configured one)."""
    if step.done() and not force:
        return step.path()
    slot = concurrency(GPU_LIMIT, occupy=1, strict=False) if limit_exists() else contextlib.nullcontext()
    with slot:
        return run(step, force=force)
