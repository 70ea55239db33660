"""Shared fixtures: a fresh local root per test, the word-level tokenizer, a moto S3 server for the session, and
a fresh `s3://` root per test."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh local PHYSLM_ROOT (``{tmp_path}/root``, not created yet); returns it as ``storage.root()`` sees it."""
    from physlm.store import storage

    monkeypatch.setenv("PHYSLM_ROOT", str(tmp_path / "root"))
    return storage.root()


@pytest.fixture(scope="session")
def tok():
    """The word-level tokenizer (item names as whole tokens), built once: no test changes it."""
    from physlm.model.tokenizer import build_wordlevel

    return build_wordlevel()


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
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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
                pytest.fail(f"moto_server did not answer HTTP 200 on {endpoint} within 20 s (exit code {proc.poll()})")
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
    from physlm.store import storage

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


# A moto server that can be stopped and restarted on the same port WITH its state. moto_server keeps
# everything in memory, so a plain restart comes back empty; instead every request is recorded (moto's own
# recorder, MOTO_ENABLE_RECORDING) and a restarted server replays the recording into its backend through
# the WSGI app (werkzeug's test client, no network) BEFORE it opens the port: a client never sees it empty.
_MOTO_LAUNCHER = r"""
import base64, json, os, sys
port, rec = int(sys.argv[1]), sys.argv[2]
os.environ.update(MOTO_ENABLE_RECORDING="1", MOTO_RECORDER_FILEPATH=rec, MOTO_PORT=str(port))
from urllib.parse import urlsplit
from werkzeug.serving import run_simple
from werkzeug.test import Client
from moto.moto_api import recorder
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
if os.path.exists(rec):
    recorder._user_enabled = False  # the replay is not recorded again
    client = Client(app)
    with open(rec) as f:
        for line in f:
            e = json.loads(line)
            body = base64.b64decode(e["body"]) if e.get("body_encoded") else (e.get("body") or b"")
            headers = {k: v for k, v in e["headers"].items() if k.lower() != "transfer-encoding"}
            u = urlsplit(e["url"])
            client.open(u.path, query_string=u.query, method=e["method"], headers=headers, data=body)
    recorder._user_enabled = True
run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False)
"""


class RestartableMoto:
    """A moto S3 server on a fixed port: `stop()` kills it (SIGKILL, as a crash), `start()` brings it back on
    the same port with every bucket and object it had."""

    def __init__(self, port: int, recording: str):
        self.port, self.recording = port, recording
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self, timeout: float = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO_LAUNCHER, str(self.port), self.recording],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.endpoint, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not answer on {self.endpoint} (exit code {self.proc.poll()})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def restartable_moto(tmp_path):
    """A `RestartableMoto`, started; stopped at the end of the test."""
    if _moto_server_exe() is None:
        pytest.skip("moto_server is not installed (install moto[server]); S3 tests need it")
    server = RestartableMoto(free_port(), str(tmp_path / "moto-recording.jsonl"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
