"""The rejection loop's fast path: the hyper-parameter draws ``generate`` makes until one is kept, in C.

A med problem takes about seven hyper-parameter draws (``generate.hyper``) and ten structure graphs before one
reaches the target op; those were three quarters of the generator's time. ``_draws.c`` runs the draws on a copy
of the ``random.Random`` state (CPython's Mersenne Twister, ``_randbelow``, ``random``, ``gauss`` and ``sample``,
draw for draw, build.py's stages line for line) and hands back the state after the first kept draw with that
draw's ``Build``; design, unused parameters, values and texts stay in Python. The output is byte-identical to the
pure-Python loop: tests/test_generate_golden.py pins both paths to the same hashes.

The extension is built at install time when a C compiler is there (setup.py, optional); without it, or with
``PHYSLM_NATIVE_DRAWS=0`` in the environment, ``generate`` runs every draw in Python. On first use in a process
the two paths are compared on a few problems; if they ever differ (another Python's ``random``), the C path is
switched off with a warning instead of writing different data.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable
from contextlib import contextmanager

from physlm.igsm.build import Build

try:
    from physlm.igsm import _draws
except ImportError:  # no compiler at install time: the pure-Python loop
    _draws = None

_state = {"on": os.environ.get("PHYSLM_NATIVE_DRAWS", "1") != "0", "checked": False, "bad": False}
"""``on``: the user's switch; ``bad``: the first-use comparison found the two paths apart (final)."""


def available() -> bool:
    """Whether the C extension is built (whether or not it is switched on)."""
    return _draws is not None


def enabled() -> bool:
    """Whether ``generate`` skips rejected draws in C now."""
    return _draws is not None and _state["on"] and not _state["bad"]


@contextmanager
def native(on: bool):
    """Switch the C path on or off inside a ``with`` block (the equivalence tests, benchmarks)."""
    before = _state["on"]
    _state["on"] = on
    try:
        yield
    finally:
        _state["on"] = before


def plan(family, depths: tuple, op: int | None, childless: bool, bias: str, tries: int, s_draw: tuple, table: list):
    """The C side's tables of one (family, forced op, target): the depths ``hyper`` draws from, ``s_draw`` =
    (s_lo, weights, their sum) of s's law (unused when ``op`` is set), ``table[s]`` = the softmax weights and
    sums of depths and widths."""
    s_lo, s_weights, s_total = s_draw
    return _draws.plan(
        -1 if op is None else op,
        s_lo,
        s_weights,
        float(s_total),
        depths,
        family.widths,
        family.max_edge,
        table,
        childless,
        bias == "paper",
        tries,
    )


def fits(cfg) -> bool:
    """Whether the C tables hold this config: s < 64, and every draw below max_edge one 32-bit word."""
    return max(cfg.family.max_op, cfg.op or 0) < 64 and cfg.family.max_edge <= 1_000_000


def skip(plan, rng: random.Random, target: int, left: int) -> tuple[int, tuple[Build, int] | None] | None:
    """Run up to ``left`` draws in C and move ``rng`` past them. Returns (draws used, (build, s) of the kept
    draw, or None when none of them is kept); None when the caller must run the draws in Python."""
    _, mt, gauss = rng.getstate()
    used, state, kept = _draws.find(plan, mt, gauss, target, left)
    if state is None:
        return None
    rng.setstate(state)
    if kept is None:
        return used, None
    s, (d, sizes, children, remain, inter, chosen, preds, n_op_min, topo) = kept
    b = Build(d, sizes, children, remain, inter, chosen=chosen, preds=preds, n_op_min=n_op_min, topo=topo)
    return used, (b, s)


def verified(agree: Callable[[], bool]) -> bool:
    """Whether the C path may run: on the first call in a process ``agree()`` compares both paths (the caller
    knows how); on a difference or an error the C path is switched off for good, with a warning."""
    if not _state["checked"]:
        _state["checked"] = True
        try:
            ok = agree()
        except Exception:  # noqa: BLE001 - any failure of the C path means: use Python
            ok = False
        if not ok:
            _state["bad"] = True
            warnings.warn("physlm.igsm._draws disagrees with the Python generator here; using Python", stacklevel=2)
    return not _state["bad"]
