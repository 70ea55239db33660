"""The fleet, for real: a `prefect server`, a `gpu` and a `cpu` process pool with two workers each (one run at a
time), an S3 root on moto, deployments from deployments/prefect.yaml, all on 127.0.0.1.

* the sweep of a 2 x 2 tiny grid (two shapes x two seeds): each cell is its own `cell` flow run, both gpu
  workers run cells, the training data is made in blocks by both cpu workers, and the sweep table and the
  shards equal those of a one-machine run; a second sweep starts no cell run;
* preemption: the process running a cell is SIGKILLed after a checkpoint; the worker marks the run Crashed,
  the sweep starts the cell again on the pool, it resumes, and its final weights equal an uninterrupted run's.

Marked `fleet` (about 4 minutes on 2 cores): `python -m pytest -q -m fleet`; `.ci/run` runs it after the
default tests. Everything started here is stopped here.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from test_deployment import PREFECT, REPO, stop, wait_healthy

from tests.conftest import free_port

pytestmark = pytest.mark.fleet

SMALL = ["grid=GPT2-1-2,GPT2-2-2", "data.train_shards=4", "data.problems_per_shard=10", "data.test_problems=4",
         "data.seen_problems=0", "data.processes=0", "data.block_shards=2", "train.steps=2", "train.compile=off",
         "train.batch_size=2",
         "train.ckpt_every=1", "train.num_threads=1", "evaluate.limit=2", "evaluate.max_new_tokens=4", "probe.steps=2",
         "probe.compile=off",
         "probe.batch_size=4", "probe.train_problems=6", "probe.test_problems=4", "probe.tasks=nece",
         "probe.device=cpu"]  # fmt: skip
LONG = [*SMALL, "grid=GPT2-1-2", "train.steps=300", "train.ckpt_every=20"]  # one cell, long enough to kill


def _sets(overrides):
    return [x for kv in overrides for x in ("--set", kv)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, moto_s3):
    tmp = tmp_path_factory.mktemp("fleet")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PHYSLM_", "AWS_"))}
    base.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                HF_HUB_OFFLINE="1")  # fmt: skip
    bucket = f"physlm-fleet-{uuid.uuid4().hex[:8]}"
    aws = {"AWS_ENDPOINT_URL": moto_s3, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    env = {**base, **aws, "PREFECT_API_URL": api, "PHYSLM_ROOT": f"s3://{bucket}/root"}
    procs = []
    logs = tmp / "logs"
    logs.mkdir()
    try:
        server = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port),
                                   "--analytics-off"], env=base, cwd=tmp, stdout=open(logs / "server.log", "w"),
                                  stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(server)
        wait_healthy(api, server)
        subprocess.run(
            [sys.executable, "-c", f"import s3fs; s3fs.S3FileSystem().mkdir('{bucket}')"], env=env, check=True
        )

        def prefect(*args):
            out = subprocess.run([*PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=180)
            assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"

        for pool in ("cpu", "gpu"):
            prefect("work-pool", "create", pool, "--type", "process")
        for name in ("cell", "generate-block"):
            prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", name)
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "OMP_NUM_THREADS": "1"}
        for pool in ("gpu", "cpu"):
            for i in (1, 2):
                cmd = [*PREFECT, "worker", "start", "--pool", pool, "--name", f"{pool}-{i}", "--limit", "1"]
                log = open(logs / f"{pool}-{i}.log", "w")
                procs.append(subprocess.Popen(cmd, env=worker_env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
        yield {"env": env, "tmp": tmp, "logs": logs}
    finally:
        for proc in reversed(procs):
            stop(proc, signals=2)


def _physlm(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "flows", *args], env=env, capture_output=True, text=True,
                          timeout=900, cwd=REPO, **kw)  # fmt: skip


def _runs(env) -> list[dict]:
    """Every flow run on the server: deployment name, run name, state, worker, infrastructure pid."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as c:
        deps = {d.id: d.name for d in c.read_deployments()}
        runs = c.read_flow_runs()
    return [{"id": str(r.id), "deployment": deps.get(r.deployment_id), "name": r.name,
             "state": r.state.type.value if r.state else None, "worker": (r.labels or {}).get("prefect.worker.name"),
             "pid": r.infrastructure_pid} for r in runs]  # fmt: skip


def _local(fleet, name):
    """A one-machine environment: Prefect's ephemeral API, a local root."""
    env = {k: v for k, v in fleet["env"].items() if k not in ("PREFECT_API_URL",)}
    return {**env, "PHYSLM_ROOT": str(fleet["tmp"] / name), "PREFECT_HOME": str(fleet["tmp"] / f"home-{name}")}


def _sweep_table(env) -> list[dict]:
    out = _physlm(["sql", "select * exclude (step) from sweep order by all", "--format", "json"], env)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(x) for x in out.stdout.splitlines()]


def _shard_hashes(env, overrides) -> dict:
    code = ("import json, sys\nfrom physlm.presets import resolve\nfrom physlm.stages import generate\n"
            "from physlm.store.steps import read_info\n"
            "s = generate.dataset_step(resolve('grid-tiny', json.loads(sys.argv[1])), 'train')\n"
            "print(json.dumps({f: m['sha256'] for f, m in read_info(s.path())['files'].items()}))\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, json.dumps(overrides)], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_sweep_cells_and_shard_blocks_run_across_the_pools(fleet):
    env = fleet["env"]
    out = _physlm(["sweep", "--preset", "grid-tiny", *_sets(SMALL), "--seed", "0", "--seed", "1"], env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = _runs(env)
    cells = [r for r in runs if r["deployment"] == "cell"]
    blocks = [r for r in runs if r["deployment"] == "generate-block"]
    assert len(cells) == 4 and {r["state"] for r in cells} == {"COMPLETED"}
    assert {r["worker"] for r in cells} == {"gpu-1", "gpu-2"}  # both gpu workers trained cells
    assert len(blocks) == 2 and {r["state"] for r in blocks} == {"COMPLETED"}
    assert {r["worker"] for r in blocks} == {"cpu-1", "cpu-2"}  # the 4 training shards in 2 blocks, both machines
    local = _local(fleet, "one-machine")
    ref = _physlm(["sweep", "--preset", "grid-tiny", *_sets(SMALL), "--seed", "0", "--seed", "1"], local)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert _sweep_table(env) == _sweep_table(local) and len(_sweep_table(env)) > 0
    assert _shard_hashes(env, SMALL) == _shard_hashes(local, SMALL)  # blocks wrote one machine's bytes
    again = _physlm(["sweep", "--preset", "grid-tiny", *_sets(SMALL), "--seed", "0", "--seed", "1"], env)
    assert again.returncode == 0 and len([r for r in _runs(env) if r["deployment"] == "cell"]) == 4  # none started


def _staged_checkpoint(env, overrides, step: int) -> bool:
    """Whether the cell's training has written checkpoint `step` to its staging folder on S3."""
    import s3fs

    from physlm.presets import resolve
    from physlm.stages import train
    from physlm.store.steps import parts_path

    root, outer = env["PHYSLM_ROOT"], os.environ.get("PHYSLM_ROOT")
    os.environ["PHYSLM_ROOT"] = root  # the step's inputs are paths under this root (its id is root-relative)
    try:
        staging = parts_path(train.train_step(resolve("grid-tiny", overrides)), root)
    finally:
        os.environ.pop("PHYSLM_ROOT") if outer is None else os.environ.__setitem__("PHYSLM_ROOT", outer)
    fs = s3fs.S3FileSystem(key="testing", secret="testing", client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]})
    return fs.exists(f"{staging[len('s3://') :]}/meta_{step:06d}.json")


def _weights(env, overrides) -> str:
    code = ("import json, sys\nfrom physlm.presets import resolve\nfrom physlm.stages import train\n"
            "from physlm.store.steps import read_info\n"
            "s = train.train_step(resolve('grid-tiny', json.loads(sys.argv[1])))\n"
            "print(read_info(s.path())['files']['model.safetensors']['sha256'])\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, json.dumps(overrides)], env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_a_killed_cell_is_started_again_and_resumes_to_the_same_weights(fleet):
    env = fleet["env"]
    cell_overrides = [*LONG, "model.shape=GPT2-1-2", "train.seed=0"]
    before = {r["id"] for r in _runs(env)}
    sweep = subprocess.Popen([sys.executable, "-m", "flows", "sweep", "--preset", "grid-tiny", *_sets(LONG), "--seed",
                              "0"], env=env, cwd=REPO, stdout=open(fleet["logs"] / "long.log", "w"),
                             stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline, killed = time.monotonic() + 600, None
        while killed is None and time.monotonic() < deadline and sweep.poll() is None:
            running = [r for r in _runs(env) if r["deployment"] == "cell" and r["id"] not in before
                       and r["state"] == "RUNNING" and r["pid"]]  # fmt: skip
            if running and _staged_checkpoint(env, cell_overrides, 40):
                killed = int(running[0]["pid"])
                os.kill(killed, signal.SIGKILL)  # the machine running the cell goes away mid-training
            time.sleep(0.2)
        assert killed, "no cell run was caught after a checkpoint and before the end of its training"
        assert sweep.wait(timeout=600) == 0, open(fleet["logs"] / "long.log").read()[-3000:]
    finally:
        if sweep.poll() is None:
            sweep.kill()
    new = [r for r in _runs(env) if r["deployment"] == "cell" and r["id"] not in before]
    assert sorted(r["state"] for r in new) == ["COMPLETED", "CRASHED"], new
    local = _local(fleet, "uninterrupted")
    ref = _physlm(["sweep", "--preset", "grid-tiny", *_sets(LONG), "--seed", "0"], local)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert _weights(env, cell_overrides) == _weights(local, cell_overrides)
