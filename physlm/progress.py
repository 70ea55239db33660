"""Progress of long work: a bar on a terminal, periodic log lines everywhere else.

``progress(total, desc, unit)`` returns a counter to ``update(n)`` and ``close()`` (or use it as a context
manager). When stderr is a terminal it draws a tqdm bar; otherwise (a worker, CI, a pipe) it logs
``desc: done/total unit (pct%)`` to the ``physlm.progress`` logger at most every ``PHYSLM_PROGRESS_EVERY``
seconds (default 30) and once at the end — inside a Prefect flow run those lines reach the run's logs (the
CLI sets ``PREFECT_LOGGING_EXTRA_LOGGERS=physlm``). Generation counts problems, evaluation problems decoded,
probing optimizer steps per probe; training has its own bar and log lines (physlm/model/train.py).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

log = logging.getLogger("physlm.progress")
_lock = threading.Lock()


def _interval() -> float:
    try:
        return float(os.environ.get("PHYSLM_PROGRESS_EVERY", "30"))
    except ValueError:
        return 30.0


class Progress:
    """A counter that reports itself (module docstring); thread-safe updates."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit, self.done = total, desc, unit, 0
        self.t0 = self.last = time.monotonic()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=True, dynamic_ncols=True)

    def describe(self, desc: str) -> None:
        """What is being counted now (e.g. which probe); the bar's label and the next log line's."""
        with _lock:
            self.desc = desc
            if self.bar is not None:
                self.bar.set_description(desc)

    def update(self, n: int = 1) -> None:
        with _lock:
            self.done += n
            if self.bar is not None:
                self.bar.update(n)
            elif time.monotonic() - self.last >= _interval():
                self._log()

    def _log(self) -> None:
        self.last = time.monotonic()
        pct = 100 * self.done / self.total if self.total else 100.0
        log.info("%s: %d/%d %s (%.0f%%, %.0f s)", self.desc, self.done, self.total, self.unit, pct,
                 self.last - self.t0)  # fmt: skip

    def close(self) -> None:
        with _lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            else:
                self._log()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "it") -> Progress:
    return Progress(total, desc, unit)
