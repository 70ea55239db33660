"""Build one iGSM dependency graph from sampled hyper-parameters (igsm-spec.md A.2-A.4).

The four stages follow the authors' generator (``math_gen/graph_gen.py``), re-implemented for speed with
plain lists, sets and one ``random.Random``:

1. structure graph G_s (layer sizes, one random parent per item, extra random edges up to ``e``);
2. ``choose``: the necessary parameters within an op budget ``n`` for abstract parameters (preferring higher
   difficulty levels) plus random instance parameters up to ``m`` (paper Alg. 2);
3. ``sort``: a backward topological order from a random sink (the query), adding at most one operand edge per
   instance parameter so that every chosen parameter becomes an ancestor of the query (Alg. 3);
4. ``design``: spread the op surplus ``s - n_op_min`` over instance parameters and draw their operands
   (Alg. 4); then ``unused``: every remaining structure edge becomes an unnecessary parameter (Alg. 5).

Where we differ from the code, on purpose: the "known abstract parameters" set used by stage 4 is the exact
closure (an abstract parameter is known when all its inputs are), where the code's incremental update can
miss some; and a stale "remembered" candidate in stage 2 is never committed (the code cannot reach that case
either). Everything random goes through ``rng`` in a fixed order, so (hyper-parameters, rng state) decides
the result byte for byte.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

RNG = (-1, 0, 0, 0)
MAX_OPERANDS = 4  # max in-degree of an instance parameter, RNG counted (reference max_param)

Key = tuple[int, int, int, int]


class SortFailed(Exception):
    """Stage 3 found no vertex to place next; the caller regenerates the structure graph."""


@dataclass(slots=True)
class Build:
    """Mutable state of one construction; read by ``generate`` once all stages ran."""

    d: int
    sizes: list[int]
    children: list[list[list[int]]]  # children[i][j] = ascending k with edge (i, j, k)
    remain: list[tuple[int, int, int]]  # structure edges not yet used as parameters
    inter: list[tuple[int, int, int]]  # abstract candidates (i, j, k) not yet chosen
    chosen: list[Key] = field(default_factory=list)  # parameters defined so far ("known")
    preds: dict[Key, list[Key]] = field(default_factory=dict)  # operands, insertion order, RNG included
    n_op_min: int = 0
    topo: list[Key] = field(default_factory=list)  # necessary parameters, forward order, query last
    extra: list[int] = field(default_factory=list)
    order: list[Key] = field(default_factory=list)  # every parameter in definition order

    @property
    def edges(self) -> int:
        return sum(len(c) for layer in self.children for c in layer)


# ---------------------------------------------------------------------------- stage 1: structure graph
def structure(rng: random.Random, d: int, w0: int, w1: int, e: int, p: float) -> Build:
    e = min(max(e, (d - 1) * w0), (d - 1) * w1 * w1)
    sizes = [w0] * d
    while True:
        max_v = sum(sizes[i] * sizes[i + 1] for i in range(d - 1))
        min_v = sum(sizes[1:])
        open_layers = [i for i in range(d) if sizes[i] < w1]
        if max_v < e:  # not enough possible edges: must grow
            sizes[rng.choice(open_layers)] += 1
        elif min_v == e:
            break
        elif rng.random() < p:
            if not open_layers:
                break
            sizes[rng.choice(open_layers)] += 1
        else:
            break
    children: list[list[list[int]]] = [[[] for _ in range(sizes[i])] for i in range(d)]
    absent = [(i, j, k) for i in range(d - 1) for j in range(sizes[i]) for k in range(sizes[i + 1])]
    present: list[tuple[int, int, int]] = []
    for i in range(d - 1):
        for k in range(sizes[i + 1]):  # every lower item gets one parent
            j = rng.randrange(sizes[i])
            present.append((i, j, k))
    taken = set(present)
    absent = [t for t in absent if t not in taken]
    present += rng.sample(absent, e - len(present))
    for i, j, k in present:
        children[i][j].append(k)
    for layer in children:
        for c in layer:
            c.sort()
    inter = [(i, j, k) for i in range(d - 1) for j in range(sizes[i]) for k in range(i + 1, d)]
    return Build(d=d, sizes=sizes, children=children, remain=present, inter=inter)


def has_childless(b: Build) -> bool:
    """Whether some non-bottom item has no children (its abstract parameters are 0, spec A.4)."""
    return any(not c for layer in b.children[:-1] for c in layer)


def op_bound(b: Build) -> int:
    """The code's upper bound on ops reachable by abstract parameters (``Graph.total``)."""
    total = len(b.remain)
    for i in range(b.d - 1):
        for c in b.children[i]:
            n = len(c)
            total += max(2 * n - 1, 0) * (b.d - i - 2) + (n - 1 if n > 1 else n)
    return total


# ---------------------------------------------------------------------------- stage 2: choose (Alg. 2)
def _cost(b: Build, t: tuple[int, int, int], inter_set: set, remain_set: set, add: list[Key]) -> int:
    """Ops that choosing abstract t costs now; records what it would add (recursively) in ``add``."""
    i, j, k = t
    inter_set.discard(t)
    add.append((1, i, j, k))
    count = 0
    kids = b.children[i][j]
    for x in kids:
        if k > i + 1 and (i + 1, x, k) in inter_set:
            count += _cost(b, (i + 1, x, k), inter_set, remain_set, add)
        if (i, j, x) in remain_set:
            remain_set.discard((i, j, x))
            add.append((0, i, j, x))
            count += 1
    c = len(kids)
    if k == i + 1:
        return count + (c - 1 if c > 1 else 1)
    return count + max(2 * c - 1, 1)


def _commit(b: Build, add: list[Key]) -> None:
    for key in add:
        if key[0] == 1:
            b.inter.remove(key[1:])
        else:
            b.remain.remove(key[1:])
        b.chosen.append(key)


def _take_instances(b: Build, count: int, rng: random.Random) -> int:
    count = min(count, len(b.remain))
    for t in rng.sample(b.remain, count):
        b.remain.remove(t)
        b.chosen.append((0,) + t)
    return count


def choose(b: Build, rng: random.Random, n: int, m: int) -> None:
    n = min(n, op_bound(b))
    n_fix = m - n
    lowest, highest = 1, b.d - 1
    for _ in range(10_000):  # each pass commits or narrows [lowest, highest]; the bound is a safety net
        if n <= 0:
            break
        if not b.inter:  # every abstract parameter chosen: the rest of the budget goes to instances
            got = _take_instances(b, n + n_fix, rng)
            b.n_op_min = m - n - n_fix + got
            return
        prev: list[Key] | None = None
        prev_count = 0
        for diff in range(1, b.d):
            cands = [t for t in b.inter if t[2] - t[0] == diff]
            if not cands:
                if diff == lowest:
                    lowest += 1
                elif diff == highest:
                    highest -= 1
                continue
            add: list[Key] = []
            count = _cost(b, rng.choice(cands), set(b.inter), set(b.remain), add)
            if diff == lowest and count > n or (count > n and prev is None):
                # even the cheapest level does not fit: spend what is left on instance parameters
                got = _take_instances(b, n + n_fix, rng)
                b.n_op_min = m - n - n_fix + got
                return
            if count <= n:
                if diff < highest:
                    prev, prev_count = add, count  # remember; a higher level may still fit
                    continue
                _commit(b, add)
                n -= count
                break
            _commit(b, prev)  # type: ignore[arg-type]
            n -= prev_count
            break
        # a pass that commits nothing narrowed [lowest, highest]; the next pass draws afresh (as the code)
    b.n_op_min = m - n_fix + _take_instances(b, n_fix, rng)


# ---------------------------------------------------------------------------- stage 3: sort (Alg. 3)
def sort(b: Build, rng: random.Random, bias: str = "code") -> None:
    """Backward topological order from a random sink; raises SortFailed when stuck."""
    preds = b.preds
    for key in b.chosen:
        preds[key] = []
    for key in b.chosen:  # structural operands of abstract parameters
        if key[0] == 1:
            _, i, j, k = key
            for x in b.children[i][j]:
                preds[key].append((0, i, j, x))
                if k > i + 1:
                    preds[key].append((1, i + 1, x, k))
    out_deg = {key: 0 for key in b.chosen}
    for key in b.chosen:
        for q in preds[key]:
            out_deg[q] += 1
    ready = [key for key in b.chosen if out_deg[key] == 0]  # all successors placed
    stack: list[Key] = []  # vertices with an edge into the placed ones ("Next1")
    remain = list(b.chosen)
    p0 = rng.random()
    g = abs(rng.gauss(0.0, 1.0))
    placed: list[Key] = []
    pool = list(ready)
    while remain:
        if not pool:
            raise SortFailed
        q = rng.choice(pool)
        placed.append(q)
        remain.remove(q)
        ready.remove(q)
        for v in preds[q]:
            out_deg[v] -= 1
            if out_deg[v] == 0:
                ready.append(v)
        if q in stack:
            stack.remove(q)
        if q[0] == 0:
            must = not any(v in ready for v in stack)
            if (rng.random() < p0 or must) and remain:
                cands = ready if must else remain
                on_stack = set(stack)
                if bias == "code":
                    weights = [math.exp(g * ((c[0] == 1) + (c not in on_stack))) for c in cands]
                else:  # the paper's text: abstract and already-referenced vertices preferred
                    weights = [math.exp(g * ((c[0] == 1) + (c in on_stack))) for c in cands]
                pick = cands[_weighted(rng, weights)]
                preds[q].append(pick)
                if pick not in on_stack:
                    stack.append(pick)
        else:
            for v in preds[q]:
                if v not in stack:
                    stack.append(v)
        pool = [v for v in ready if v in stack]
    placed.reverse()
    b.topo = placed


def _weighted(rng: random.Random, weights: list[float]) -> int:
    r = rng.random() * sum(weights)
    for x, w in enumerate(weights):
        r -= w
        if r < 0:
            return x
    return len(weights) - 1


def max_extra(b: Build) -> list[int]:
    """Spare operand capacity per topo position: instance params at idx can take min(idx+1, 4) operands."""
    return [max(min(x + 1, MAX_OPERANDS) - 2, 0) if key[0] == 0 else 0 for x, key in enumerate(b.topo)]


def realized_op(b: Build, s: int) -> int:
    """The op that ``design(s)`` will reach: min(max(n_op_min, s), n_op_min + sum(max_extra))."""
    return min(max(b.n_op_min, s) - b.n_op_min, sum(max_extra(b))) + b.n_op_min


# ---------------------------------------------------------------------------- stage 4: design (Alg. 4)
def design(b: Build, rng: random.Random, s: int) -> None:
    cap = max_extra(b)
    b.extra = [0] * len(b.topo)
    addable = [x for x, c in enumerate(cap) if c > 0]
    for _ in range(realized_op(b, s) - b.n_op_min):
        x = rng.choice(addable)
        b.extra[x] += 1
        if b.extra[x] == cap[x]:
            addable.remove(x)
    for x, key in enumerate(b.topo):
        if key[0] != 0:
            continue
        pool = [RNG] + b.topo[:x]
        want = (1 if rng.random() < 0.5 else 2) if b.extra[x] == 0 else b.extra[x] + 2
        want = min(want, x + 1, MAX_OPERANDS)
        have = b.preds[key]
        if want != len(pool):
            for v in have:
                pool.remove(v)
                want -= 1
            if rng.random() < 0.5 and want > 0:
                want -= 1
                have.append(RNG)
                pool.remove(RNG)
            pool = rng.sample(pool, want)
        for v in pool:
            if v not in have:
                have.append(v)
    b.order = list(b.topo)


# ---------------------------------------------------------------------------- stage 5: unused (Alg. 5)
def _known_abstract(b: Build, known: set[Key]) -> list[Key]:
    """Abstract candidates all of whose inputs are known (closure, bottom-up); removed from ``inter``."""
    new: list[Key] = []
    for i in range(b.d - 2, -1, -1):
        for t in [t for t in b.inter if t[0] == i]:
            _, j, k = t
            kids = b.children[i][j]
            if all((0, i, j, x) in known for x in kids) and (
                k == i + 1 or all((1, i + 1, x, k) in known for x in kids)
            ):
                b.inter.remove(t)
                key = (1, i, j, k)
                known.add(key)
                new.append(key)
    return new


def _pull(b: Build, key: Key, placed: set[Key]) -> None:
    """Make an abstract operand part of G_d: add its structural operands (recursively) and place it."""
    if key[0] != 1 or key in placed:
        return
    _, i, j, k = key
    ops: list[Key] = []
    for x in b.children[i][j]:
        ops.append((0, i, j, x))
        if k > i + 1:
            ops.append((1, i + 1, x, k))
            _pull(b, (1, i + 1, x, k), placed)
    b.preds[key] = ops
    placed.add(key)
    b.order.append(key)


def unused(b: Build, rng: random.Random) -> None:
    known = set(b.chosen)
    b.chosen += _known_abstract(b, known)
    placed = set(b.order)
    independent: list[Key] = []
    while b.remain:
        t = rng.choice(b.remain)
        key = (0,) + t
        indep = rng.random() < 0.5
        pool = independent if indep else b.chosen
        full = len(pool) + 1
        limit = min(full, MAX_OPERANDS)
        want = 1
        while want < limit and rng.random() > 0.5:
            want += 1
        ops: list[Key] = []
        if want == full:
            ops.append(RNG)
            picks = list(pool)
        else:
            if rng.random() < 0.5:
                ops.append(RNG)
                want -= 1
            picks = rng.sample(pool, want)
        for v in picks:
            ops.append(v)
            _pull(b, v, placed)
        b.preds[key] = ops
        b.remain.remove(t)
        b.chosen.append(key)
        known.add(key)
        placed.add(key)
        b.order.append(key)
        b.chosen += _known_abstract(b, known)
        if indep:
            independent.append(key)
