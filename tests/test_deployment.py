"""Deployments against real services: a local `prefect server`, a process work pool, `prefect deploy` from
deployments/prefect.yaml (run from the repository root, as deployments/README.md says), a worker, and one
parameterized run of the generate deployment that must complete and write its step folders. Everything
started here is stopped here, by process id (a worker needs SIGTERM twice: platform-notes §5)."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFECT = [sys.executable, "-m", "prefect"]


def stop(proc: subprocess.Popen, signals: int = 1) -> None:
    for _ in range(signals):
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"prefect server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy at {url} within {timeout} s")


def test_generate_deployment_runs_on_a_worker(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PHYSLM_"))}
    base.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    client = {**base, "PREFECT_API_URL": api}
    root = tmp_path / "root"
    logs = tmp_path / "logs"
    logs.mkdir()
    server = worker = None
    try:
        server = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"],
            env=base,
            cwd=tmp_path,
            stdout=open(logs / "server.log", "w"),
            stderr=subprocess.STDOUT,
        )
        wait_healthy(api, server)

        def prefect(*args, timeout=120):
            out = subprocess.run(
                [*PREFECT, *args], env=client, cwd=REPO, capture_output=True, text=True, timeout=timeout
            )
            assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            return out.stdout

        prefect("work-pool", "create", "cpu", "--type", "process")
        prefect("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "generate")
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", "cpu", "--name", "test-worker"],
            env={**client, "PREFECT_WORKER_QUERY_SECONDS": "1", "PHYSLM_ROOT": str(root)},
            cwd=tmp_path,
            stdout=open(logs / "worker.log", "w"),
            stderr=subprocess.STDOUT,
        )
        overrides = [
            "data.train_shards=2",
            "data.problems_per_shard=20",
            "data.test_problems=10",
            "data.seen_problems=0",
            "data.processes=0",
        ]
        out = prefect(
            "deployment",
            "run",
            "generate/generate",
            "-p",
            "preset=tiny",
            "-p",
            f"overrides={json.dumps(overrides)}",
            "--watch",
            "--watch-timeout",
            "240",
            timeout=300,
        )
        assert "Completed" in out, out[-3000:]

        done = sorted(p.name for p in (root / "generate").iterdir() if (p / "_SUCCESS").exists())
        assert len(done) == 8, done  # train, test_id, test_seen, op4-6, reask, reask_seen
    except BaseException:
        for name in ("server.log", "worker.log"):
            path = logs / name
            if path.exists():
                print(f"---- {name} (tail)\n" + path.read_text()[-4000:])
        raise
    finally:
        if worker is not None:
            stop(worker, signals=2)
        if server is not None:
            stop(server)
