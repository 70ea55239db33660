"""Tests of the full-solution checker (physlm.igsm.check) on a hand-built 3-layer problem."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from physlm.igsm.check import Verdict, check, name_map
from physlm.igsm.graph import Graph


def make_graph() -> Graph:
    g = Graph(
        layers=["Zoo", "Enclosure", "Animal"],
        items=[["Alpha Zoo", "Beta Zoo"], ["Lion Den", "Bird House"], ["Lion", "Eagle", "Parrot"]],
    )
    lion = g.add((0, 1, 0, 0), [], rng=True, inner="const", const=5)  # 5
    eagle = g.add((0, 1, 1, 1), [lion], rng=True, inner="copy", outer="add", const=3)  # 3 + 5 = 8
    parrot = g.add((0, 1, 1, 2), [lion, eagle], inner="diff")  # 5 - 8 = 20
    ld_animal = g.add((1, 1, 0, 2), [lion])  # 5
    bh_animal = g.add((1, 1, 1, 2), [eagle, parrot])  # 28 = 5
    az_ld = g.add((0, 0, 0, 0), [bh_animal], rng=True, inner="copy", outer="mul", const=4)  # 20
    az_bh = g.add((0, 0, 0, 1), [lion, eagle, parrot], rng=True, inner="sum", outer="add", const=2)  # 12
    az_animal = g.add((1, 0, 0, 2), [az_ld, ld_animal, az_bh, bh_animal])  # 100 + 60 = 22
    g.add((0, 0, 1, 1), [eagle], inner="copy")  # unnecessary, 8
    g.value = g.evaluate()
    g.query = az_animal
    g.order = list(range(8))
    g.sentences = [p for p in range(g.n) if g.params[p][0] == 0]
    return g


G = make_graph()
SENTENCES = [
    "Define Lion Den's Lion as a; so a = 5",
    "Define Bird House's Eagle as b; so b = 3 + a = 3 + 5 = 8",
    "Define Bird House's Parrot as c; so c = a - b = 5 - 8 = 20",
    "Define Lion Den's Animal as d; so d = a = 5",
    "Define Bird House's Animal as e; so e = b + c = 8 + 20 = 5",
    "Define Alpha Zoo's Lion Den as f; so f = 4 * e = 4 * 5 = 20",
    "Define Alpha Zoo's Bird House as g; h = a + b = 5 + 8 = 13; i = h + c = 13 + 20 = 10; so g = 2 + i = 2 + 10 = 12",
    "Define Alpha Zoo's Animal as j; k = f * d = 20 * 5 = 8; l = g * e = 12 * 5 = 14; so j = k + l = 8 + 14 = 22",
]


def sol(sentences: list[str]) -> str:
    return " " + ". ".join(sentences) + "."


CORRECT = sol(SENTENCES)


def replace(idx: int, new: str) -> str:
    return sol(SENTENCES[:idx] + [new] + SENTENCES[idx + 1 :])


def kinds(v: Verdict) -> list[str]:
    return [m.kind for m in v.errors]


def test_graph_values():
    assert G.value == [5, 8, 20, 5, 5, 20, 12, 22, 8]
    assert G.op() == CORRECT.count(";")


def test_correct_solution():
    v = check(G, CORRECT)
    assert v.correct and v.answer_correct and v.answer == 22
    assert v.errors == [] and v.unnecessary == [] and v.first_wrong_param is None
    assert v.n_steps == 8 and v.n_retries == 0
    assert v.defined == [G.name(p) for p in G.order]
    for ans in (22, "22", " 22"):
        assert check(G, CORRECT, ans).correct
    json.dumps(v.to_dict())


def test_name_map_structural():
    names = name_map(G)
    assert names["Beta Zoo's Animal"] == (1, 0, 1, 2)
    assert names["Alpha Zoo's Enclosure"] == (1, 0, 0, 1)
    assert "Beta Zoo's Lion Den" not in names  # not an edge of the structure graph
    assert names["Alpha Zoo's Lion Den"] == (0, 0, 0, 0)


def test_wrong_arithmetic():
    v = check(G, replace(4, "Define Bird House's Animal as e; so e = b + c = 8 + 20 = 6"))
    assert not v.correct and v.answer_correct  # the later steps still used 5 and reach 22
    assert kinds(v)[0] == "wrong_arithmetic" and v.first_wrong_param == "Bird House's Animal"
    assert "wrong_reference" in kinds(v)  # f = 4 * e used 5, but e was given 6


def test_wrong_number():
    v = check(G, replace(2, "Define Bird House's Parrot as c; so c = a - b = 5 - 7 = 21"))
    assert kinds(v)[0] == "wrong_reference" and v.errors[0].param == "Bird House's Parrot"
    assert "wrong_value" not in kinds(v)  # explained by the reference error


def test_wrong_operand():
    v = check(G, replace(4, "Define Bird House's Animal as e; so e = b + d = 8 + 5 = 13"))
    assert kinds(v)[0] == "wrong_dependency" and v.first_wrong_param == "Bird House's Animal"
    assert "Bird House's Parrot" in v.errors[0].detail and "Lion Den's Animal" in v.errors[0].detail


def test_wrong_constant_and_operator():
    v = check(G, replace(5, "Define Alpha Zoo's Lion Den as f; so f = 5 * e = 5 * 5 = 2"))
    assert kinds(v)[0] == "wrong_value" and v.first_wrong_param == "Alpha Zoo's Lion Den"
    v = check(G, replace(1, "Define Bird House's Eagle as b; so b = 3 * a = 3 * 5 = 15"))
    assert kinds(v)[0] == "wrong_value" and v.first_wrong_param == "Bird House's Eagle"


def test_wrong_answer():
    v = check(
        G,
        replace(
            7,
            "Define Alpha Zoo's Animal as j; k = f * d = 20 * 5 = 8; "
            "l = g * e = 12 * 5 = 14; so j = k - l = 8 - 14 = 17",
        ),
    )
    assert kinds(v) == ["wrong_value", "wrong_answer"] and not v.answer_correct
    assert v.first_wrong_param == "Alpha Zoo's Animal"
    v = check(G, replace(7, SENTENCES[7].replace("= 22", "= 21")))
    assert kinds(v) == ["wrong_arithmetic", "wrong_answer"] and not v.answer_correct


def test_missing_necessary_step():
    v = check(G, sol(SENTENCES[:2] + SENTENCES[3:]))
    assert not v.correct and kinds(v)[0] == "undefined_symbol"
    assert v.first_wrong_param == "Bird House's Animal"
    assert "wrong_dependency" not in kinds(v)  # unresolved letters do not double-count


def test_used_before_defined():
    order = SENTENCES[:2] + [SENTENCES[4], SENTENCES[2], SENTENCES[3]] + SENTENCES[5:]
    v = check(G, sol(order))
    assert kinds(v)[0] == "undefined_symbol" and v.first_wrong_param == "Bird House's Animal"


def test_redefined_symbol_and_duplicate_param():
    v = check(G, replace(3, "Define Lion Den's Animal as a; so a = a = 5"))
    assert "redefined_symbol" in kinds(v) and v.first_wrong_param == "Lion Den's Animal"
    v = check(G, sol(SENTENCES[:1] + ["Define Lion Den's Lion as m; so m = 5"] + SENTENCES[1:]))
    assert kinds(v) == ["duplicate_param"] and v.first_wrong_param == "Lion Den's Lion"


def test_wrong_final_param():
    v = check(G, sol(SENTENCES[:-1]))
    assert kinds(v) == ["wrong_final_param"] and not v.answer_correct
    assert v.first_wrong_param == "Alpha Zoo's Bird House"
    v = check(G, sol(SENTENCES + ["Define Beta Zoo's Bird House as m; so m = b = 8"]))
    assert kinds(v) == ["wrong_final_param"] and v.answer_correct
    assert v.unnecessary == ["Beta Zoo's Bird House"]


def test_answer_argument():
    for ans in (21, "21", "22 ", "x", 22.0, True):
        v = check(G, CORRECT, ans)
        assert kinds(v) == ["answer_mismatch"] and not v.answer_correct and not v.correct


def test_unnecessary_steps_are_not_errors():
    extra = [
        "Define Beta Zoo's Bird House as m; so m = b = 8",
        "Define Beta Zoo's Animal as n; so n = m * e = 8 * 5 = 17",
        "Define Alpha Zoo's Enclosure as o; so o = f + g = 20 + 12 = 9",
    ]
    v = check(G, sol(SENTENCES[:-1] + extra + SENTENCES[-1:]))
    assert v.correct
    assert v.unnecessary == ["Beta Zoo's Bird House", "Beta Zoo's Animal", "Alpha Zoo's Enclosure"]
    v = check(G, sol(SENTENCES[:-1] + ["Define Beta Zoo's Animal as n; so n = b * e = 8 * 5 = 17"] + SENTENCES[-1:]))
    assert kinds(v) == ["wrong_dependency"] and v.unnecessary == []


def test_unknown_param():
    v = check(G, sol(SENTENCES[:1] + ["Define Beta Zoo's Lion Den as m; so m = 3"] + SENTENCES[1:]))
    assert kinds(v) == ["unknown_param"] and v.first_wrong_param == "Beta Zoo's Lion Den"
    v = check(G, sol(SENTENCES[:1] + ["Define Foo's Bar as m; so m = 3"] + SENTENCES[1:]))
    assert kinds(v) == ["unknown_param"]


def test_back_sentences_skipped():
    text = sol(
        SENTENCES[:3]
        + ["Define Alpha Zoo's Animal as BACK"]
        + SENTENCES[3:5]
        + ["Define Alpha Zoo's Bird House as BACK", "Define Bird House's Eagle as BACK"]
        + SENTENCES[5:]
    )
    v = check(G, text)
    assert v.correct and v.n_retries == 3 and v.n_steps == 8


def test_malformed():
    cases = [
        replace(0, "Define Lion Den's Lion as aa; so aa = 5"),
        replace(0, "Define Lion Den's Lion as a; so x = 5"),
        replace(0, "Define Lion Den's Lion as a; so a = 23"),
        replace(0, "Define Lion Den's Lion as a so a = 5"),
        replace(1, "Define Bird House's Eagle as b; so b = 3 + a = 8"),
        replace(1, "Define Bird House's Eagle as b; so b = 3 + a = 3 * 5 = 8"),
        replace(3, "Define Lion Den's Animal as d; so d = a = 5 = 5"),
        replace(6, SENTENCES[6].replace("h = a + b", "h = a + b + c")),
        replace(0, "Define Lion Den's Lion as a"),
        replace(0, "The Lion Den's Lion is 5"),
    ]
    for text in cases:
        v = check(G, text)
        assert "malformed" in kinds(v) and not v.correct, text


def test_truncated_and_garbage():
    for cut in range(1, len(CORRECT) - 1, 7):
        v = check(G, CORRECT[:cut])
        assert not v.correct, CORRECT[:cut]
    for text in ("", "   ", ".", None, 17):
        assert kinds(check(G, text)) == ["empty"]  # type: ignore[arg-type]
    v = check(G, "hello world. so what = 5")
    assert not v.correct and kinds(v) == ["malformed", "malformed"]
    assert v.first_wrong_param is None


def test_internal_error_becomes_malformed():
    bad = Graph(layers=["A"], items=[["x"]])  # no query: the checker must not raise
    v = check(bad, CORRECT)
    assert not v.correct and kinds(v) == ["malformed"]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.one_of(st.none(), st.integers(), st.text()))
def test_arbitrary_text_never_raises(text, answer):
    v = check(G, text, answer)
    assert isinstance(v, Verdict)
    json.dumps(v.to_dict())


_ALPHABET = st.sampled_from(list("abcxyzABC0123456789 .;=+-*'") + ["Define ", " as ", "; so ", " BACK", ". "])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["del", "ins", "swap"]), st.integers(0, 10**6), _ALPHABET), min_size=1, max_size=6
    )
)
def test_mutated_solutions_never_raise(edits):
    text = CORRECT
    for op, pos, s in edits:
        pos %= max(len(text), 1)
        if op == "del":
            text = text[:pos] + text[pos + 1 :]
        elif op == "ins":
            text = text[:pos] + s + text[pos:]
        elif len(text) > pos + 1:
            text = text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
    v = check(G, text)
    assert isinstance(v, Verdict)
    assert v.correct == (not v.errors)
    json.dumps(v.to_dict())
