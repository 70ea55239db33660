"""Generated problems survive every representation: text -> parsed graph, record row -> Parquet -> graph,
and the checker judges mutated generated solutions with the right error."""

from __future__ import annotations

import random
import re

import pyarrow.parquet as pq
import pytest

from physlm.igsm import record
from physlm.igsm.check import check
from physlm.igsm.config import HARD, MED, GenConfig
from physlm.igsm.generate import generate
from physlm.igsm.parse import parse_candidates
from physlm.igsm.solution import template_hash


def _necessary_names(g):
    return sorted(g.name(p) for p in g.order)


@pytest.mark.parametrize("fam", [MED, HARD], ids=["med", "hard"])
@pytest.mark.parametrize("fmt", ["pq", "qp"])
def test_problem_text_parses_back_to_the_same_answer_and_necessary_set(fam, fmt):
    for seed in range(500):
        p = generate(GenConfig(family=fam, format=fmt), seed)
        graphs = parse_candidates(p.problem)
        g = graphs[0]
        assert len(graphs) == 1, p.problem  # our names are in the vocabulary: one reading
        assert g.value[g.query] == p.answer
        assert _necessary_names(g) == _necessary_names(p.graph)
        assert g.op() == p.op
        # the generated solution checks against the parsed graph too, and hashes the same
        assert check(g, p.solution, p.answer).correct
        assert template_hash(g, p.solution) == p.template_hash


def test_record_round_trip(tmp_path):
    problems = [generate(GenConfig(format="qp" if s % 2 else "pq"), s) for s in range(50)]
    rows = [record.row(p, f"x-{s}", "train") for s, p in enumerate(problems)]
    path = tmp_path / "shard.parquet"
    pq.write_table(record.table(rows), path)
    back = pq.read_table(path)
    assert back.schema == record.SCHEMA
    for p, r in zip(problems, back.to_pylist()):
        g = record.graph_of(r)
        assert g.params == p.graph.params and g.preds == p.graph.preds and g.value == p.graph.value
        assert g.order == p.graph.order and g.sentences == p.graph.sentences
        assert r["answer"] == p.answer and r["problem"] == p.problem
        assert check(g, r["solution"], r["answer"]).correct


def _mutate(solution: str, how: str, rng: random.Random) -> str:
    sents = solution.strip(" .").split(". ")
    if how == "number":  # change the final result of some sentence
        x = rng.randrange(len(sents))
        head, num = sents[x].rsplit(" = ", 1)
        sents[x] = f"{head} = {(int(num) + 1) % 23}"
    elif how == "missing":
        del sents[rng.randrange(len(sents) - 1)]
    elif how == "redefine":  # reuse the first sentence's letter for the last
        first = re.match(r"Define .+ as (\w)", sents[0]).group(1)
        last = re.match(r"Define .+ as (\w)", sents[-1]).group(1)
        sents[-1] = re.sub(rf"\b{last}\b", first, sents[-1])
    elif how == "truncate":
        text = " " + ". ".join(sents) + "."
        return text[: rng.randrange(1, len(text) - 2)]
    return " " + ". ".join(sents) + "."


@pytest.mark.parametrize(
    "how,kinds",
    [
        ("number", {"wrong_arithmetic", "wrong_reference", "wrong_value", "wrong_answer"}),
        ("missing", {"undefined_symbol", "wrong_dependency", "wrong_final_param"}),
        ("redefine", {"redefined_symbol"}),
        (
            "truncate",
            {
                "malformed",
                "wrong_final_param",
                "empty",
                "wrong_answer",
                "wrong_arithmetic",
                "wrong_value",
                "wrong_reference",
            },
        ),
    ],
)
def test_mutated_generated_solutions_are_judged_incorrect(how, kinds):
    rng = random.Random(0)
    seen = 0
    for seed in range(300):
        p = generate(GenConfig(), seed)
        if len(p.graph.order) < 2:
            continue
        v = check(p.graph, _mutate(p.solution, how, rng), p.answer)
        assert not v.correct
        assert {e.kind for e in v.errors} & kinds, (how, v.to_dict())
        seen += 1
    assert seen > 100


def test_extra_unnecessary_step_is_correct_and_listed():
    for seed in range(200):
        p = generate(GenConfig(), seed)
        g = p.graph
        extra = [x for x in range(g.n) if x not in set(g.order) and g.params[x][0] == 0 and g.inner[x] == "const"]
        if not extra:
            continue
        x = extra[0]
        used = set(re.findall(r" as (\w);", p.solution))
        letter = next(c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
        step = f"Define {g.name(x)} as {letter}; so {letter} = {g.const[x]}"
        v = check(g, " " + step + "." + p.solution, p.answer)
        assert v.correct and v.unnecessary == [g.name(x)]
        return
    pytest.fail("no problem with an unnecessary constant parameter")
