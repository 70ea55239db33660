"""Generate iGSM problems: hyper-parameter sampling, the rejection loop, values, texts (spec A.5-A.11).

``generate(cfg, seed)`` returns one ``Problem`` and depends only on (cfg, seed): every random choice comes
from one ``random.Random(seed)``, so the same pair gives byte-identical problems in any process.

The authors' loop (``IdGen._gen_prob``, style "light") draws a target op K, then repeatedly draws
hyper-parameters (s = min of two U{1..max_op}, n, m, depth, widths, p, e), builds a graph and keeps it only
if its realised op equals K and its template hash is in the wanted bins. The realised op is
min(s, n_op_min + capacity) <= s, so a draw with s < K can never be kept: we draw s from the same law
restricted to s >= K, which leaves the distribution of kept problems unchanged and removes most of the
rejections (the authors' generator spends ~0.05 s per med problem on them). We also reject right after the
sort, before values and texts, when the op cannot match. Where the C extension is built, the draws up to the
next kept one run in C (draws.py, ``_next_build``) with the very same random draws and results.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

from physlm.igsm import build, draws, vocab
from physlm.igsm.build import RNG, Build, SortFailed
from physlm.igsm.config import GenConfig
from physlm.igsm.graph import INSTANCE, MOD, Graph
from physlm.igsm.solution import render, render_with_retries, template_hash
from physlm.igsm.text import render_sentence

STRUCTURE_TRIES = 1000  # structure graphs per hyper-parameter draw (the code's ``try_num``)
MAX_DRAWS = 200_000  # hyper-parameter draws before we declare the target op unreachable


class GenerationError(RuntimeError):
    """The knobs cannot produce the requested problem (e.g. an op the family's graphs cannot reach)."""


@dataclass(slots=True)
class Problem:
    """One generated problem: the graph plus its texts and the labels every later stage needs."""

    graph: Graph
    seed: int
    family: str
    format: str
    op: int
    template_hash: int
    statement: str  # " S1. S2. ... Sn." (no question)
    question: str  # " How many X does Y have?"
    solution: str
    reask: bool = False
    base_op: int | None = None

    @property
    def problem(self) -> str:
        return self.statement + self.question if self.format == "pq" else self.question + self.statement

    @property
    def answer(self) -> int:
        return self.graph.value[self.graph.query]

    @property
    def ip(self) -> int:
        return self.graph.ip

    def split(self, train_bins: int = 17) -> str:
        return "train" if self.template_hash < train_bins else "test"


# ---------------------------------------------------------------------------- hyper-parameters (A.9)
def _min_of_two(rng: random.Random, hi: int) -> int:
    return min(rng.randint(1, hi), rng.randint(1, hi))


def draw_op(cfg: GenConfig, rng: random.Random) -> int:
    if cfg.op is not None:
        return cfg.op
    if cfg.op_dist == "uniform":
        return rng.randint(cfg.op_min, cfg.family.max_op)
    if cfg.op_min > 1:  # min of two U{1..max_op}, conditioned on op >= op_min
        return _draw_s(rng, cfg.family.max_op, cfg.op_min)
    return _min_of_two(rng, cfg.family.max_op)


def _draw_s(rng: random.Random, hi: int, lo: int) -> int:
    """s ~ min of two U{1..hi}, conditioned on s >= lo (P(s=k) is proportional to 2(hi-k)+1)."""
    return lo + build._weighted(rng, *_s_weights(hi, lo))


@functools.cache
def _s_weights(hi: int, lo: int) -> tuple[list[int], int]:
    weights = [2 * (hi - k) + 1 for k in range(lo, hi + 1)]
    return weights, sum(weights)


def _softmax_draw(rng: random.Random, values: tuple[int, ...], s: int, max_edge: int) -> int:
    return values[build._weighted(rng, *_softmax_weights(values, s, max_edge))]


@functools.cache
def _softmax_weights(values: tuple[int, ...], s: int, max_edge: int) -> tuple[list[float], float]:
    rel = (s - 1) / (max_edge - 1)
    weight = {2: -((rel - 0.2) ** 2), 3: -((rel - 0.5) ** 2), 4: -((rel - 0.8) ** 2)}
    top = max(weight[v] for v in values)  # stable softmax: forced OOD ops push rel far above 1
    weights = [math.exp(weight[v] - top) for v in values]
    return weights, build.plain_sum(weights)


@functools.cache
def _depths(fam) -> tuple[int, ...]:
    """The depths a draw can take: those whose narrowest shape fits max_edge."""
    return tuple(d for d in fam.depths if (d - 1) * fam.widths[0] <= fam.max_edge)


def hyper(cfg: GenConfig, rng: random.Random, target: int) -> tuple[int, int, int, int, int, int, int, float]:
    """(s, n, m, d, w0, w1, e, p) as the code's ``gen_param_light``; shapes that cannot fit max_edge
    are redrawn (the code crashes on them, which is why it fails for max_edge < 12)."""
    fam = cfg.family
    below = rng._randbelow  # randint(a, b) is a + _randbelow(b - a + 1) (build.py: draws)
    if cfg.op is not None:
        s = cfg.op
    else:
        s = _draw_s(rng, fam.max_op, min(target, fam.max_op))
    n = max(1 + below(s), 1 + below(s))
    m = n + below(s - n + 1)
    depths = _depths(fam)
    while True:
        d = _softmax_draw(rng, depths, s, fam.max_edge)
        t0 = _softmax_draw(rng, fam.widths, s, fam.max_edge)
        t1 = _softmax_draw(rng, fam.widths, s, fam.max_edge)
        w0, w1 = min(t0, t1), max(t0, t1)
        if (d - 1) * w0 <= fam.max_edge:
            break
    p = rng.random()
    lo = (d - 1) * w0
    e = min(lo + below(fam.max_edge - lo + 1), lo + below(fam.max_edge - lo + 1))
    return s, n, m, d, w0, w1, e, p


# ---------------------------------------------------------------------------- the loop
def _try_build(cfg: GenConfig, rng: random.Random, target: int) -> tuple[Build, int] | None:
    """One hyper-parameter draw: up to STRUCTURE_TRIES structures until the sort succeeds; None if the
    draw is rejected (sort never succeeded, or the realised op is not the target)."""
    s, n, m, d, w0, w1, e, p = hyper(cfg, rng, target)
    for _ in range(STRUCTURE_TRIES):
        b = build.structure(rng, d, w0, w1, e, p)
        if not cfg.childless and build.has_childless(b):
            continue
        build.choose(b, rng, n, m)
        try:
            build.sort(b, rng, cfg.bias)
        except SortFailed:
            continue
        if build.realized_op(b, s) != target:
            return None
        return b, s
    return None


def _next_build(cfg: GenConfig, rng: random.Random, target: int, left: int) -> tuple[tuple[Build, int] | None, int]:
    """The next draw's build and s (None if rejected) and the draws left after it; with the C path (draws.py),
    the rejected draws before the next kept one are skipped over in one call."""
    if draws.enabled() and draws.fits(cfg) and draws.verified(_paths_agree):
        plan = _native_plan(cfg.family, cfg.op, target, cfg.childless, cfg.bias, STRUCTURE_TRIES)
        skipped = draws.skip(plan, rng, target, left)
        if skipped is not None:
            used, got = skipped
            return got, left - used
    return _try_build(cfg, rng, target), left - 1


@functools.cache
def _native_plan(family, op: int | None, target: int, childless: bool, bias: str, tries: int):
    """``hyper``'s laws as tables for the C path: s's law from the target (or the forced op), and for every s a
    draw can take the softmax weights of depths and widths."""
    depths = _depths(family)
    if op is not None:
        s_draw, s_values = (op, [], 0), [op]
    else:
        lo = min(target, family.max_op)
        s_draw, s_values = (lo, *_s_weights(family.max_op, lo)), range(lo, family.max_op + 1)
    table: list = [None] * (max(s_values) + 1)
    for s in s_values:
        table[s] = (*_softmax_weights(depths, s, family.max_edge), *_softmax_weights(family.widths, s, family.max_edge))
    return draws.plan(family, depths, op, childless, bias, tries, s_draw, table)


def _paths_agree() -> bool:
    """The first-use check of the C path: whole problems of three configs (the code's and the paper's sort
    bias, childless items, a forced op) made both ways."""
    cfgs = [GenConfig(), GenConfig(bias="paper", childless=False), GenConfig(op=4, split="all")]
    with draws.native(True):
        fast = [generate(cfg, seed) for cfg in cfgs for seed in range(3)]
    with draws.native(False):
        slow = [generate(cfg, seed) for cfg in cfgs for seed in range(3)]
    return fast == slow


def _graph(b: Build, cfg: GenConfig, rng: random.Random) -> Graph:
    """Names, formulas, constants and values for a finished build (the code's ``parse``)."""
    fam = cfg.family
    below, uniform = rng._randbelow, rng.random  # randint(a, b) is a + _randbelow(b - a + 1)
    _, layers, items = vocab.draw(rng, b.d, b.sizes, fam.subcategories, fam.items)
    g = Graph(layers=list(layers), items=[list(x) for x in items])
    index: dict = {}
    # values are computed along a random topological order of the whole G_d (the code's problem_order)
    order = _random_topological(b, rng)
    for key in order:
        ops = [q for q in b.preds[key] if q != RNG]
        idx = [index[q] for q in ops]
        index[key] = len(index)
        if key[0] == 1:
            g.add(key, idx)
            continue
        has_rng = len(ops) < len(b.preds[key])
        outer, const = "", -1
        if has_rng and ops:
            if uniform() < 0.5:
                outer, const = "add", below(MOD)
            else:
                outer, const = "mul", 1 + below(MOD - 1)
        if not ops:
            inner, const = "const", below(MOD)
        elif len(ops) == 1:
            inner = "copy"
        elif len(ops) == 2:
            inner = "sum" if uniform() < 0.5 else "diff"
        else:
            inner = "sum"
        g.add(key, idx, rng=has_rng, inner=inner, outer=outer, const=const)
    g.value = g.evaluate(list(range(len(order))))  # ``order`` is topological, and so is its index order
    g.order = [index[k] for k in b.topo]
    g.query = g.order[-1]
    g.sentences = _sentence_order(b, g, order, cfg.perm_level, rng)
    return g


def _random_topological(b: Build, rng: random.Random) -> list:
    below = rng._randbelow
    keys = b.order
    succ: dict = {k: [] for k in keys}
    indeg = {}
    for k in keys:
        n = 0
        for q in b.preds[k]:
            if q != RNG:
                succ[q].append(k)
                n += 1
        indeg[k] = n
    ready = [k for k in keys if indeg[k] == 0]
    out = []
    while ready:
        k = ready.pop(below(len(ready)))
        out.append(k)
        for v in succ[k]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    return out


def _sentence_order(b: Build, g: Graph, value_order: list, perm: int, rng: random.Random) -> list[int]:
    if perm == 6:  # generator order: necessary in solution order, then unnecessary as added
        keys = b.order
    elif perm == 5:  # "we randomly permute"
        keys = list(value_order)
        rng.shuffle(keys)
    else:  # mild: local shuffle of a random topological order, window ``perm``
        buckets: dict[int, list] = {}
        for x, k in enumerate(value_order):
            buckets.setdefault(x + rng.randint(0, perm), []).append(k)
        keys = []
        for key in sorted(buckets):
            rng.shuffle(buckets[key])
            keys += buckets[key]
    return [g.index(k) for k in keys if k[0] == INSTANCE]


def statement(g: Graph) -> str:
    """Problem statement without the question: " S1. S2. ... Sn."."""
    return " " + ". ".join(render_sentence(g, p) for p in g.sentences) + "."


def generate(cfg: GenConfig, seed: int) -> Problem:
    """One problem for (cfg, seed); GenerationError when the knobs cannot reach the wanted op."""
    rng = random.Random(seed)
    target = draw_op(cfg, rng)
    bins = cfg.bins()
    left = MAX_DRAWS
    while left > 0:
        got, left = _next_build(cfg, rng, target, left)
        if got is None:
            continue
        b, s = got
        build.design(b, rng, s)
        build.unused(b, rng)
        g = _graph(b, cfg, rng)
        if cfg.reask:
            if not _reask(g, rng):
                continue
        solution = render(g, rng)
        h = template_hash(g, solution)
        if h not in bins:
            continue
        if cfg.retry_rate > 0:
            solution = render_with_retries(g, rng, cfg.retry_rate, cfg.retry_weak)
        return Problem(
            graph=g,
            seed=seed,
            family=cfg.family.name,
            format=cfg.format,
            op=g.op(),
            template_hash=h,
            statement=statement(g),
            question=g.question(),
            solution=solution,
            reask=cfg.reask,
            base_op=target if cfg.reask else None,
        )
    raise GenerationError(
        f"no problem with op={target} after {MAX_DRAWS} draws for family {cfg.family.name!r} "
        f"(max_edge={cfg.family.max_edge}, depths={cfg.family.depths}, widths={cfg.family.widths}); "
        f"this op is out of reach of these knobs"
    )


def _reask(g: Graph, rng: random.Random) -> bool:
    """Spec A.11: ask a new parameter of G_d; the necessary set becomes its ancestors, in a random
    topological order. False when the graph has no other parameter."""
    others = [p for p in range(g.n) if p != g.query]
    if not others:
        return False
    q = rng.choice(others)
    need = g.ancestors(q) | {q}
    indeg = {p: sum(1 for r in g.preds[p] if r in need) for p in need}
    succ = g.successors()
    ready = sorted(p for p in need if indeg[p] == 0)
    order: list[int] = []
    while ready:
        p = ready.pop(rng.randrange(len(ready)))
        order.append(p)
        for v in succ[p]:
            if v in need:
                indeg[v] -= 1
                if indeg[v] == 0:
                    ready.append(v)
    g.query, g.order = q, order
    return True
