"""Storage round trips on local disk and on S3 (moto), and the one-line StorageError contract."""

import os
import subprocess
import sys

import pyarrow as pa
import pytest
from conftest import free_port
from test_steps import Gen, write_rows

from physlm.store import steps, storage


@pytest.fixture(params=["local", "s3"])
def any_root(request, tmp_path, monkeypatch):
    """The same test body runs on a local root and on an `s3://` root."""
    if request.param == "s3":
        return request.getfixturevalue("s3_root")
    root = str(tmp_path / "root")
    monkeypatch.setenv("PHYSLM_ROOT", root)
    return root


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("PHYSLM_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert storage.root() == str(tmp_path / "physlm-data")
    monkeypatch.setenv("PHYSLM_ROOT", "rel/dir")
    assert storage.root() == str(tmp_path / "rel" / "dir")
    monkeypatch.setenv("PHYSLM_ROOT", "s3://bucket/prefix/")
    assert storage.root() == "s3://bucket/prefix"
    assert storage.is_s3(storage.root()) and not storage.is_s3(str(tmp_path))


def test_join():
    assert storage.join("s3://b/p/", "gen", "/abc/") == "s3://b/p/gen/abc"
    assert storage.join("/data", "gen", "x.parquet") == "/data/gen/x.parquet"
    assert storage.join("/", "a") == "/a"
    assert storage.join("/data") == "/data"


def test_round_trips(any_root):
    d = storage.join(any_root, "rt")
    assert not storage.exists(storage.join(d, "a.bin"))
    assert storage.listdir(d) == []

    storage.write_bytes(storage.join(d, "a.bin"), b"\x00\x01hello")
    assert storage.read_bytes(storage.join(d, "a.bin")) == b"\x00\x01hello"
    storage.write_json(storage.join(d, "sub", "b.json"), {"x": [1, 2.5, None], "y": "z"})
    assert storage.read_json(storage.join(d, "sub", "b.json")) == {"x": [1, 2.5, None], "y": "z"}

    t1 = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "text": ["a", "b", "c"]})
    t2 = pa.table({"id": pa.array([4], pa.int64()), "text": ["d"]})
    shards = [storage.join(d, "shards", f"shard_{i:05d}.parquet") for i in range(2)]
    storage.write_parquet(t1, shards[0])
    storage.write_parquet(t2, shards[1])
    assert storage.read_parquet(shards[0]).equals(t1)
    both = storage.read_parquet(storage.glob(storage.join(d, "shards", "shard_*.parquet")))
    assert both.column("id").to_pylist() == [1, 2, 3, 4]
    assert storage.read_parquet(shards, columns=["text"]).column_names == ["text"]

    # full URLs with protocol, sorted, and no temporary files left beside the outputs
    assert storage.glob(storage.join(d, "shards", "*")) == shards
    assert storage.listdir(d) == [storage.join(d, "a.bin"), storage.join(d, "shards"), storage.join(d, "sub")]
    assert storage.glob(storage.join(d, "**", "*.json")) == [storage.join(d, "sub", "b.json")]

    storage.remove(storage.join(d, "a.bin"))
    assert not storage.exists(storage.join(d, "a.bin"))
    storage.remove(storage.join(d, "a.bin"))  # missing: not an error
    storage.remove(storage.join(d, "shards"), recursive=True)
    assert storage.glob(storage.join(d, "shards", "*")) == []
    assert storage.listdir(d) == [storage.join(d, "sub")]


def test_recursive_remove_stays_inside_its_folder(any_root):
    storage.write_bytes(storage.join(any_root, "gen", "abc", "x"), b"1")
    storage.write_bytes(storage.join(any_root, "gen", "abcd", "x"), b"2")
    storage.remove(storage.join(any_root, "gen", "abc"), recursive=True)
    assert storage.read_bytes(storage.join(any_root, "gen", "abcd", "x")) == b"2"


def test_dot_names_are_hidden(tmp_path):
    # temp files, locks and in-flight step folders exist only on local disk; listings must not show them
    for name in ("g/abc/x.parquet", "g/.tmp-abc-123/x.parquet", "g/.lock", "g/abc/.x.parquet.tmp-1"):
        storage.write_bytes(str(tmp_path / name), b"")
    assert storage.listdir(str(tmp_path / "g")) == [str(tmp_path / "g" / "abc")]
    assert storage.glob(str(tmp_path / "g" / "**" / "*.parquet")) == [str(tmp_path / "g" / "abc" / "x.parquet")]
    inside = tmp_path / "g" / ".tmp-abc-123"  # asked for explicitly, a hidden folder lists normally
    assert storage.glob(str(inside / "*")) == [str(inside / "x.parquet")]


def test_local_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = str(tmp_path / "t.parquet")
    storage.write_parquet(pa.table({"a": [1]}), target)
    with pytest.raises(pa.ArrowException):  # a failing writer: the old file survives, no temp litter
        storage.write_parquet(pa.table({"a": [1]}), target, compression="no-such-codec")
    assert storage.read_parquet(target).column("a").to_pylist() == [1]
    assert os.listdir(tmp_path) == ["t.parquet"]


def test_run_step_on_s3(s3_root):
    step = steps.Step("generate", Gen())
    path = steps.run_step(step, write_rows)
    assert path == f"{s3_root}/generate/{step.hash}"
    assert storage.exists(storage.join(path, "_SUCCESS"))
    assert steps.read_info(path)["rows"] == 3
    assert steps.verify(path) == []
    assert steps.run_step(step, lambda out: pytest.fail("must not rerun")) == path

    storage.write_bytes(storage.join(path, "shard_00000.parquet"), b"truncated")
    assert steps.verify(path) == ["shard_00000.parquet"]
    calls = []
    steps.run_step(step, lambda out: calls.append(out) or write_rows(out), force=True)
    assert calls == [path] and steps.verify(path) == []


def test_s3_failing_step_is_never_accepted(s3_root):
    step = steps.Step("generate", Gen(seed=99))

    def fails(out):
        storage.write_bytes(storage.join(out, "part"), b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        steps.run_step(step, fails)
    assert not step.done()
    with pytest.raises(steps.StepNotDone):
        steps.require_done(step.path())


def test_unreachable_endpoint_is_a_storage_error_without_the_secret(monkeypatch):
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("PHYSLM_ROOT", "s3://nowhere-bucket/prefix")
    for op in (
        lambda: storage.exists("s3://nowhere-bucket/prefix/x"),
        lambda: storage.write_bytes("s3://nowhere-bucket/prefix/x", b"1"),
        lambda: steps.Step("generate", Gen()).done(),
    ):
        with pytest.raises(storage.StorageError) as err:
            op()
        msg = str(err.value)
        assert "s3://nowhere-bucket/prefix" in msg and "\n" not in msg
        assert secret not in msg and "AKIAIOSFODNN7EXAMPLE" not in msg
        assert err.value.__cause__ is None and err.value.__suppress_context__


def test_missing_credentials_is_a_storage_error(monkeypatch, moto_s3):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    monkeypatch.setenv("PHYSLM_ROOT", "s3://some-bucket/p")
    with pytest.raises(storage.StorageError, match=r"s3://some-bucket/p .*NoCredentialsError"):
        storage.read_bytes("s3://some-bucket/p/x")


def test_scrub_redacts_secret_variables_only(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    monkeypatch.setenv("MY_DB_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false-but-long-enough")  # not a secret
    text = "a hf_abcdefghijklmnop b correct-horse-battery c false-but-long-enough"
    assert storage.scrub(text) == "a <redacted> b <redacted> c false-but-long-enough"


def test_not_found_stays_file_not_found(any_root):
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join(any_root, "missing.bin"))


def test_s3_filesystem_is_cached_per_credentials(s3_root, monkeypatch):
    fs1, path = storage.filesystem(s3_root + "/x")
    assert path == s3_root[len("s3://") :] + "/x"
    assert storage.filesystem(s3_root)[0] is fs1
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "other")
    assert storage.filesystem(s3_root)[0] is not fs1
    assert "testing" not in repr(fs1)


def test_a_process_that_read_parquet_exits_cleanly(tmp_path):
    """Arrow's reader threads could still hold a Python file (or Python-owned bytes) when the interpreter
    exits: the process then aborted after its work was done (apache/arrow#34314; about one exit in three here,
    and a red CI run of `fresh_run.py --record`). Reading goes through an Arrow-owned copy: every exit is clean."""
    url = str(tmp_path / "t.parquet")
    storage.write_parquet(pa.table({"op": list(range(200)) * 5, "name": ["x" * 20] * 1000}), url)
    script = f"from physlm.store import storage\nfor _ in range(3):\n    storage.read_parquet({url!r})\n"
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True) for _ in range(15)]
    assert [(r.returncode, r.stderr) for r in runs] == [(0, "")] * 15
