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


# ---------------------------------------------------------------------------- draws
# The stages draw through ``rng._randbelow`` directly: ``choice(seq)`` is ``seq[_randbelow(len(seq))]``,
# ``randrange(n)`` is ``_randbelow(n)`` and ``randint(a, b)`` is ``a + _randbelow(b - a + 1)`` in CPython's
# ``random``, so the draws (and the problems) are the same as through those methods, with less overhead.
def sample(rng: random.Random, population: list, k: int) -> list:
    """``rng.sample(population, k)``, draw for draw: CPython's small-population branch inlined (the
    population copied, picks swapped out), the rest left to ``rng.sample``."""
    n = len(population)
    if n > 21 and (k <= 5 or n > 21 + 4 ** math.ceil(math.log(k * 3, 4))) or not 0 <= k <= n:
        return rng.sample(population, k)
    below = rng._randbelow
    pool = list(population)
    result = []
    for i in range(k):
        j = below(n - i)
        result.append(pool[j])
        pool[j] = pool[n - i - 1]
    return result


# ---------------------------------------------------------------------------- stage 1: structure graph
def structure(rng: random.Random, d: int, w0: int, w1: int, e: int, p: float) -> Build:
    below = rng._randbelow
    e = min(max(e, (d - 1) * w0), (d - 1) * w1 * w1)
    sizes = [w0] * d
    while True:
        max_v = sum(sizes[i] * sizes[i + 1] for i in range(d - 1))
        min_v = sum(sizes) - sizes[0]
        open_layers = [i for i in range(d) if sizes[i] < w1]
        if max_v < e:  # not enough possible edges: must grow
            sizes[open_layers[below(len(open_layers))]] += 1
        elif min_v == e:
            break
        elif rng.random() < p:
            if not open_layers:
                break
            sizes[open_layers[below(len(open_layers))]] += 1
        else:
            break
    # every lower item gets one parent, then e - (its edges) more edges among the absent ones (in order)
    parent = [[below(sizes[i]) for _ in range(sizes[i + 1])] for i in range(d - 1)]
    present = [(i, j, k) for i in range(d - 1) for k, j in enumerate(parent[i])]
    absent = [(i, j, k) for i in range(d - 1) for j in range(sizes[i]) for k, pk in enumerate(parent[i]) if pk != j]
    present += sample(rng, absent, e - len(present))
    children: list[list[list[int]]] = [[[] for _ in range(size)] for size in sizes]
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
def _cost(children: list, t: tuple[int, int, int], inter: set, remain: set, add: list[Key], used: set) -> int:
    """Ops that choosing abstract t costs now; records what it would add (recursively) in ``add`` (and
    ``used``, its set: a parameter reached twice counts once)."""
    i, j, k = t
    key = (1, i, j, k)
    used.add(key)
    add.append(key)
    count = 0
    kids = children[i][j]
    for x in kids:
        if k > i + 1 and (i + 1, x, k) in inter and (1, i + 1, x, k) not in used:
            count += _cost(children, (i + 1, x, k), inter, remain, add, used)
        if (i, j, x) in remain and (0, i, j, x) not in used:
            used.add((0, i, j, x))
            add.append((0, i, j, x))
            count += 1
    c = len(kids)
    if k == i + 1:
        return count + (c - 1 if c > 1 else 1)
    return count + max(2 * c - 1, 1)


def _take_instances(b: Build, count: int, rng: random.Random) -> int:
    count = min(count, len(b.remain))
    for t in sample(rng, b.remain, count):
        b.remain.remove(t)
        b.chosen.append((0,) + t)
    return count


def choose(b: Build, rng: random.Random, n: int, m: int) -> None:
    below = rng._randbelow
    n = min(n, op_bound(b))
    n_fix = m - n
    lowest, highest = 1, b.d - 1
    inter, remain = set(b.inter), set(b.remain)
    by_diff: list[list[tuple[int, int, int]]] = [[] for _ in range(b.d)]  # b.inter by k - i, in its order
    for t in b.inter:
        by_diff[t[2] - t[0]].append(t)
    for _ in range(10_000):  # each pass commits or narrows [lowest, highest]; the bound is a safety net
        if n <= 0:
            break
        if not inter:  # every abstract parameter chosen: the rest of the budget goes to instances
            got = _take_instances(b, n + n_fix, rng)
            b.n_op_min = m - n - n_fix + got
            return
        prev: list[Key] | None = None
        prev_count = 0
        for diff in range(1, b.d):
            cands = by_diff[diff]
            if not cands:
                if diff == lowest:
                    lowest += 1
                elif diff == highest:
                    highest -= 1
                continue
            add: list[Key] = []
            count = _cost(b.children, cands[below(len(cands))], inter, remain, add, set())
            if diff == lowest and count > n or (count > n and prev is None):
                # even the cheapest level does not fit: spend what is left on instance parameters
                got = _take_instances(b, n + n_fix, rng)
                b.n_op_min = m - n - n_fix + got
                return
            if count <= n:
                if diff < highest:
                    prev, prev_count = add, count  # remember; a higher level may still fit
                    continue
                _commit(b, add, inter, remain, by_diff)
                n -= count
                break
            _commit(b, prev, inter, remain, by_diff)  # type: ignore[arg-type]
            n -= prev_count
            break
        # a pass that commits nothing narrowed [lowest, highest]; the next pass draws afresh (as the code)
    b.n_op_min = m - n_fix + _take_instances(b, n_fix, rng)


def _commit(b: Build, add: list[Key], inter: set, remain: set, by_diff: list[list]) -> None:
    for key in add:
        t = key[1:]
        if key[0] == 1:
            b.inter.remove(t)
            inter.discard(t)
            by_diff[t[2] - t[0]].remove(t)
        else:
            b.remain.remove(t)
            remain.discard(t)
        b.chosen.append(key)


# ---------------------------------------------------------------------------- stage 3: sort (Alg. 3)
def sort(b: Build, rng: random.Random, bias: str = "code") -> None:
    """Backward topological order from a random sink; raises SortFailed when stuck."""
    below, uniform = rng._randbelow, rng.random
    preds = b.preds
    chosen = b.chosen
    for key in chosen:
        preds[key] = []
    for key in chosen:  # structural operands of abstract parameters
        if key[0] == 1:
            _, i, j, k = key
            ops = preds[key]
            for x in b.children[i][j]:
                ops.append((0, i, j, x))
                if k > i + 1:
                    ops.append((1, i + 1, x, k))
    out_deg = dict.fromkeys(chosen, 0)
    for key in chosen:
        for q in preds[key]:
            out_deg[q] += 1
    ready = [key for key in chosen if out_deg[key] == 0]  # all successors placed (its order is the draws')
    ready_set = set(ready)
    stack: set[Key] = set()  # vertices with an edge into the placed ones ("Next1")
    remain = list(chosen)
    p0 = uniform()
    g = abs(rng.gauss(0.0, 1.0))
    weight = (math.exp(g * 0), math.exp(g * 1), math.exp(g * 2))  # exp(g * (abstract + off/on the stack))
    code = bias == "code"
    placed: list[Key] = []
    pool = list(ready)
    while remain:
        if not pool:
            raise SortFailed
        q = pool[below(len(pool))]
        placed.append(q)
        remain.remove(q)
        ready.remove(q)
        ready_set.discard(q)
        for v in preds[q]:
            out_deg[v] -= 1
            if out_deg[v] == 0:
                ready.append(v)
                ready_set.add(v)
        stack.discard(q)
        if q[0] == 0:
            must = stack.isdisjoint(ready_set)
            if (uniform() < p0 or must) and remain:
                cands = ready if must else remain
                if code:  # abstract and not-yet-referenced vertices preferred
                    weights = [weight[(c[0] == 1) + (c not in stack)] for c in cands]
                else:  # the paper's text: abstract and already-referenced vertices preferred
                    weights = [weight[(c[0] == 1) + (c in stack)] for c in cands]
                pick = cands[_weighted(rng, weights)]
                preds[q].append(pick)
                stack.add(pick)
        else:
            stack.update(preds[q])
        pool = [v for v in ready if v in stack]
    placed.reverse()
    b.topo = placed


def _weighted(rng: random.Random, weights: list[float], total: float | None = None) -> int:
    """Index drawn with probability proportional to ``weights`` (one ``rng.random()``; ``total`` is their
    ``plain_sum`` when the caller has it)."""
    r = rng.random() * (plain_sum(weights) if total is None else total)
    for x, w in enumerate(weights):
        r -= w
        if r < 0:
            return x
    return len(weights) - 1


def plain_sum(xs: list[float]) -> float:
    """Left-to-right float sum: ``sum`` of floats rounds differently from Python 3.12 on (compensated), and the
    problems would then depend on the Python version."""
    total = 0.0
    for x in xs:
        total += x
    return total


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
    below = rng._randbelow
    for _ in range(realized_op(b, s) - b.n_op_min):
        x = addable[below(len(addable))]
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
            pool = sample(rng, pool, want)
        for v in pool:
            if v not in have:
                have.append(v)
    b.order = list(b.topo)


# ---------------------------------------------------------------------------- stage 5: unused (Alg. 5)
def _known_abstract(b: Build, known: set[Key]) -> list[Key]:
    """Abstract candidates all of whose inputs are known (closure, bottom-up); removed from ``inter``."""
    new: list[Key] = []
    children = b.children
    for t in sorted(b.inter, key=_minus_layer):  # bottom-up, each layer in ``inter`` order
        i, j, k = t
        deep = k > i + 1
        for x in children[i][j]:
            if (0, i, j, x) not in known or deep and (1, i + 1, x, k) not in known:
                break
        else:
            b.inter.remove(t)
            key = (1, i, j, k)
            known.add(key)
            new.append(key)
    return new


def _minus_layer(t: tuple[int, int, int]) -> int:
    return -t[0]


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
    below, uniform = rng._randbelow, rng.random
    known = set(b.chosen)
    b.chosen += _known_abstract(b, known)
    placed = set(b.order)
    independent: list[Key] = []
    while b.remain:
        t = b.remain[below(len(b.remain))]
        key = (0,) + t
        indep = uniform() < 0.5
        pool = independent if indep else b.chosen
        full = len(pool) + 1
        limit = min(full, MAX_OPERANDS)
        want = 1
        while want < limit and uniform() > 0.5:
            want += 1
        ops: list[Key] = []
        if want == full:
            ops.append(RNG)
            picks = list(pool)
        else:
            if uniform() < 0.5:
                ops.append(RNG)
                want -= 1
            picks = sample(rng, pool, want)
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
