"""Solution text (chain of thought) and the solution-template hash (igsm-spec.md A.7, A.10, A.12).

One sentence per necessary parameter, in ``graph.order``; every step is binary, and each parameter's
intermediate letters are drawn before its own (post-order), exactly as the authors' ``to_sol``:

    Define <name> as v; [t1 = x + y = 3 + 4 = 7; ...;] so v = <hint> = <numbers> = <result>

The template of a solution replaces parameter names by "Inst"/"Inter", every numeral by "0", ";" by ".",
and renames the letters a, b, c, ... by first appearance; its SHA-256 mod 23 is the template hash that
splits train (< 17) from test. ``template_hash`` follows the authors' procedure string for string (all
candidate names of the structure graph, in their order), so hashes agree with theirs.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from physlm.igsm.graph import ABSTRACT, LETTERS, MOD, Graph

_LETTER_SET = frozenset(LETTERS)
_NUMERALS = [str(x) for x in range(MOD - 1, 0, -1)]  # "22" .. "1": longest first


@dataclass(frozen=True)
class Sentence:
    """One sentence of a solution text, as the checker reads it."""

    text: str
    """The sentence without its final "."."""
    start: int
    """Offset of its first character in the solution text."""
    end: int
    """Offset right after its "." (where the next state of the solution begins)."""
    retry: bool
    """A Part 2.2 retry sentence ("Define X as BACK."): it defines nothing and advances no state."""


def sentences(solution: str) -> list[Sentence]:
    """The sentences of a solution text: the text stripped, a final "." dropped, split on ". ". The one splitter
    of solution texts: the checker, the probe labels' states and the error analysis all read sentences so."""
    body = solution.strip()
    pos = len(solution) - len(solution.lstrip())
    if body.endswith("."):
        body = body[:-1]
    out = []
    for piece in body.split(". ") if body else []:
        out.append(Sentence(piece, pos, pos + len(piece) + 1, " BACK" in piece))
        pos += len(piece) + 2
    return out


def _fold(items: list, sign: str) -> tuple:
    """Left fold of operands into binary nodes: a + b + c -> ((a + b) + c)."""
    node = items[0]
    for item in items[1:]:
        node = ("op", sign, node, item)
    return node


def expression(graph: Graph, p: int, letter: dict[int, str]) -> tuple:
    """The parameter's formula as a tree of ("ref", letter, value) / ("num", c) / ("op", sign, l, r)."""
    refs = [("ref", letter[q], graph.value[q]) for q in graph.preds[p]]
    if graph.params[p][0] == ABSTRACT:
        _, i, _, k = graph.params[p]
        if k > i + 1:  # per child: instance * lower abstract, summed
            refs = [("op", " * ", refs[t], refs[t + 1]) for t in range(0, len(refs), 2)]
        return _fold(refs, " + ") if refs else ("num", 0)
    inner = graph.inner[p]
    if inner == "const":
        return ("num", graph.const[p])
    body = _fold(refs, " - " if inner == "diff" else " + ")
    if graph.outer[p] == "add":
        return ("op", " + ", ("num", graph.const[p]), body)
    if graph.outer[p] == "mul":
        return ("op", " * ", ("num", graph.const[p]), body)
    return body


def _value(node: tuple) -> int:
    if node[0] == "ref":
        return node[2]
    if node[0] == "num":
        return node[1]
    _, sign, left, right = node
    a, b = _value(left), _value(right)
    return (a + b if sign == " + " else a - b if sign == " - " else a * b) % MOD


def _steps(node: tuple, letters: list[str], out: list[str]) -> tuple[str, int]:
    """Emit intermediate steps of a non-root node; returns (its name in the hint, its value)."""
    if node[0] == "ref":
        return node[1], node[2]
    if node[0] == "num":
        return str(node[1]), node[1]
    _, sign, left, right = node
    (ln, lv), (rn, rv) = _steps(left, letters, out), _steps(right, letters, out)
    name, value = letters.pop(), _value(node)
    out.append(f"{name} = {ln}{sign}{rn} = {lv}{sign}{rv} = {value}")
    return name, value


def sentence(graph: Graph, p: int, letter: dict[int, str], letters: list[str]) -> str:
    """The solution sentence of parameter p; draws its letters from the end of ``letters``."""
    node = expression(graph, p, letter)
    parts: list[str] = []
    if node[0] == "op":
        _, sign, left, right = node
        (ln, lv), (rn, rv) = _steps(left, letters, parts), _steps(right, letters, parts)
        tail = f" = {ln}{sign}{rn} = {lv}{sign}{rv} = {_value(node)}"
    elif node[0] == "ref":  # copy: "so v = e = 6"
        tail = f" = {node[1]} = {node[2]}"
    else:  # constant
        tail = f" = {node[1]}"
    v = letters.pop()
    letter[p] = v
    return "; ".join([f"Define {graph.name(p)} as {v}", *parts, f"so {v}{tail}"])


def render(graph: Graph, rng: random.Random, order: list[int] | None = None) -> str:
    """The solution text for ``order`` (default ``graph.order``): leading space, ". "-joined, final "."."""
    order = graph.order if order is None else order
    n_letters = sum(graph.op_of(p) for p in order)
    if n_letters > len(LETTERS):
        raise ValueError(f"solution needs {n_letters} letters; only {len(LETTERS)} exist (op <= 52)")
    letters = rng.sample(LETTERS, n_letters)  # popped from the end: uniform without replacement
    letter: dict[int, str] = {}
    return " " + ". ".join(sentence(graph, p, letter, letters) for p in order) + "."


def recall(graph: Graph, rng: random.Random) -> tuple[str, int] | None:
    """An associative-recall drill on ``graph``'s statement: every parameter it gives as a number, in random order,
    one solution sentence each ("Define Value Haul's Cream Cheese as n; so n = 14."), and the last one's value;
    None where it gives none (its sources are abstract parameters without children, worth 0)."""
    given = [p for p in graph.sentences if graph.inner[p] == "const"]
    if not given:
        return None
    rng.shuffle(given)
    letters, letter = rng.sample(LETTERS, len(given)), {}
    return " " + ". ".join(sentence(graph, p, letter, letters) for p in given) + ".", graph.value[given[-1]]


def render_with_retries(graph: Graph, rng: random.Random, rate: float, weak: bool = False) -> str:
    """Part 2.2 retry data: before each sentence, while rng.random() < rate, a wrong "Define X as BACK"
    where X is not yet computable (or, weak, a future necessary step)."""
    clean = render(graph, rng).strip(" .").split(". ")
    out: list[str] = []
    known: set[int] = set()
    for pos, p in enumerate(graph.order):
        while rng.random() < rate:
            if weak:
                pool = graph.order[pos + 1 :]
            else:
                pool = [q for q in range(graph.n) if q not in known and not all(r in known for r in graph.preds[q])]
            if not pool:
                break
            out.append(f"Define {graph.name(rng.choice(pool))} as BACK")
        out.append(clean[pos])
        known.add(p)
    return " " + ". ".join(out) + "."


def candidate_names(graph: Graph) -> list[tuple[str, str]]:
    """Every candidate parameter name of the structure graph with its template word, in the authors'
    order (all instance tuples, then all abstract tuples)."""
    d, items, layers = graph.d, graph.items, graph.layers
    names = [
        (f"{items[i][j]}'s {items[i + 1][k]}", "Inst")
        for i in range(d - 1)
        for j in range(len(items[i]))
        for k in range(len(items[i + 1]))
    ]
    names += [
        (f"{items[i][j]}'s {layers[k]}", "Inter")
        for i in range(d - 1)
        for j in range(len(items[i]))
        for k in range(i + 1, d)
    ]
    return names


def template(solution: str, names: list[tuple[str, str]]) -> str:
    """The solution template (authors' ``to_sketch``): names, numerals and letters abstracted."""
    for name, word in names:
        if name in solution:
            solution = solution.replace(name, word)
    for num in _NUMERALS:
        if num in solution:
            solution = solution.replace(num, "0")
    seen: dict[str, str] = {}
    sentences = []
    for sent in solution.replace(";", ".").split(". "):
        words = sent.split(" ")
        for x, w in enumerate(words):
            if w in _LETTER_SET:
                if w not in seen:
                    seen[w] = LETTERS[len(seen)]
                words[x] = seen[w]
        sentences.append(" ".join(words))
    return ". ".join(sentences)


def template_hash(graph: Graph, solution: str) -> int:
    """SHA-256 of the solution template as an integer, mod 23 (spec A.10)."""
    sketch = template(solution, candidate_names(graph))
    return int(hashlib.sha256(sketch.encode()).hexdigest(), 16) % MOD
