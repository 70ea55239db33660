"""Shared fixtures: a moto S3 server for the session, and a fresh `s3://` root per test."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_server_exe():
    beside_python = os.path.join(os.path.dirname(sys.executable), "moto_server")
    return shutil.which("moto_server") or (beside_python if os.access(beside_python, os.X_OK) else None)


@pytest.fixture(scope="session")
def moto_s3():
    """Endpoint URL of a local moto S3 server (`moto_server -H 127.0.0.1 -p <free port>`), stopped at the end."""
    exe = _moto_server_exe()
    if exe is None:
        pytest.skip("moto_server is not on PATH (install moto[server]); S3 tests need it")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(endpoint, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer HTTP 200 on {endpoint} within 20 s "
                            f"(exit code {proc.poll()})")
            time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_root(moto_s3, monkeypatch):
    """A fresh bucket on moto, the AWS variables pointing at it, and `PHYSLM_ROOT=s3://<bucket>/prefix`."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    from physlm import storage

    bucket = f"physlm-test-{uuid.uuid4().hex[:10]}"
    fs, _ = storage.filesystem(f"s3://{bucket}")
    fs.mkdir(bucket)  # no region_name in client_kwargs: see platform-notes §3
    root = f"s3://{bucket}/prefix"
    monkeypatch.setenv("PHYSLM_ROOT", root)
    return root


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API (own database) for the session; yields its API URL, for subprocesses too."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):  # cold start on 2 cores: platform-notes §8.1
        yield PREFECT_API_URL.value()
