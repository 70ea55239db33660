"""The Prefect layer on a temporary API: generate twice (second all cached), dry run, `physlm run` as one flow
run with one task run per step, the generate flow on S3 (moto) queried with `physlm sql`, and the CLI running
a flow."""

import os
import subprocess
import sys

from fstree import mtimes
from prefect_runs import flow_runs, task_runs

from flows.pipeline import generate, reproduce
from physlm import plan
from physlm.presets import resolve
from physlm.store import storage

SMALL = [
    "data.train_shards=2",
    "data.problems_per_shard=20",
    "data.test_problems=10",
    "data.seen_problems=0",
    "data.processes=0",
    "train.steps=2",
    "train.compile=off",
    "probe.compile=off",
    "train.batch_size=2",
    "train.ckpt_every=1",
    "evaluate.limit=2",
    "evaluate.max_new_tokens=4",
    "probe.steps=2",
    "probe.batch_size=4",
    "probe.train_problems=6",
    "probe.test_problems=4",
    "probe.tasks=nece",
    "probe.device=cpu",
]


def test_generate_flow_twice_second_all_cached(prefect_harness, root):
    first = generate(preset="tiny", overrides=SMALL, return_state=True)
    paths = first.result()
    runs = task_runs(first)
    assert runs["generate-train-00001"] == "Completed" and runs["generate-train"] == "Completed"
    assert len(runs) == 2 + 7 + 8  # shards of train + one shard per test set + one step task per dataset
    before = mtimes(root)

    second = generate(preset="tiny", overrides=SMALL, return_state=True)
    assert second.result() == paths
    datasets = resolve("tiny", SMALL).data.datasets()
    assert set(task_runs(second)) == {f"generate-{d}" for d in datasets}  # no shard tasks, one step task each
    third = generate(preset="tiny", overrides=SMALL, return_state=True)
    assert set(task_runs(third).values()) == {"Cached"}  # the Prefect UI tells the truth, too
    assert mtimes(root) == before


def test_dry_run_lists_steps_and_writes_nothing(prefect_harness, root):
    state = generate(preset="tiny", overrides=SMALL, dry_run=True, return_state=True)
    assert state.result() == {} and task_runs(state) == {} and not os.path.exists(root)
    rows = plan.rows(plan.steps(resolve("tiny", SMALL), "generate"))
    assert [r["status"] for r in rows] == ["will-run"] * 8


def test_force_regenerates(prefect_harness, root):
    paths = generate(preset="tiny", overrides=SMALL)
    test_id = next(p for p in paths.values() if open(os.path.join(p, "step.json")).read().count('"test_id"'))
    info = os.stat(os.path.join(test_id, "step.json")).st_mtime_ns
    state = generate(preset="tiny", overrides=SMALL, force=True, return_state=True)
    assert state.result() == paths and "generate-test_id-00000" in task_runs(state)
    assert os.stat(os.path.join(test_id, "step.json")).st_mtime_ns != info


def test_reproduce_is_one_flow_run_with_one_task_per_step_then_all_cached(prefect_harness, root):
    state = reproduce(preset="tiny", overrides=SMALL, return_state=True)
    paths = state.result()
    assert paths.pop("report") == os.path.join(root, "report", "index.html")
    steps = plan.steps(resolve("tiny", SMALL))
    assert sorted(paths) == sorted(step.id for _, step in steps)
    assert all(storage.exists(os.path.join(p, "_SUCCESS")) for p in paths.values())
    # The Prefect UI shows the pipeline: one flow run, no subflow, each step's task exactly once.
    assert flow_runs(state) == ["reproduce"]
    runs = task_runs(state)
    step_tasks = {name: n for name, n in runs.items() if not name.split("-")[-1].isdigit()}  # shards apart
    expected = [f"generate-{s.config.dataset}" if stage == "generate" else stage for stage, s in steps]
    assert sorted(step_tasks) == sorted(expected + ["report"]) and len(runs) == len(expected) + 1 + 2 + 7
    page = open(os.path.join(root, "report", "index.html")).read()  # the report is the last stage
    assert "physlm report" in page and page.count("<section") >= 9
    from physlm.store.steps import read_info

    assert all(read_info(p)["made_by"] == {"preset": "tiny", "overrides": SMALL} for p in paths.values())
    before = mtimes(root)
    again = reproduce(preset="tiny", overrides=SMALL, return_state=True)
    assert {k: v for k, v in again.result().items() if k != "report"} == paths
    assert set(task_runs(again).values()) <= {"Cached", "Completed"} and mtimes(root) == before


def test_generate_flow_on_s3_then_sql(prefect_harness, s3_root):
    paths = generate(preset="tiny", overrides=SMALL)
    assert len(paths) == 8 and all(p.startswith(s3_root) for p in paths.values())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows",
            "sql",
            "select family, split, count(*) as n from problems group by all order by all",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ['"tiny","test",50', '"tiny","train",60']  # train, test_seen, test_reask_seen


def test_cli_runs_the_flow_and_rejects_bad_input(prefect_harness, root):
    env = {**os.environ, "PREFECT_API_URL": prefect_harness}
    cli = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "flows", *a],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    sets = [x for kv in SMALL for x in ("--set", kv)]
    out = cli("generate", "--preset", "tiny", *sets)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(storage.listdir(os.path.join(root, "generate"))) == 8
    out = cli("run", *sets, "--dry-run")
    p = resolve("tiny", SMALL)
    assert out.returncode == 0 and all(step.id in out.stdout + out.stderr for _, step in plan.steps(p))
    for args, message in [
        (["generate", "--preset", "nope"], "unknown preset 'nope'"),
        (["run", "--set", "data.trian_shards=2"], "did you mean data.train_shards"),
        (["sweep", "--preset", "grid-tiny", "--set", "data.train_shards=x"], "expected an int"),
    ]:
        bad = cli(*args)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
