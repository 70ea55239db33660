"""Scoring generations: every failure mode is a verdict; accuracy tables with Wilson intervals."""

from __future__ import annotations

from physlm.igsm.config import GenConfig
from physlm.igsm.generate import generate
from physlm.model.scoring import accuracy_table, score, wilson


def test_score_correct_garbage_truncated_and_unended():
    p = generate(GenConfig(), 1)
    g = p.graph
    ok = score(g, p.solution, f" {p.answer}", ended=True)
    assert ok["correct"] and ok["answer_correct"] and ok["error"] is None and ok["true_answer"] == p.answer
    garbage = score(g, " ;;; = = Define", " x", ended=True)
    assert not garbage["correct"] and garbage["error"] == "malformed"
    no_marker = score(g, None, None, ended=False)
    assert not no_marker["correct"] and no_marker["error"] == "truncated"
    no_answer = score(g, None, None, ended=True)
    assert no_answer["error"] == "no_answer"
    unended = score(g, p.solution, f" {p.answer}", ended=False)
    assert not unended["correct"] and "truncated" in unended["errors"]
    wrong = score(g, p.solution, f" {(p.answer + 1) % 23}", ended=True)
    assert not wrong["correct"] and wrong["error"] == "answer_mismatch"


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert 0.40 < lo < 0.41 and 0.59 < hi < 0.60
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo > 0.7


def test_accuracy_table_groups_and_pools_ops():
    rows = [
        {
            "checkpoint_id": "c",
            "test_set": "t",
            "op": op,
            "decoding": "greedy",
            "correct": c,
            "answer_correct": c,
            "n_unnecessary": u,
        }
        for op, c, u in [(1, True, 0), (1, False, 0), (2, True, 2)]
    ]
    table = {(r["op"]): r for r in accuracy_table(rows)}
    assert table[1]["n"] == 2 and table[1]["accuracy"] == 0.5
    assert table[-1]["n"] == 3 and table[-1]["correct"] == 2 and table[-1]["mean_unnecessary"] == 1.0
