"""`tasks.common.in_own_thread`, the thread a torch stage's task runs in: its value or its exception comes back
to the caller, it sees the caller's context (Prefect's run context lives in contextvars), and the thread is
gone when it returns (so is the OpenMP team a torch stage made in it)."""

import contextvars
import threading

import pytest
import torch

from tasks.common import in_own_thread

LABEL = contextvars.ContextVar("label", default="unset")


def test_value_context_and_a_thread_that_ends():
    LABEL.set("the task's")
    before = threading.active_count()

    def stage(x, *, y):
        torch.ones(64, 64) @ torch.ones(64, 64)  # torch work in the stage's own thread
        return x + y, LABEL.get(), threading.get_ident()

    total, label, ident = in_own_thread(stage, 1, y=2)
    assert (total, label) == (3, "the task's") and ident != threading.get_ident()
    assert threading.active_count() == before  # the stage's thread has ended


def test_exceptions_come_back_as_they_were_raised():
    class StageFailed(RuntimeError):
        pass

    def stage():
        raise StageFailed("bad input: one line")

    with pytest.raises(StageFailed, match="bad input: one line") as info:
        in_own_thread(stage)
    assert any(frame.name == "stage" for frame in info.traceback)  # the stage's own frame is kept
