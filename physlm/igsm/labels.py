"""Ground-truth labels for the V-probing tasks (igsm-spec.md B last paragraph, C.5, C.7, E.6).

Everything here is a pure function of a :class:`~physlm.igsm.graph.Graph` (and, for the boundaries, of the
solution text); no torch. The *universe* of probed parameters is G_d only (README §4, spec E.6): every array
is indexed by the parameter index into ``graph.params`` (``n = graph.n``).

State ``s`` = number of (gold) solution sentences already written, ``0 <= s <= len(order)``:

* ``known[a]``     a is among the first ``s`` parameters of ``graph.order``;
* ``value[a]``     ``graph.value[a]`` if known, else 23 ("unknown"; 24 classes in all);
* ``can_next[a]``  a is not known and all its operands are (the RNG always counts as known, so a parameter
  without operands, e.g. an RNG constant or a childless abstract parameter, is ready from state 0);
* ``nece_next[a]`` ``can_next[a]`` and a is necessary;
* ``nece[a]``      a is necessary (in ``order``; does not depend on ``s``).

``dep[a, b]`` = a depends on b (a path b -> ... -> a along operand edges, RNG excluded, a != b), and
``distance_to_query`` is the shortest operand-edge path length from a parameter to the query (C.7).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

import numpy as np

from physlm.igsm.graph import MOD, Graph
from physlm.igsm.solution import sentences

UNKNOWN = MOD
"""Value label of a parameter that is not known yet (class 23)."""

STATE_TASKS = ("known", "value", "can_next", "nece_next")
"""Tasks probed at a solution sentence boundary (a uniformly random state)."""
TASKS = ("nece", "dep") + STATE_TASKS
"""All six probing tasks; "nece" and "dep" are probed at state 0 (end of the problem/question)."""


def _positions(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """``pos[a]`` = index of a in ``order`` (``len(order)`` + 1 if unnecessary, i.e. never known), and
    ``ready[a]`` = the first state at which all operands of a are known (``pos`` of an unnecessary operand
    makes it never ready within the solution)."""
    m = len(graph.order)
    pos = np.full(graph.n, m + 1, dtype=np.int64)
    pos[np.asarray(graph.order, dtype=np.int64)] = np.arange(m)
    ready = np.array([max((int(pos[q]) + 1 for q in ps), default=0) for ps in graph.preds], dtype=np.int64)
    return pos, ready


def all_state_labels(graph: Graph) -> dict[str, np.ndarray]:
    """Labels for every state at once: each array has shape ``(len(order) + 1, n)``; row ``s`` = state ``s``.
    "value" is int8 (0..23), the others bool."""
    pos, ready = _positions(graph)
    s = np.arange(len(graph.order) + 1)[:, None]
    known = pos[None, :] < s
    can_next = (ready[None, :] <= s) & ~known
    nece = np.broadcast_to(pos <= len(graph.order) - 1, known.shape).copy()
    value = np.where(known, np.asarray(graph.value, dtype=np.int64)[None, :], UNKNOWN).astype(np.int8)
    return {"known": known, "value": value, "can_next": can_next, "nece_next": can_next & nece, "nece": nece}


def state_labels(graph: Graph, s: int) -> dict[str, np.ndarray]:
    """Labels at solution state ``s`` (0..len(order)): arrays of shape ``(n,)``, see the module docstring."""
    if not 0 <= s <= len(graph.order):
        raise ValueError(f"state must be in 0..{len(graph.order)}, got {s}")
    pos, ready = _positions(graph)
    known = pos < s
    can_next = (ready <= s) & ~known
    nece = pos < len(graph.order)
    value = np.where(known, np.asarray(graph.value, dtype=np.int64), UNKNOWN).astype(np.int8)
    return {"known": known, "value": value, "can_next": can_next, "nece_next": can_next & nece, "nece": nece}


def dep_matrix(graph: Graph) -> np.ndarray:
    """``(n, n)`` bool: ``dep[a, b]`` iff a depends on b (path b -> ... -> a; RNG excluded; diagonal False).
    Built as the transitive closure of the operand edges in a topological order."""
    dep = np.zeros((graph.n, graph.n), dtype=bool)
    for a in graph.topological():
        for q in graph.preds[a]:
            dep[a] |= dep[q]
            dep[a, q] = True
    return dep


def distance_to_query(graph: Graph) -> np.ndarray:
    """``(n,)`` int: fewest operand edges from a to the query (a operand of x, x of y, ..., of the query);
    0 for the query, -1 for parameters the query does not depend on (the unnecessary ones)."""
    dist = np.full(graph.n, -1, dtype=np.int64)
    if graph.query < 0:
        return dist
    dist[graph.query] = 0
    todo = deque([graph.query])
    while todo:
        x = todo.popleft()
        for q in graph.preds[x]:
            if dist[q] < 0:
                dist[q] = dist[x] + 1
                todo.append(q)
    return dist


def boundary_states(solution: str) -> list[tuple[int, int]]:
    """Every sentence boundary of a solution text as ``(offset, state)``: offset 0 (state 0, right after the
    solution marker) and the offset right after the "." ending each sentence (``solution.sentences``). A
    retry sentence ("Define X as BACK") does not advance the state, so its boundary repeats the state before
    it."""
    out, state = [(0, 0)], 0
    for sentence in sentences(solution):
        state += not sentence.retry
        out.append((min(sentence.end, len(solution)), state))
    return out


def sentence_boundaries(solution: str) -> list[int]:
    """Character offsets into the solution text, one per state: ``result[s]`` is where state ``s`` begins.

    ``result[0] == 0`` (right after the solution marker 223) and ``result[s]`` is right after the "." that
    ends the s-th real solution sentence (the last one is ``len(solution)``). We cut *before* the space of
    ". " so that ``solution[result[s]:]`` always starts with " Define" (the GPT-2 token keeps its leading
    space, like the solution's own leading space after offset 0), i.e. ``solution[:result[s]]`` ends on a
    token boundary of the training text.

    Retry data (spec A.12): "Define X as BACK" sentences do not advance the state. We return, for each
    state, its *first* boundary (right after the real sentence that completed it, before any retry
    sentences that follow); :func:`boundary_states` lists every boundary with its state.
    """
    out: list[int] = []
    for offset, state in boundary_states(solution):
        if state == len(out):
            out.append(offset)
    return out


def _candidates(graph: Graph, task: str) -> tuple[np.ndarray, Callable[[int], tuple[int, tuple[int, ...]]]]:
    """Labels of all (state, params) choices of a task as a flat array, and the decoder of a flat index."""
    n = graph.n
    if task == "nece":
        pos, _ = _positions(graph)
        return (pos < len(graph.order)).astype(np.int64), lambda i: (0, (i,))
    if task == "dep":  # row-major over (a, b), diagonal skipped
        dep = dep_matrix(graph)
        labels = dep[~np.eye(n, dtype=bool)].astype(np.int64)
        return labels, lambda i: (0, (i // (n - 1), i % (n - 1) + (i % (n - 1) >= i // (n - 1))))
    if task in STATE_TASKS:
        return all_state_labels(graph)[task].astype(np.int64).reshape(-1), lambda i: (i // n, (i % n,))
    raise ValueError(f"unknown probe task {task!r}; expected one of {TASKS}")


def probe_samples(
    graph: Graph, rng: random.Random, task: str, k: int = 10, balanced: bool = False
) -> list[tuple[int, tuple[int, ...], int]]:
    """Up to ``k`` distinct ``(state, params, label)`` probe samples of one problem (spec C.5, App. E).

    * "nece": state 0, ``params == (a,)``, label 0/1;
    * "dep": state 0, ``params == (a, b)`` with ``b != a``, label ``dep[a, b]``;
    * "known", "value", "can_next", "nece_next": a uniform state in ``0..len(order)`` and a uniform
      ``params == (a,)``; label 0/1 (value: 0..23).

    Choices are uniform over all (state, params) candidates without replacement (uniform state and param
    for each sample), over the parameters of G_d only. With ``balanced=True`` half of the samples (rounded
    down) are drawn from the positive labels and the rest from the negative ones, a class that runs short
    being filled from the other; for "value" the two classes are "known" (label != 23) and "unknown".
    The result depends only on the graph and the rng state.
    """
    labels, decode = _candidates(graph, task)
    if k <= 0 or not len(labels):
        return []
    if balanced:
        positive = labels != UNKNOWN if task == "value" else labels != 0
        pos_idx = np.flatnonzero(positive).tolist()
        neg_idx = np.flatnonzero(~positive).tolist()
        n_pos = min(len(pos_idx), k // 2)
        n_neg = min(len(neg_idx), k - n_pos)
        n_pos = min(len(pos_idx), k - n_neg)
        chosen = rng.sample(pos_idx, n_pos) + rng.sample(neg_idx, n_neg)
        rng.shuffle(chosen)
    else:
        chosen = rng.sample(range(len(labels)), min(k, len(labels)))
    return [(*decode(i), int(labels[i])) for i in chosen]
