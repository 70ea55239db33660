"""Tests of the probe labels (physlm.igsm.labels): hand-built graphs with known answers, then invariants
over generated problems."""

from __future__ import annotations

import random

import numpy as np
import pytest

from physlm.igsm import vocab
from physlm.igsm.config import GenConfig, family
from physlm.igsm.generate import generate
from physlm.igsm.graph import Graph
from physlm.igsm.labels import (
    TASKS,
    all_state_labels,
    boundary_states,
    dep_matrix,
    distance_to_query,
    probe_samples,
    sentence_boundaries,
    state_labels,
)


# ------------------------------------------------------------------------------------------ hand-built graphs
def build(
    specs: list[tuple],
    order: list[int],
    query: int,
    layers=("Zoo", "Enclosure", "Animal"),
    items=(["Z0", "Z1"], ["E0", "E1", "E2"], ["A0", "A1", "A2"]),
) -> Graph:
    """specs: (key, preds, rng, value) per parameter."""
    g = Graph(layers=list(layers), items=[list(x) for x in items])
    for key, preds, rng, value in specs:
        g.add(key, preds, rng=rng, inner="const" if rng and not preds else "copy", value=value)
    g.order, g.query = list(order), query
    return g


def chain() -> Graph:
    """a -> b -> c (query); unnecessary branch a -> d -> e."""
    return build(
        [
            ((0, 1, 0, 0), [], True, 5),  # 0 a
            ((0, 1, 0, 1), [0], True, 7),  # 1 b
            ((0, 0, 0, 0), [1], False, 7),  # 2 c (query)
            ((0, 1, 1, 0), [0], True, 9),  # 3 d (unnecessary)
            ((0, 0, 1, 1), [3], False, 9),
        ],  # 4 e (unnecessary)
        order=[0, 1, 2],
        query=2,
    )


def diamond() -> Graph:
    """a -> b, a -> c, (b, c) -> q."""
    return build(
        [
            ((0, 1, 0, 0), [], True, 1),
            ((0, 1, 0, 1), [0], True, 2),
            ((0, 1, 0, 2), [0], True, 3),
            ((0, 0, 0, 0), [1, 2], False, 5),
        ],
        order=[0, 2, 1, 3],
        query=3,
    )


def abstract() -> Graph:
    """Z0 has children E0, E1; E0 has child A0; E1 is childless. Query: Z0's Animal (k = i+2)."""
    g = build(
        [
            ((0, 1, 0, 0), [], True, 5),  # 0 E0's A0 = 5
            ((1, 1, 1, 2), [], False, 0),  # 1 E1's Animal (no operands) = 0
            ((0, 0, 0, 0), [], True, 3),  # 2 Z0's E0 = 3
            ((0, 0, 0, 1), [1], True, 2),  # 3 Z0's E1 = 2 + E1's Animal
            ((1, 1, 0, 2), [0], False, 5),  # 4 E0's Animal = E0's A0
            ((1, 0, 0, 2), [2, 4, 3, 1], False, 15),
        ],  # 5 Z0's Animal = 3*5 + 2*0
        order=[1, 3, 0, 4, 2, 5],
        query=5,
    )
    for p in range(g.n):
        g.inner[p] = "abstract" if g.params[p][0] == 1 else g.inner[p]
    g.outer[3], g.const[3], g.const[0], g.const[2] = "add", 2, 5, 3
    assert g.evaluate() == g.value
    return g


def idx(mask: np.ndarray) -> set[int]:
    return set(np.flatnonzero(mask).tolist())


def test_chain_states():
    g = chain()
    expect_can = [{0}, {1, 3}, {2, 3}, {3}]
    expect_nn = [{0}, {1}, {2}, set()]
    for s in range(4):
        lab = state_labels(g, s)
        assert idx(lab["known"]) == set(g.order[:s])
        assert idx(lab["can_next"]) == expect_can[s]
        assert idx(lab["nece_next"]) == expect_nn[s]
        assert idx(lab["nece"]) == {0, 1, 2}
        assert lab["value"].tolist() == [g.value[a] if a in g.order[:s] else 23 for a in range(5)]
        assert lab["value"].dtype == np.int8 and lab["known"].dtype == bool
    with pytest.raises(ValueError):
        state_labels(g, 4)


def test_chain_dep_and_distance():
    g = chain()
    dep = dep_matrix(g)
    assert {(a, b) for a, b in zip(*np.nonzero(dep))} == {(1, 0), (2, 1), (2, 0), (3, 0), (4, 3), (4, 0)}
    assert distance_to_query(g).tolist() == [2, 1, 0, -1, -1]


def test_diamond():
    g = diamond()
    assert idx(state_labels(g, 1)["nece_next"]) == {1, 2}  # both branches ready at once
    assert idx(state_labels(g, 2)["nece_next"]) == {1}
    assert idx(state_labels(g, 3)["can_next"]) == {3}
    assert distance_to_query(g).tolist() == [2, 1, 1, 0]
    assert dep_matrix(g)[3].tolist() == [True, True, True, False]
    assert not dep_matrix(g)[1, 2] and not dep_matrix(g)[2, 1]


def test_abstract():
    g = abstract()
    assert idx(state_labels(g, 0)["can_next"]) == {0, 1, 2}  # an abstract param without operands is ready
    assert idx(state_labels(g, 1)["can_next"]) == {0, 2, 3}
    assert idx(state_labels(g, 4)["can_next"]) == {2}
    assert idx(state_labels(g, 5)["nece_next"]) == {5}
    assert distance_to_query(g).tolist() == [2, 1, 1, 1, 1, 0]
    dep = dep_matrix(g)
    assert idx(dep[5]) == {0, 1, 2, 3, 4} and idx(dep[4]) == {0} and idx(dep[3]) == {1}
    assert not dep[:, 5].any() and not dep[[0, 1, 2]].any()
    assert state_labels(g, 6)["value"].tolist() == [5, 0, 3, 2, 5, 15]


def test_all_state_labels_match_single_states():
    for g in (chain(), diamond(), abstract()):
        allst = all_state_labels(g)
        for s in range(len(g.order) + 1):
            one = state_labels(g, s)
            for key, arr in one.items():
                assert allst[key].shape == (len(g.order) + 1, g.n)
                assert np.array_equal(allst[key][s], arr), (key, s)


def test_sentence_boundaries_plain_and_retry():
    sol = " Define A's B as x; so x = 3. Define A's C as y; so y = x = 3."
    b = sentence_boundaries(sol)
    assert b == [0, sol.index(". ") + 1, len(sol)]
    assert all(sol[o:].startswith(" Define") for o in b[:-1])
    retry = " Define A's D as BACK. Define A's B as x; so x = 3. Define A's E as BACK. Define A's C as y; so y = 3."
    b = sentence_boundaries(retry)
    assert len(b) == 3 and b[0] == 0
    assert retry[b[1] :].startswith(" Define A's E as BACK") and retry[: b[1]].endswith("so x = 3.")
    assert b[2] == len(retry)
    assert [s for _, s in boundary_states(retry)] == [0, 0, 1, 1, 2]
    assert sentence_boundaries("") == [0]


def test_probe_samples_handbuilt():
    g = chain()
    for task in TASKS:
        out = probe_samples(g, random.Random(0), task, k=1000)
        n_cand = {"nece": 5, "dep": 20}.get(task, 4 * 5)
        assert len(out) == n_cand and len(set((s, p) for s, p, _ in out)) == n_cand  # all, no repeats
    assert sorted(probe_samples(g, random.Random(1), "nece", k=5)) == [(0, (a,), int(a < 3)) for a in range(5)]
    with pytest.raises(ValueError):
        probe_samples(g, random.Random(0), "bogus")
    bal = probe_samples(g, random.Random(0), "dep", k=10, balanced=True)
    assert sum(lab for _, _, lab in bal) == 5 and len(bal) == 10  # 6 positives exist, 5 taken
    bal = probe_samples(g, random.Random(0), "nece_next", k=10, balanced=True)
    assert sum(lab for _, _, lab in bal) == 3 and len(bal) == 10  # only 3 positives exist
    bal = probe_samples(g, random.Random(0), "value", k=6, balanced=True)
    assert sum(lab != 23 for _, _, lab in bal) == 3


# ------------------------------------------------------------------------------------------ generated problems
def _stand_in_draw(rng: random.Random, d: int, sizes: list[int], subcategories: int = 5, items: int = 20):
    h = rng.randrange(len(vocab.HIERARCHIES))
    start = rng.randrange(4 - d + 1)
    layers = list(vocab.HIERARCHIES[h][start : start + d])
    return h, layers, [[f"{layers[i]} Item {j}" for j in range(size)] for i, size in enumerate(sizes)]


@pytest.fixture(scope="module")
def problems():
    """200 med + 50 hard + 50 retry problems (real vocabulary when it loads, a stand-in otherwise)."""
    mp = pytest.MonkeyPatch()
    try:
        vocab.draw(random.Random(0), 3, [2, 2, 2])
    except Exception:  # vocabulary file not there (yet): invent item names
        mp.setattr(vocab, "draw", _stand_in_draw)
    cfgs = [
        (GenConfig(), range(200)),
        (GenConfig(family=family("hard")), range(50)),
        (GenConfig(retry_rate=0.3), range(50)),
    ]
    out = [generate(cfg, seed) for cfg, seeds in cfgs for seed in seeds]
    mp.undo()
    return out


def test_generated_state_invariants(problems):
    for p in problems:
        g, m = p.graph, len(p.graph.order)
        lab = all_state_labels(g)
        nece = np.zeros(g.n, dtype=bool)
        nece[g.order] = True
        assert np.array_equal(lab["known"][m], nece)
        assert not lab["known"][0].any()
        for s in range(m + 1):
            assert np.array_equal(lab["nece"][s], nece)
            known = lab["known"][s]
            assert idx(known) == set(g.order[:s])
            expect_val = np.where(known, np.asarray(g.value), 23)
            assert np.array_equal(lab["value"][s], expect_val)
            assert not (lab["can_next"][s] & known).any()
            assert np.array_equal(lab["nece_next"][s], lab["can_next"][s] & nece)
            if s < m:
                assert lab["nece_next"][s][g.order[s]]  # the param actually written next is ready
            else:
                assert not lab["nece_next"][s].any()
            for a in np.flatnonzero(lab["can_next"][s]):
                assert all(known[q] for q in g.preds[a])


def test_generated_dep_and_distance(problems):
    for p in problems:
        g = p.graph
        dep = dep_matrix(g)
        assert not dep.diagonal().any()
        assert not (dep & dep.T).any()  # acyclic
        closure = dep.astype(np.int64) @ dep.astype(np.int64) > 0
        assert not (closure & ~dep).any()  # transitive
        for a in range(g.n):
            assert idx(dep[a]) == g.ancestors(a)
        dist = distance_to_query(g)
        assert dist[g.query] == 0
        assert idx(dist == 1) == set(g.preds[g.query])
        assert idx(dist == -1) == set(range(g.n)) - set(g.order)
        assert all(dist[a] >= 1 for a in g.order if a != g.query)
        for a in g.order:  # shortest path: one step less via some successor
            if a != g.query:
                assert min(dist[x] for x in range(g.n) if a in g.preds[x] and dist[x] >= 0) == dist[a] - 1


def test_generated_boundaries(problems):
    for p in problems:
        g, sol = p.graph, p.solution
        b = sentence_boundaries(sol)
        assert len(b) == len(g.order) + 1 and b[0] == 0 and b[-1] == len(sol)
        assert b == sorted(b)
        for s, off in enumerate(b[:-1]):
            rest = [x for x in sol[off:].strip(" .").split(". ") if " BACK" not in x]
            assert rest[0].startswith(f"Define {g.name(g.order[s])} as ")
            done = [x for x in sol[:off].strip(" .").split(". ") if x and " BACK" not in x]
            assert len(done) == s


def test_generated_probe_samples(problems):
    for p in problems[::5]:
        g, m = p.graph, len(p.graph.order)
        dep, allst = dep_matrix(g), all_state_labels(g)
        for task in TASKS:
            for balanced in (False, True):
                a = probe_samples(g, random.Random(7), task, balanced=balanced)
                assert a == probe_samples(g, random.Random(7), task, balanced=balanced)
                n_cand = {"nece": g.n, "dep": g.n * (g.n - 1)}.get(task, (m + 1) * g.n)
                assert len(a) == min(10, n_cand) and len({(s, q) for s, q, _ in a}) == len(a)
                for s, params, lab in a:
                    assert all(0 <= x < g.n for x in params)
                    if task in ("nece", "dep"):
                        assert s == 0
                    else:
                        assert 0 <= s <= m
                    if task == "dep":
                        assert params[0] != params[1] and lab == int(dep[params])
                    elif task == "nece":
                        assert lab == int(params[0] in g.order)
                    else:
                        assert lab == int(allst[task][s, params[0]])
                if balanced and task != "value":
                    labels = _all_labels(g, task, dep, allst)
                    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
                    if n_neg >= 5:
                        assert sum(lab for _, _, lab in a) == min(5, n_pos)


def _all_labels(g, task, dep, allst):
    if task == "nece":
        return np.array([int(a in g.order) for a in range(g.n)])
    if task == "dep":
        return dep[~np.eye(g.n, dtype=bool)].astype(int)
    return allst[task].astype(int).ravel()


def test_stand_in_vocabulary(monkeypatch):
    monkeypatch.setattr(vocab, "draw", _stand_in_draw)
    g = generate(GenConfig(), 3).graph
    assert len(sentence_boundaries(generate(GenConfig(), 3).solution)) == len(g.order) + 1
