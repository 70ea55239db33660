"""The probe step end to end on a tiny preset (no Prefect): generate -> train -> evaluate -> probe, the
predictions/metrics tables, the frozen model, the cache, and the error-analysis rows (E7, E8)."""

from __future__ import annotations

import dataclasses
import glob
import os

import pytest
import torch

from physlm.igsm.graph import MOD
from physlm.igsm.labels import sentence_boundaries
from physlm.igsm.record import graph_of
from physlm.model import activations as act
from physlm.model import probe as P
from physlm.model.train import can_compile
from physlm.presets import resolve
from physlm.stages import evaluate, probe, train
from physlm.stages import generate as datasets
from physlm.store import storage
from physlm.store.shards import read_shards

TINY = [
    "data.train_shards=1",
    "data.problems_per_shard=30",
    "data.test_problems=8",
    "data.seen_problems=0",
    "data.processes=0",
    "train.steps=4",
    "train.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=2",
    "evaluate.limit=3",
    "evaluate.max_new_tokens=6",
    "probe.steps=5",
    "probe.batch_size=8",
    "probe.train_problems=20",
    "probe.test_problems=8",
    "probe.tasks=nece,can_next",
    "probe.layers=0",
    "probe.baselines=random_init,linear",
    "probe.device=cpu",
    "probe.compile=off",
]


@pytest.fixture
def root(root):
    torch.set_num_threads(1)
    return root


def weights(folder: str) -> dict[str, bytes]:
    return {
        f: open(f, "rb").read() for f in sorted(glob.glob(os.path.join(folder, "**", "*.safetensors"), recursive=True))
    }


def wrong_at_sentence_1(solution: str) -> str:
    """The gold solution with a wrong result in its second sentence."""
    sentences = solution.strip()[:-1].split(". ")
    head, _, result = sentences[1].rpartition(" = ")
    return " " + ". ".join(sentences[:1] + [f"{head} = {(int(result) + 1) % MOD}"] + sentences[2:]) + "."


def plant_wrong_generation(p) -> tuple[str, int]:
    """Rewrite one greedy test_id generation as a wrong solution (the untrained model rarely reaches
    [answer]), so that E8 has a probe point; returns (problem id, first wrong parameter index)."""
    import pyarrow as pa

    from physlm.model.scoring import score
    from physlm.tables import GENERATIONS

    epath = evaluate.evaluate_step(p).path()
    gens = storage.read_parquet(storage.join(epath, "generations.parquet")).to_pylist()
    rows = {r["id"]: r for r in read_shards(datasets.dataset_step(p, "test_id").path()).to_pylist()}
    i = next(i for i, g in enumerate(gens) if g["test_set"] == "test_id" and len(rows[g["problem_id"]]["order"]) >= 2)
    row = rows[gens[i]["problem_id"]]
    bad = wrong_at_sentence_1(row["solution"])
    s = score(graph_of(row), bad, " 3", True)
    gens[i].update(output=bad + "<|answer|> 3<|endoftext|>", **{k: s[k] for k in SCORED})
    assert not gens[i]["correct"] and gens[i]["first_wrong_param"] == graph_of(row).name(row["order"][1])
    storage.write_parquet(pa.Table.from_pylist(gens, schema=GENERATIONS), storage.join(epath, "generations.parquet"))
    return row["id"], row["order"][1]


def plant_unnecessary_generation(p) -> str:
    """Rewrite one greedy test_reask_seen generation as the gold solution with an unnecessary first step (a
    leaf outside the query's ancestors), fully correct: a solution E7 reads (the tiny test model writes
    none); returns the problem id."""
    import random

    import pyarrow as pa

    from physlm.igsm.solution import render
    from physlm.model.scoring import score
    from physlm.tables import GENERATIONS

    epath = evaluate.evaluate_step(p).path()
    gens = storage.read_parquet(storage.join(epath, "generations.parquet")).to_pylist()
    rows = {r["id"]: r for r in read_shards(datasets.dataset_step(p, "test_reask_seen").path()).to_pylist()}
    for gen in gens:
        if gen["test_set"] != "test_reask_seen" or gen["decoding"] != "greedy":
            continue
        g = graph_of(rows[gen["problem_id"]])
        need = g.ancestors(g.query) | {g.query}
        leaves = [u for u in range(g.n) if u not in need and not g.preds[u]]
        if leaves:
            break
    else:
        raise AssertionError("no re-ask problem with an unnecessary leaf")
    solution = render(g, random.Random(0), [leaves[0], *g.order])
    s = score(graph_of(rows[gen["problem_id"]]), solution, f" {g.value[g.query]}", True)
    assert s["correct"] and s["n_unnecessary"] == 1
    gen.update(output=f"{solution}<|answer|> {g.value[g.query]}<|endoftext|>", **{k: s[k] for k in SCORED})
    storage.write_parquet(pa.Table.from_pylist(gens, schema=GENERATIONS), storage.join(epath, "generations.parquet"))
    return gen["problem_id"]


SCORED = ("correct", "answer_correct", "n_unnecessary", "unnecessary", "first_wrong_param", "error", "errors")


def test_probe_stage_end_to_end(root):
    p = resolve("tiny", TINY)
    for step in datasets.plan(p):
        datasets.run(step)
    tpath = train.run(train.train_step(p))
    evaluate.run(evaluate.evaluate_step(p))
    planted, planted_a = plant_wrong_generation(p)
    planted_e7 = plant_unnecessary_generation(p)
    before = weights(tpath)
    assert before

    step = probe.probe_step(p)
    path = probe.run(step)
    assert step.done() and path == step.path()
    assert weights(tpath) == before  # the frozen model was never written

    preds = storage.read_parquet(storage.join(path, "probe_predictions.parquet")).to_pylist()
    metrics = storage.read_parquet(storage.join(path, "probe_metrics.parquet")).to_pylist()
    test = [r for r in preds if r["source"] == "probe_test"]
    assert p.probe.test_sets == ("test_id", "test_seen")  # every probe scored on both
    for task in ("nece", "can_next"):
        for table in (test, metrics):
            for test_set in p.probe.test_sets:
                got = {r["baseline"] for r in table if (r["task"], r["layer"], r["test_set"]) == (task, -1, test_set)}
                assert got == {"vprobe", "random_init", "linear"}, (task, test_set, got)
    assert any(r["task"] == "nece" and r["layer"] == 0 and r["baseline"] == "vprobe" for r in test)
    assert any(m["task"] == "nece" and m["layer"] == 0 and m["slice"] == "all" for m in metrics)
    # each test set's rows are its own problems' examples, the metrics counted on them
    x = probe.load_inputs(step)
    for test_set, rows in x.test_rows.items():
        ids = {r["id"] for r in rows}
        mine = [
            r
            for r in test
            if r["test_set"] == test_set and (r["task"], r["baseline"], r["layer"]) == ("nece", "vprobe", -1)
        ]
        _, built = P.probe_examples(x.tok, x.train_rows, {test_set: rows}, step.config, "nece")
        assert [r["problem_id"] for r in mine] == [e.problem_id for e in built[test_set]] and {
            r["problem_id"] for r in mine
        } <= ids
        m = next(
            m
            for m in metrics
            if (m["test_set"], m["task"], m["baseline"], m["layer"], m["slice"])
            == (test_set, "nece", "vprobe", -1, "all")
        )
        assert m["n"] == len(mine) > 0
    assert {r["split"] for r in x.test_rows["test_seen"]} == {"train"} and {
        r["split"] for r in x.test_rows["test_id"]
    } == {"test"}
    md = storage.read_bytes(storage.join(path, "probe_metrics.md")).decode()
    assert "| test_id | nece | -1 | vprobe |" in md and "| test_seen | nece | -1 | vprobe |" in md and "majority" in md
    info = step.read_info()
    assert info["config"]["random_init_seed"] == p.probe.random_init_seed

    # E7: every G_d parameter of each re-ask problem whose greedy generation is correct with unnecessary steps
    gens = storage.read_parquet(storage.join(evaluate.evaluate_step(p).path(), "generations.parquet")).to_pylist()
    reask = {
        r["id"]: r
        for name in ("test_reask", "test_reask_seen")
        for r in read_shards(datasets.dataset_step(p, name).path()).to_pylist()
    }
    ids = {
        g["problem_id"]
        for g in gens
        if "reask" in g["test_set"] and g["decoding"] == "greedy" and g["correct"] and g["n_unnecessary"]
    }
    e7 = [r for r in preds if r["source"] == "reask_all_params"]
    assert planted_e7 in ids and len(e7) == sum(graph_of(reask[i]).n for i in ids)
    assert {r["problem_id"] for r in e7} == ids
    assert all(r["task"] == "nece" and r["baseline"] == "vprobe" and r["layer"] == -1 for r in e7)
    sets = {(g["test_set"], g["problem_id"]) for g in gens if g["problem_id"] in ids}
    assert {(r["test_set"], r["problem_id"]) for r in e7} <= sets  # each row names its problem's re-ask set
    unnecessary = next(g["unnecessary"] for g in gens if g["problem_id"] == planted_e7)
    mine = {r["param_a"]: r["label"] for r in e7 if r["problem_id"] == planted_e7}
    assert [mine[a] for a in unnecessary] == [0]  # the unnecessary leaf is probed, labelled not necessary
    assert {r["test_set"] for r in e7 if r["problem_id"] == planted_e7} == {"test_reask_seen"}
    # E8: rows exactly when a wrong greedy generation names a first wrong parameter
    e8 = [r for r in preds if r["source"] == "first_wrong"]
    wrong = [
        g
        for g in gens
        if g["test_set"] in ("test_id", "test_reask")
        and g["decoding"] == "greedy"
        and not g["correct"]
        and g["first_wrong_param"]
    ]
    assert wrong and len(e8) <= len(wrong) and all(r["task"] == "can_next" for r in e8)
    mine = [r for r in e8 if r["problem_id"] == planted]
    assert len(mine) == 1 and mine[0]["state"] == 1 and mine[0]["label"] == 1 and mine[0]["test_set"] == "test_id"
    assert mine[0]["param_a"] == next(g["first_wrong_param"] for g in wrong if g["problem_id"] == planted)

    stamp = os.stat(os.path.join(path, "step.json")).st_mtime_ns
    assert probe.run(step) == path  # cache hit
    assert os.stat(os.path.join(path, "step.json")).st_mtime_ns == stamp

    # The probes in a pool of spawned processes give exactly what they give in this process.
    x = probe.load_inputs(step)
    got = {n: probe.fit(dataclasses.replace(step.config, processes=n), x) for n in (0, 2)}
    assert got[0][0] == got[2][0] and got[0][1] == got[2][1]  # prediction and metrics rows, in order
    assert got[0][0] == [r for r in preds if r["source"] == "probe_test"]  # as the step wrote them
    for task, vp in got[0][2].items():
        assert all(torch.equal(v, got[2][2][task].trainable()[k]) for k, v in vp.trainable().items())

    # Compiled blocks (probe.compile=auto) give the same probes up to float rounding.
    if not can_compile(torch.device("cpu")):
        pytest.skip("no C++ compiler: torch.compile cannot run here")
    fused = probe.fit(dataclasses.replace(step.config, processes=0, compile="auto"), x)[0]
    assert [r["problem_id"] for r in fused] == [r["problem_id"] for r in got[0][0]]
    assert [r["probability"] for r in fused] == pytest.approx([r["probability"] for r in got[0][0]], abs=1e-3)
    assert getattr(x.model.base_model, act.COMPILED)  # marked: its V-probes' steps ran compiled


def test_first_wrong_probe_point(root):
    p = resolve("tiny", TINY[:4])
    step = datasets.dataset_step(p, "test_id")
    datasets.run(step)
    rows = [r for r in read_shards(step.path()).to_pylist() if len(r["order"]) >= 3]
    assert rows
    row = rows[0]
    g = graph_of(row)
    solution = row["solution"]
    sentences = solution.strip()[:-1].split(". ")
    # a wrong result in sentence 1: the probe point is the gold prefix after sentence 0
    state, prefix, a, labels = probe.first_wrong_probe(row, wrong_at_sentence_1(solution))
    assert (state, a) == (1, row["order"][1]) and prefix == solution[: sentence_boundaries(solution)[1]]
    assert labels == {"can_next": 1, "nece_next": 1}
    # sentence 0 skipped: the first sentence defines order[1] with nothing known
    skipped = " " + ". ".join(sentences[1:]) + "."
    hit = probe.first_wrong_probe(row, skipped)
    a1 = row["order"][1]
    if g.preds[a1]:  # it uses an operand (order[0] or other) that is not defined yet
        state, prefix, a, labels = hit
        assert (state, prefix, a) == (0, "", a1) and labels == {"can_next": 0, "nece_next": 0}
    # a correct solution has no probe point; the generated text's solution part is split at [answer]
    assert probe.first_wrong_probe(row, solution) is None
