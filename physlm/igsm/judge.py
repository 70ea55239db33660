"""Judge a solution from texts alone: parse the problem text, check the solution, pick the reading.

Used by ``physlm check`` and by evaluation of external models. A problem whose item names are unknown to
our vocabulary can have several consistent readings (which layer an abstract "X's Animal" refers to);
we check the solution against each and keep, in this order, a reading where it is correct, one whose
answer equals the given ``answer``, or the first. Nothing here raises on bad input: every failure is a
verdict with an error of kind "bad_input".
"""

from __future__ import annotations

import json

from physlm.igsm.check import check
from physlm.igsm.parse import ParseError, parse_candidates


def _bad(line_no: int | None, detail: str) -> dict:
    return {
        "line": line_no,
        "correct": False,
        "answer_correct": False,
        "answer": None,
        "errors": [{"kind": "bad_input", "param": None, "step": None, "detail": detail}],
        "unnecessary": [],
        "first_wrong_param": None,
    }


def judge(problem: str, solution: str, answer: object = None) -> dict:
    """Verdict dict for a problem text and a solution text (+ optional claimed answer)."""
    try:
        graphs = parse_candidates(problem)
    except ParseError as e:
        return _bad(None, f"problem text: {e}")
    verdicts = [check(g, solution, answer) for g in graphs]
    best = next((v for v in verdicts if v.correct), None)
    if best is None and answer is not None:
        best = next((v for v in verdicts if v.answer_correct), None)
    best = best or verdicts[0]
    out = best.to_dict()
    out["readings"] = len(graphs)
    return out


def judge_line(line: str, line_no: int | None = None) -> dict:
    """One JSON line {problem, solution[, answer]} -> verdict dict (with "line" and "id" if given)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        return _bad(line_no, f"not valid JSON: {e}")
    except RecursionError:  # nested deeper than Python's parser goes: a verdict, not a crash
        return _bad(line_no, "not valid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return _bad(line_no, "each line must be a JSON object with 'problem' and 'solution'")
    missing = [k for k in ("problem", "solution") if not isinstance(obj.get(k), str)]
    if missing:
        return _bad(line_no, f"missing or non-string field(s): {', '.join(missing)}")
    out = judge(obj["problem"], obj["solution"], obj.get("answer"))
    out["line"] = line_no
    if "id" in obj:
        out["id"] = obj["id"]
    return out
