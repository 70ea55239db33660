"""Parse iGSM problem text (the authors' or ours) back into a :class:`~physlm.igsm.graph.Graph`.

Reads only the text (and, when it is available, the vocabulary's ``category_of``); writes nothing. The
grammar is igsm-spec.md A.5-A.6: statements "The number of each P's C equals RHS" joined by ". ", and the
question "How many Y does X have?" at the end (pq) or the start (qp). :mod:`physlm.igsm.text` renders the
inverse.

How the graph is rebuilt:
1. *References* "each X's Y" are split at an "'s "; where a name itself holds "'s ", the split whose left
   part is a name already known from unambiguous references (or the question) wins, else the leftmost.
2. *Structure*: every statement is an edge P -> C; items that are never a child are layer 0 (so is an item
   seen only in an abstract reference: only top-layer items can be missing from every sentence); each child
   sits one layer below its parent; j = order of first appearance in the text within the layer.
3. *Reference kinds*: "X's Y" is an instance parameter if a statement defines it, else an abstract
   parameter if Y is a category name, else an error.
4. *Categories*: the layers are d consecutive categories of one hierarchy; every (hierarchy, start) that
   puts every abstract "X's Cat" (question included) at a layer k with layer(X) < k < d, and whose graph
   has no dependency cycle, is a hypothesis. The vocabulary is *soft* evidence: among those, only the
   hypotheses that the most item names known to ``vocab.load().category_of`` agree with are kept. (It
   cannot be hard: our vocabulary is our own, and the authors' names collide with it across categories,
   e.g. their Organs item "Wrist Joint" is one of our Bone items.) Hypotheses that yield the same
   dependency graph are merged, keeping the first in (hierarchy, start) order, so the names of layers that
   no abstract reference mentions are only the best guess.
5. *G_d*: instance parameters in text order (so ``sentences`` = 0..ip-1), then the abstract parameters as
   first referenced, each followed recursively by its structural operands. ``value`` = evaluate(),
   ``order`` = the query's ancestors plus the query (Kahn, smallest index first).
Every failure is a :class:`ParseError` whose message names the sentence or name at fault.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass

from physlm.igsm.graph import ABSTRACT, INSTANCE, MOD, Graph, Key
from physlm.igsm.text import render_problem
from physlm.igsm.vocab import CATEGORIES, HIERARCHIES

__all__ = ["ParseError", "parse_candidates", "parse_problem", "render_problem", "split_problem"]

_Q_HEAD, _Q_MID, _Q_TAIL = "How many ", " does ", " have?"
_S_HEAD, _EQUALS, _EACH = "The number of each ", " equals ", "each "
_INT = re.compile(r"[0-9]{1,6}")
_MAX_SPLITS = 8
_LIST_SEP = re.compile(r"(, | and )(?=each )")
Ref = tuple[str, str]  # (X, Y) of "each X's Y"


class ParseError(ValueError):
    """The text is not a well-formed, consistent iGSM problem; the message says what and where."""


def _show(s: str, n: int = 120) -> str:
    return repr(s if len(s) <= n else s[: n - 3] + "...")


# ------------------------------------------------------------------------------------------- syntax
def split_problem(text: str) -> tuple[list[str], str, str]:
    """Split problem text into (statement sentences without final ".", question, "pq" | "qp")."""
    if not isinstance(text, str):
        raise ParseError(f"problem text must be a str, not {type(text).__name__}")
    t = text.strip()
    if not t:
        raise ParseError("empty problem text")
    if t.endswith("?"):
        cut = t.rfind(". " + _Q_HEAD)
        if cut < 0:
            what = "only a question" if t.startswith(_Q_HEAD) else "no question 'How many ... have?' after"
            raise ParseError(f"no statement sentences ({what}): {_show(t)}")
        body, question, fmt = t[: cut + 1], t[cut + 2 :], "pq"
    elif t.startswith(_Q_HEAD):
        cut = t.find(_Q_TAIL)
        if cut < 0:
            raise ParseError(f"the leading question does not end with ' have?': {_show(t)}")
        cut += len(_Q_TAIL)
        body, question, fmt = t[cut:].strip(), t[:cut], "qp"
    else:
        raise ParseError(f"no question 'How many ... does ... have?' at the start or the end: {_show(t)}")
    if not body.endswith("."):
        raise ParseError(f"the statements do not end with '.' (or there are none): {_show(body[-120:])}")
    sentences = [s.strip() for s in body[:-1].split(". ")]
    for n, s in enumerate(sentences):
        if not s:
            raise ParseError(f"empty sentence (number {n + 1}) in {_show(body)}")
    return sentences, question, fmt


def _parse_question(q: str) -> Ref:
    what, sep, owner = q[len(_Q_HEAD) : -len(_Q_TAIL)].partition(_Q_MID)
    if not (q.startswith(_Q_HEAD) and q.endswith(_Q_TAIL) and sep and _is_name(what) and _is_name(owner)):
        raise ParseError(f"question is not 'How many Y does X have?': {_show(q)}")
    return owner, what


def _is_name(s: str) -> bool:
    return bool(s) and s == s.strip()


@dataclass(slots=True)
class _Stmt:
    text: str
    subj: str  # raw "X's Y" without "each "
    ops: list[str]
    inner: str
    outer: str
    const: int


def _constant(s: str, sent: str) -> int:
    c = int(s)
    if not 0 <= c < MOD:
        raise ParseError(f"constant {c} is outside 0..{MOD - 1} in sentence {_show(sent)}")
    return c


def _parse_statement(s: str) -> _Stmt:
    if not s.startswith(_S_HEAD):
        raise ParseError(f"sentence does not start with 'The number of each ': {_show(s)}")
    subj, sep, rhs = s[len(_S_HEAD) :].partition(_EQUALS)
    if not sep:
        raise ParseError(f"sentence has no ' equals ': {_show(s)}")
    if _INT.fullmatch(rhs):
        return _Stmt(s, subj, [], "const", "", _constant(rhs, s))
    outer, const = "", -1
    for word, kind in ((" more than ", "add"), (" times as much as ", "mul")):
        head, found, tail = rhs.partition(word)
        if found and _INT.fullmatch(head):
            outer, const, rhs = kind, _constant(head, s), tail
            break
    if rhs.startswith("the sum of "):
        inner, body = "sum", rhs[len("the sum of ") :]
    elif rhs.startswith("the difference of "):
        inner, body = "diff", rhs[len("the difference of ") :]
    else:
        inner, body = "copy", rhs
    parts = _LIST_SEP.split(body) if inner != "copy" else [body]
    ops, seps = parts[0::2], parts[1::2]
    n = len(ops)
    if (
        (inner == "diff" and n != 2)
        or (inner == "sum" and not 2 <= n <= 4)
        or (n >= 2 and seps != [", "] * (n - 2) + [" and "])
    ):
        raise ParseError(f"malformed operand list {_show(body)} in sentence {_show(s)}")
    for x, op in enumerate(ops):
        if not op.startswith(_EACH):
            raise ParseError(f'operand {_show(op)} is not "each X\'s Y" in sentence {_show(s)}')
        ops[x] = op[len(_EACH) :]
    return _Stmt(s, subj, ops, inner, outer, const)


def _splits(raw: str) -> list[Ref]:
    """All ways to read ``raw`` as "X's Y"."""
    out, at = [], raw.find("'s ")
    while at >= 0:
        x, y = raw[:at], raw[at + 3 :]
        if _is_name(x) and _is_name(y):
            out.append((x, y))
        at = raw.find("'s ", at + 1)
    return out


def _resolve(raws: list[str], seed: set[str]) -> dict[str, Ref]:
    """Split every raw reference into (X, Y), disambiguating names that contain "'s " (module doc, 1)."""
    cands: dict[str, list[Ref]] = {}
    for raw in dict.fromkeys(raws):
        if raw.count("'s ") > _MAX_SPLITS:  # no real name holds that many; bounds the work on garbage
            raise ParseError(f'reference {_show(_EACH + raw)} has more than {_MAX_SPLITS} "\'s "')
        cands[raw] = _splits(raw)
        if not cands[raw]:
            raise ParseError(f'reference {_show(_EACH + raw)} is not of the form "each X\'s Y"')
    known, done = set(seed), {}
    waiting: dict[str, list[str]] = {}  # name -> ambiguous references with a split that mentions it
    for raw, c in cands.items():
        if len(c) == 1:
            done[raw] = c[0]
            known.update(c[0])
        for nm in {nm for xy in c for nm in xy} if len(c) > 1 else ():
            waiting.setdefault(nm, []).append(raw)

    def score(xy: Ref) -> int:
        return 2 * (xy[0] in known) + (xy[1] in known or xy[1] in CATEGORIES)

    # worklist: a reference is re-examined only when one of its names becomes known (linear, not quadratic)
    queue = deque(r for r in cands if r not in done)
    while queue:
        raw = queue.popleft()
        if raw in done:
            continue
        scores = [score(xy) for xy in cands[raw]]
        best = max(scores)
        if best >= 2 and scores.count(best) == 1:  # exactly one split has a known left part: take it
            done[raw] = cands[raw][scores.index(best)]
            for nm in done[raw]:
                if nm not in known:
                    known.add(nm)
                    queue.extend(waiting.get(nm, ()))
    for raw in (r for r in cands if r not in done):  # still ambiguous: best score, leftmost among ties
        done[raw] = max(cands[raw], key=score)
    return done


# ---------------------------------------------------------------------------------------- structure
@functools.lru_cache(maxsize=1)
def _vocabulary():
    try:
        from physlm.igsm import vocab

        return vocab.load()  # type: ignore[attr-defined]  # lands with the vocabulary data
    except (AttributeError, ImportError, OSError, ValueError, KeyError, TypeError):
        return None


def _category_of(name: str) -> tuple[int, int] | None:
    """(hierarchy, category) of an item name the vocabulary knows, else None."""
    v = _vocabulary()
    try:
        hit = v.category_of(name) if v is not None else None
        h, c = hit  # type: ignore[misc]
        return (h, c) if 0 <= h < len(HIERARCHIES) and 0 <= c < len(HIERARCHIES[h]) else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _layers(stmts: list[_Stmt], edges: dict[Ref, int], names: list[str], items: set[str]) -> dict[str, int]:
    """Layer of every item: roots are layer 0, each child one below its parent (module doc, 2)."""
    children: dict[str, list[tuple[str, int]]] = {}
    for (p, c), n in edges.items():
        children.setdefault(p, []).append((c, n))
    is_child = {c for _, c in edges}
    layer = {nm: 0 for nm in names if nm in items and nm not in is_child}
    queue = deque(layer)
    while queue:
        u = queue.popleft()
        for c, n in children.get(u, []):
            if c not in layer:
                layer[c] = layer[u] + 1
                queue.append(c)
            elif layer[c] != layer[u] + 1:
                raise ParseError(
                    f"item {c!r} lands on layer {layer[c]} and on layer {layer[u] + 1}: "
                    f"sentence {n + 1} {_show(stmts[n].text)}"
                )
    for (p, _), n in sorted(edges.items(), key=lambda e: e[1]):
        if p not in layer:
            raise ParseError(f"the items form a cycle with no top-layer item: sentence {n + 1} {_show(stmts[n].text)}")
    return layer


def _hypothesis_error(h: int, s: int, d: int, layer: dict[str, int], abstract: list[tuple[Ref, str]]) -> str | None:
    """Why (hierarchy h, start s) cannot name the layers of the abstract references, or None if it can."""
    chain = HIERARCHIES[h]
    for (x, cat), where in abstract:
        if cat not in chain:
            return f"{cat!r} ({where}) is not in this hierarchy"
        k = chain.index(cat) - s
        if not layer[x] < k < d:
            return f"{cat!r} is no layer below {x!r} (layer {layer[x]}) in {where}"
    return None


# ------------------------------------------------------------------------------------------- graph
def _build(
    h: int,
    s: int,
    d: int,
    stmts: list[_Stmt],
    refs: dict[str, Ref],
    edges: dict[Ref, int],
    items: list[list[str]],
    pos: dict[str, tuple[int, int]],
    seq: list[Ref],
    qref: Ref,
) -> Graph:
    """The Graph of one hypothesis; ``seq`` lists the operand and question references in text order."""
    chain = HIERARCHIES[h]
    g = Graph(layers=list(chain[s : s + d]), items=[list(layer) for layer in items])
    for st in stmts:
        (i, j), (_, k) = pos[refs[st.subj][0]], pos[refs[st.subj][1]]
        g.add((INSTANCE, i, j, k), rng=st.const >= 0, inner=st.inner, outer=st.outer, const=st.const)

    def ensure(key: Key) -> int:
        if g.has(key):
            return g.index(key)
        idx = g.add(key)
        _, i, j, k = key
        preds = []
        for x in g.children(i, j):
            preds.append(g.index((INSTANCE, i, j, x)))
            if k > i + 1:
                preds.append(ensure((ABSTRACT, i + 1, x, k)))
        g.preds[idx] = preds
        return idx

    def index(xy: Ref) -> int:
        (i, j) = pos[xy[0]]
        if xy in edges:
            return g.index((INSTANCE, i, j, pos[xy[1]][1]))
        return ensure((ABSTRACT, i, j, chain.index(xy[1]) - s))

    where = {xy: index(xy) for xy in seq}  # abstract parameters in text order of first reference
    for n, st in enumerate(stmts):
        g.preds[n] = [where[refs[op]] for op in st.ops]
    g.query = where[qref]
    done = g.topological(set(range(g.n)), strict=False)
    if len(done) < g.n:
        stuck = [p for p in range(g.n) if p not in set(done) and g.params[p][0] == INSTANCE]
        raise ParseError("the dependencies form a cycle through: " + "; ".join(_show(stmts[p].text) for p in stuck[:6]))
    g.value = g.evaluate()
    g.order = g.topological(g.ancestors(g.query) | {g.query}, strict=False)
    g.sentences = list(range(len(stmts)))
    return g


def parse_candidates(text: str, *, vocabulary: bool = True) -> list[Graph]:
    """Every Graph consistent with the text (one per distinct category hypothesis, deterministic order).

    With ``vocabulary`` the hypotheses are narrowed to those that the most item names known to our
    vocabulary agree with (module doc, 4); without it every structurally consistent one is returned.
    """
    sentences, question, fmt = split_problem(text)
    stmts = [_parse_statement(s) for s in sentences]
    qref = _parse_question(question)
    refs = _resolve([r for st in stmts for r in (st.subj, *st.ops)], set(qref))
    edges = _edges(stmts, refs)
    seq, abstract = _references(stmts, refs, qref, question, fmt, edges)
    items_set = {nm for e in edges for nm in e} | {x for (x, _), _ in abstract}
    subj_names = [nm for st in stmts for r in (st.subj, *st.ops) for nm in refs[r]]
    names = list(dict.fromkeys((list(qref) if fmt == "qp" else []) + subj_names + list(qref)))
    layer = _layers(stmts, edges, names, items_set)
    d = 1 + max(layer.values())
    if d > max(len(c) for c in HIERARCHIES):
        raise ParseError(
            f"the items span {d} layers, more than any hierarchy's {max(len(c) for c in HIERARCHIES)} categories"
        )
    items: list[list[str]] = [[] for _ in range(d)]
    pos: dict[str, tuple[int, int]] = {}
    for nm in names:
        if nm in items_set:
            pos[nm] = (layer[nm], len(items[layer[nm]]))
            items[layer[nm]].append(nm)
    built, errors = [], []
    for h, s in _hypotheses(d, layer, abstract):
        try:
            built.append((h, s, _build(h, s, d, stmts, refs, edges, items, pos, [xy for xy, _ in seq], qref)))
        except ParseError as e:  # e.g. a dependency cycle through an abstract parameter of this reading
            errors.append(e)
    if not built:
        raise errors[0]
    if vocabulary:  # soft evidence: keep the readings that the most item names known to the vocabulary agree with
        known = [(layer[nm], hit) for nm in pos if (hit := _category_of(nm)) is not None]
        votes = [sum(hit == (h, s + i) for i, hit in known) for h, s, _ in built]
        built = [b for b, v in zip(built, votes) if v == max(votes)]
    graphs, seen = [], set()
    for _, _, g in built:
        sig = (tuple(g.params), tuple(map(tuple, g.preds)))
        if sig not in seen:
            seen.add(sig)
            graphs.append(g)
    return graphs


def _edges(stmts, refs) -> dict[Ref, int]:
    """``{(item, item): sentence index}`` of every defined instance parameter; ParseError on a redefinition."""
    edges: dict[Ref, int] = {}
    for n, st in enumerate(stmts):
        xy = refs[st.subj]
        if xy in edges:
            raise ParseError(
                f"each {xy[0]}'s {xy[1]} is defined twice: sentence {n + 1} {_show(st.text)} "
                f"(first in sentence {edges[xy] + 1})"
            )
        edges[xy] = n
    return edges


def _references(stmts, refs, qref, question: str, fmt: str, edges):
    """Operand and question references in text order with where each occurs, and the abstract ones among them
    (not defined by a sentence, so they must name a category)."""
    seq: list[tuple[Ref, str]] = [
        (refs[op], f"sentence {n + 1} {_show(st.text)}") for n, st in enumerate(stmts) for op in st.ops
    ]
    seq.insert(0 if fmt == "qp" else len(seq), (qref, f"the question {_show(question)}"))
    abstract = []
    for xy, where in seq:
        if xy not in edges:
            if xy[1] not in CATEGORIES:
                raise ParseError(
                    f"'each {xy[0]}'s {xy[1]}' in {where}: no sentence defines it and {xy[1]!r} is not a category name"
                )
            abstract.append((xy, where))
    return seq, abstract


def _hypotheses(d: int, layer, abstract) -> list[tuple[int, int]]:
    """``(hierarchy, first category)`` of every reading of ``d`` consecutive categories that fits."""
    hyps, reasons = [], []
    for h, chain in enumerate(HIERARCHIES):
        for s in range(len(chain) - d + 1):
            why = _hypothesis_error(h, s, d, layer, abstract)
            if why is None:
                hyps.append((h, s))
            else:
                reasons.append(f"{'/'.join(chain[s : s + d])}: {why}")
    if not hyps:
        raise ParseError(f"no hierarchy of {d} consecutive categories fits the problem: " + "; ".join(reasons))
    return hyps


def parse_problem(text: str) -> Graph:
    """The first of :func:`parse_candidates` (the only one unless the category names are ambiguous)."""
    return parse_candidates(text)[0]
