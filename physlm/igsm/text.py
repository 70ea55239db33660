"""Render a :class:`~physlm.igsm.graph.Graph` as iGSM problem text (igsm-spec.md A.5-A.6).

This is the exact inverse of :mod:`physlm.igsm.parse`: one sentence per instance parameter, in
``graph.sentences`` order, each "The number of each X's Y equals <RHS>", joined as
``" " + ". ".join(sentences) + "."``; the question ``graph.question()`` goes after the statements (pq) or
before them (qp). Reads nothing but the graph; writes nothing.
"""

from __future__ import annotations

from physlm.igsm.graph import INSTANCE, Graph


def render_expr(graph: Graph, p: int) -> str:
    """The operand expression E of instance parameter ``p`` (without constant), e.g. "the sum of R1 and R2"."""
    refs = [graph.ref(q) for q in graph.preds[p]]
    inner = graph.inner[p]
    if inner == "copy" and len(refs) == 1:
        return refs[0]
    if inner == "diff" and len(refs) == 2:
        return f"the difference of {refs[0]} and {refs[1]}"
    if inner == "sum" and 2 <= len(refs) <= 4:
        return "the sum of " + ", ".join(refs[:-1]) + " and " + refs[-1]
    raise ValueError(f"cannot render inner {inner!r} with {len(refs)} operands for {graph.name(p)}")


def render_rhs(graph: Graph, p: int) -> str:
    """Everything after "equals" (with its leading space) for instance parameter ``p``."""
    inner, outer, const = graph.inner[p], graph.outer[p], graph.const[p]
    if inner == "const":
        if graph.preds[p] or outer or not 0 <= const < 23:
            raise ValueError(f"bad constant formula for {graph.name(p)}")
        return f" {const}"
    expr = render_expr(graph, p)
    if outer == "":
        return " " + expr
    if not 0 <= const < 23:
        raise ValueError(f"bad constant {const} for {graph.name(p)}")
    if outer == "add":
        return f" {const} more than {expr}"
    if outer == "mul":
        return f" {const} times as much as {expr}"
    raise ValueError(f"unknown outer {outer!r} for {graph.name(p)}")


def render_sentence(graph: Graph, p: int) -> str:
    """The problem sentence of instance parameter ``p`` (no final period)."""
    if graph.params[p][0] != INSTANCE:
        raise ValueError(f"{graph.name(p)} is abstract and has no problem sentence")
    return "The number of " + graph.ref(p) + " equals" + render_rhs(graph, p)


def render_problem(graph: Graph, fmt: str = "pq") -> str:
    """The problem text: statements in ``graph.sentences`` order plus the question (end: "pq", start: "qp")."""
    body = " " + ". ".join(render_sentence(graph, p) for p in graph.sentences) + "."
    question = graph.question()
    if fmt == "pq":
        return body + question
    if fmt == "qp":
        return question + body
    raise ValueError(f"fmt must be 'pq' or 'qp', not {fmt!r}")
