"""The depth x width sweep: cells and the sweep table (library, no Prefect), then the sweep flow on a temporary
Prefect API: it completes and fills the table, a rerun is all cache hits, and a killed cell (its train step
folder gone) is the only thing a rerun recomputes."""

import dataclasses
import os
import shutil

import pyarrow as pa
import pytest
import torch
from fstree import mtimes
from prefect_runs import task_runs

from physlm import tables
from physlm.presets import Preset, resolve
from physlm.stages import evaluate, probe, train
from physlm.stages import generate as datasets
from physlm.stages import sweep as psweep
from physlm.store import storage

torch.set_num_threads(1)

GRID = ["grid=GPT2-1-2,GPT2-2-2"]
SMALL = [
    "data.train_shards=1",
    "data.problems_per_shard=30",
    "data.test_problems=4",
    "data.seen_problems=0",
    "data.processes=0",
    "train.steps=2",
    "train.compile=off",
    "probe.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=1",
    "evaluate.limit=2",
    "evaluate.max_new_tokens=4",
]
PROBE = "probe" in {f.name for f in dataclasses.fields(Preset)}  # the probe stage, once it exists
if PROBE:  # keep it trivial
    SMALL += ["probe.steps=2", "probe.train_problems=6", "probe.test_problems=4", "probe.tasks=nece"]
OVR = SMALL + GRID
SEEDS = (0,)
CELLS = ("GPT2-1-2-s0", "GPT2-2-2-s0")
STAGES = ("train", "evaluate", "probe") if PROBE else ("train", "evaluate")


def celltask_runs(runs: dict, cell: str) -> set[str]:
    """The states of one cell's stage tasks."""
    return {runs.get(f"{stage}-{cell}") for stage in STAGES}


def cell_steps(preset):
    steps = [train.train_step(preset), evaluate.evaluate_step(preset)]
    return steps + [probe.probe_step(preset)] if PROBE else steps


# ---------------------------------------------------------------------------------------------------------
# Library


def test_cells_are_grid_times_seeds_on_top_of_user_overrides():
    p = resolve("grid-tiny", OVR)
    assert p.grid == ("GPT2-1-2", "GPT2-2-2")
    got = psweep.cells(p, (0, 1), OVR)
    assert [name for name, _ in got] == ["GPT2-1-2-s0", "GPT2-1-2-s1", "GPT2-2-2-s0", "GPT2-2-2-s1"]
    name, ovr = got[1]
    assert ovr == [*OVR, "model.shape=GPT2-1-2", "train.seed=1"]
    cp = resolve("grid-tiny", ovr)
    assert (cp.model.shape, cp.train.seed, cp.train.steps) == ("GPT2-1-2", 1, 2)
    assert psweep.cell_preset(p, ovr[-2:]) == cp
    # one dataset for every cell; distinct train steps
    assert len({datasets.dataset_step(resolve("grid-tiny", o), "train").hash for _, o in got}) == 1
    assert len({train.train_step(resolve("grid-tiny", o)).hash for _, o in got}) == 4
    with pytest.raises(psweep.SweepError, match="no grid"):
        psweep.cells(resolve("tiny"), (0,))
    with pytest.raises(psweep.SweepError, match="distinct"):
        psweep.cells(p, (0, 0))


def test_sweep_step_identity():
    p = resolve("grid-tiny", OVR)
    paths = psweep.cell_eval_paths(p, (0, 1), OVR)
    step = psweep.sweep_step(p, (0, 1), paths)
    assert step.name == "sweep" and step.inputs == paths
    assert step.config.grid == p.grid and step.config.seeds == (0, 1)
    assert psweep.sweep_step(p, [0, 1], dict(reversed(list(paths.items())))).hash == step.hash
    other = resolve("grid-tiny", OVR + ["train.steps=3"])
    assert psweep.sweep_step(other, (0, 1), psweep.cell_eval_paths(other, (0, 1))).hash != step.hash
    with pytest.raises(psweep.SweepError, match="do not match"):
        psweep.sweep_step(p, (0,), paths)


def _acc(rows):
    keys = [
        "checkpoint_id",
        "test_set",
        "op",
        "decoding",
        "n",
        "correct",
        "accuracy",
        "ci_low",
        "ci_high",
        "answer_accuracy",
        "mean_unnecessary",
    ]
    return pa.Table.from_pylist(
        [dict(zip(keys, ["c", t, op, d, n, int(a * n), a, 0.0, 1.0, a, None])) for t, op, d, n, a in rows]
    )


def test_sweep_rows_best_of_seeds_and_decodings():
    cfg = psweep.SweepConfig(grid=("GPT2-4-2", "GPT2-2-4"), seeds=(0, 1), preset="x")
    acc = {
        "GPT2-4-2-s0": _acc(
            [
                ("test_id", -1, "greedy", 10, 0.5),
                ("test_id", -1, "beam4", 10, 0.7),
                ("test_id", 3, "greedy", 5, 1.0),
                ("test_op6", -1, "greedy", 10, 0.2),
            ]
        ),
        "GPT2-4-2-s1": _acc(
            [
                ("test_id", -1, "greedy", 10, 0.6),
                ("test_id", -1, "beam4", 10, 0.7),
                ("test_op6", -1, "greedy", 10, 0.2),
                ("test_op6", -1, "beam4", 10, 0.3),
            ]
        ),
        "GPT2-2-4-s0": _acc([("test_id", -1, "greedy", 8, 0.0), ("test_op6", -1, "greedy", 8, 0.0)]),
        "GPT2-2-4-s1": _acc([("test_id", -1, "greedy", 8, 0.0)]),
    }
    rows = psweep.sweep_rows(cfg, "x-1", acc)
    assert len(rows) == 3 + 4 + 2 + 1  # pooled rows only (op 3 dropped)
    tab = pa.Table.from_pylist(rows, schema=tables.SWEEP)  # every row fits the schema exactly
    assert tab.schema == tables.SWEEP and tab.num_rows == 10
    best = {(r["model"], r["test_set"]): (r["seed"], r["decoding"], r["accuracy"]) for r in rows if r["best"]}
    assert best == {
        ("GPT2-4-2", "test_id"): (0, "beam4", 0.7),  # tie 0.7: lowest seed wins
        ("GPT2-4-2", "test_op6"): (1, "beam4", 0.3),
        ("GPT2-2-4", "test_id"): (0, "greedy", 0.0),  # tie across seeds: seed 0
        ("GPT2-2-4", "test_op6"): (0, "greedy", 0.0),
    }
    assert [r["model"] for r in rows][:3] == ["GPT2-2-4"] * 3  # by depth first
    r = rows[0]
    assert (r["n_layer"], r["n_head"], r["width"], r["params"]) == (2, 4, 256, 2 * (12 * 256**2 + 13 * 256) + 512)
    md = psweep.markdown(rows)
    assert md.splitlines()[0] == "| model | layers | width | params | test_id | test_op6 |"
    assert "| GPT2-4-2 | 4 | 128 |" in md and "70.0% (s0, beam4, n=10)" in md
    with pytest.raises(psweep.SweepError, match="pooled"):
        psweep.sweep_rows(cfg, "x", {**acc, "GPT2-2-4-s1": _acc([("test_id", 2, "greedy", 8, 0.0)])})


def test_library_sweep_end_to_end(root):
    p = resolve("grid-tiny", OVR)
    for ds in datasets.plan(p):
        for i in range(ds.config.n_shards):
            datasets.run_part(ds, i, processes=0)
        datasets.finalize(ds)
    paths = {}
    for name, ovr in psweep.cells(p, SEEDS, OVR):
        cp = resolve("grid-tiny", ovr)
        train.run(train.train_step(cp))
        paths[name] = evaluate.run(evaluate.evaluate_step(cp))
        if PROBE:
            probe.run(probe.probe_step(cp))
    assert paths == psweep.cell_eval_paths(p, SEEDS, OVR)
    step = psweep.sweep_step(p, SEEDS, paths)
    out = psweep.run(step)
    assert out == step.path() and step.done()
    tab = storage.read_parquet(storage.join(out, "sweep.parquet"))
    assert tab.schema == tables.SWEEP
    rows = tab.to_pylist()
    test_sets = evaluate.test_sets(p)
    assert len(rows) == 2 * len(test_sets) * len(p.evaluate.decodings)
    assert {r["cell"] for r in rows} == {"GPT2-1-2-s0", "GPT2-2-2-s0"}
    assert all(r["sweep_id"] == f"grid-tiny-{step.hash}" and r["n"] == 2 for r in rows)
    # one best per (model, test set); with one seed x one decoding, every row is its own best
    assert sum(r["best"] for r in rows) == 2 * len(test_sets) and all(r["best"] for r in rows)
    md = storage.read_bytes(storage.join(out, "sweep.md")).decode()
    assert "| GPT2-1-2 | 1 | 128 |" in md and "| GPT2-2-2 | 2 | 128 |" in md
    assert step.read_info()["rows"] == len(rows)
    # the warehouse's `sweep` view reads it (physlm sql "select * from sweep")
    from physlm.sql import warehouse

    got = warehouse.query("SELECT count(*) AS n, sum(best::int) AS best, any_value(step) AS step FROM sweep")
    assert got.to_pylist() == [{"n": len(rows), "best": 2 * len(test_sets), "step": step.hash}]


# ---------------------------------------------------------------------------------------------------------
# Prefect


def test_sweep_flow_cached_rerun_and_killed_cell(prefect_harness, root):
    from flows.sweep import sweep

    dry = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), dry_run=True, return_state=True)
    p = resolve("grid-tiny", OVR)
    sstep = psweep.sweep_step(p, SEEDS, psweep.cell_eval_paths(p, SEEDS, OVR))
    assert dry.result() == sstep.path() and not os.path.exists(root)

    first = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    path = first.result()
    assert path == sstep.path() and sstep.done()
    runs = task_runs(first)
    assert all(celltask_runs(runs, cell) == {"Completed"} for cell in CELLS) and runs["sweep-table"] == "Completed"
    assert len(storage.read_parquet(storage.join(path, "sweep.parquet"))) == 2 * len(evaluate.test_sets(p))
    before = mtimes(root)

    # rerun, nothing changed: every step is a cache hit (nothing rewritten). Prefect itself reports "Cached"
    # from the run after the one that first saw the step finished (as for generate: tests/test_flows.py)
    second = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    assert second.result() == path and mtimes(root) == before
    third = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    assert third.result() == path and mtimes(root) == before
    runs = task_runs(third)
    assert all(celltask_runs(runs, cell) == {"Cached"} for cell in CELLS) and runs["sweep-table"] == "Cached"

    # "kill" one cell: its train step folder is gone, and what a killed cell never got to write (its later
    # steps, the sweep table) is missing too. The rerun redoes that cell only.
    killed = resolve("grid-tiny", psweep.cells(p, SEEDS, OVR)[1][1])
    for step in cell_steps(killed):
        shutil.rmtree(step.path())
    shutil.rmtree(sstep.path())
    kept = resolve("grid-tiny", psweep.cells(p, SEEDS, OVR)[0][1])
    kept_before = [mtimes(step.path()) for step in cell_steps(kept)]
    data_before = mtimes(os.path.join(root, "generate"))

    fourth = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    assert fourth.result() == path and sstep.done()
    runs = task_runs(fourth)
    assert celltask_runs(runs, CELLS[0]) == {"Cached"} and celltask_runs(runs, CELLS[1]) == {"Completed"}
    assert [mtimes(step.path()) for step in cell_steps(kept)] == kept_before
    assert mtimes(os.path.join(root, "generate")) == data_before
    assert all(step.done() for step in cell_steps(killed))


def test_failed_cell_fails_alone(prefect_harness, root, monkeypatch):
    """A cell whose training raises fails alone: the other cell trains and evaluates, the flow reports the
    failed cell and fails without a table; the rerun (fixed) recomputes only the failed cell."""
    from flows.sweep import SweepCellsFailed, sweep

    real = train.run

    def flaky(step, force=False):
        if step.config.model.n_layer == 2:
            raise RuntimeError("boom: killed")
        return real(step, force=force)

    monkeypatch.setattr(train, "run", flaky)
    state = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    assert state.is_failed()
    with pytest.raises(SweepCellsFailed, match="GPT2-2-2-s0"):
        state.result()
    runs = task_runs(state)
    assert runs["train-GPT2-2-2-s0"] == "Failed" and runs["evaluate-GPT2-2-2-s0"] == "NotReady"
    assert celltask_runs(runs, "GPT2-1-2-s0") == {"Completed"}
    assert "sweep-table" not in runs

    monkeypatch.setattr(train, "run", real)
    again = sweep(preset="grid-tiny", overrides=OVR, seeds=list(SEEDS), return_state=True)
    assert again.is_completed()
    runs = task_runs(again)
    assert runs["train-GPT2-2-2-s0"] == "Completed" and runs["evaluate-GPT2-2-2-s0"] == "Completed"
    assert runs["train-GPT2-1-2-s0"] in ("Completed", "Cached")  # step-cached (Prefect shows it from the next run)


def test_sweep_deployment_matches_the_flow():
    """deployments/prefect.yaml's scheduled sweep passes exactly the flow's parameters, a valid preset."""
    import inspect

    import yaml

    from flows.sweep import sweep

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, "deployments", "prefect.yaml")) as f:
        (dep,) = [d for d in yaml.safe_load(f)["deployments"] if d["name"] == "sweep"]
    assert dep["entrypoint"] == "flows/sweep.py:sweep" and dep["schedules"][0]["cron"]
    params = dep["parameters"]
    assert set(params) == set(inspect.signature(sweep.fn).parameters)
    p = resolve(params["preset"], params["overrides"])
    assert p.grid and psweep.cells(p, params["seeds"])
