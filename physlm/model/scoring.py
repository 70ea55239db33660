"""Score model generations with the iGSM checker and aggregate accuracy tables (spec C.3-C.4).

A generation is the text a model wrote after the evaluation prompt (problem, then the solution marker):
the solution, the answer marker, the answer, the end token. ``score`` turns it into one ``generations``
row; garbage, a missing answer marker and a generation that never ended are verdicts (error classes
"no_answer", "truncated"), never exceptions. ``accuracy_table`` aggregates rows per
(checkpoint, test set, op, decoding) with a Wilson 95% interval.
"""

from __future__ import annotations

import math
from collections import defaultdict

from physlm.igsm.check import check
from physlm.igsm.graph import Graph


def score(graph: Graph, solution: str | None, answer: str | None, ended: bool) -> dict:
    """One generation -> the checker's verdict as flat columns.

    ``solution`` is the text between the solution and answer markers (None if the answer marker never
    came), ``answer`` the text after it (None likewise), ``ended`` whether the end token was emitted.
    """
    if solution is None:
        v = check(graph, "", None)
        error = "truncated" if not ended else "no_answer"
        return {
            "correct": False,
            "answer_correct": False,
            "n_unnecessary": 0,
            "unnecessary": [],
            "first_wrong_param": None,
            "error": error,
            "errors": [error],
            "true_answer": v.answer,
            "n_steps": 0,
        }
    v = check(graph, solution, answer if answer is not None else "")
    kinds = [e.kind for e in v.errors]
    if not ended:
        kinds.append("truncated")
    error = kinds[0] if kinds else None
    return {
        "correct": v.correct and ended,
        "answer_correct": v.answer_correct and ended,
        "n_unnecessary": len(v.unnecessary),
        "unnecessary": list(v.unnecessary),
        "first_wrong_param": v.first_wrong_param,
        "error": error,
        "errors": kinds,
        "true_answer": v.answer,
        "n_steps": v.n_steps,
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (0..1); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_table(
    rows: list[dict], by: tuple[str, ...] = ("checkpoint_id", "test_set", "op", "decoding"), pooled_op: bool = True
) -> list[dict]:
    """Accuracy per group (and, with ``pooled_op``, per group with op pooled as op = -1)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in by)].append(r)
        if pooled_op and "op" in by:
            groups[tuple(-1 if k == "op" else r[k] for k in by)].append(r)
    out = []
    for key in sorted(groups, key=lambda t: tuple((x is None, x) for x in t)):
        rs = groups[key]
        n, k = len(rs), sum(bool(r["correct"]) for r in rs)
        lo, hi = wilson(k, n)
        good = [r for r in rs if r["correct"]]
        out.append(
            {
                **dict(zip(by, key)),
                "n": n,
                "correct": k,
                "accuracy": k / n,
                "ci_low": lo,
                "ci_high": hi,
                "answer_accuracy": sum(bool(r["answer_correct"]) for r in rs) / n,
                "mean_unnecessary": (sum(r["n_unnecessary"] for r in good) / len(good)) if good else None,
            }
        )
    return out
