"""What every task shares: the retry condition, the step-id cache key, the GPU-throttled step run, and the
thread a torch stage runs in.

Caching has one authority, the step folder: a task's Prefect cache key is the id of the step it produces
(`<name>-<hash>`) plus a digest of the root, and only while that step's folder is finished — a deleted or
never-written folder gives no key, so the Prefect UI never shows "Cached" for output that is not there.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import threading
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
        return in_own_thread(run, step, force=force)


def in_own_thread(fn: Callable[..., str], *args, **kwargs) -> str:
    """``fn(*args, **kwargs)`` in a new thread that ends with it, in a copy of this thread's context (Prefect's
    run context, so its logs stay the task's); returns its value or raises its exception.

    Why: a thread that has run torch on a CPU keeps its OpenMP thread team for as long as it lives, and the
    task runner's pool threads live as long as the flow. With the train task's idle team left behind, the next
    torch stage, in another pool thread, got about one core's work out of two (the tiny preset's evaluation
    after its training in one flow: 41 s at 1.06 cores, against 21 s at 1.93 in a fresh process; a train
    task run in its own thread took it back to 21 s). A stage in a thread of its own takes its team with it."""
    ctx, out = contextvars.copy_context(), {}

    def body() -> None:
        try:
            out["value"] = ctx.run(fn, *args, **kwargs)
        except BaseException as e:  # re-raised in the caller's thread, with its traceback
            out["error"] = e

    thread = threading.Thread(target=body, name=f"physlm-{getattr(fn, '__module__', 'stage')}")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
