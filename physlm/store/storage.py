"""Storage: every byte physlm reads or writes goes through here, on local disk or on S3, via fsspec.

The root is `PHYSLM_ROOT`: a local folder (default `./physlm-data`, made absolute) or `s3://bucket/prefix`.
Paths are plain strings: local absolute paths, or full `s3://` URLs. No caller needs to know which.

S3 goes through s3fs, configured only from the standard AWS variables: `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL` (e.g. MinIO or moto), `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
`AWS_SESSION_TOKEN` (else botocore's default chain: profiles, instance roles), `AWS_DEFAULT_REGION`,
and botocore's own `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE` for retries. Credentials are held only inside the
s3fs object: they never enter configs, step.json, error messages or logs (`scrub` is the last guard).
A failure to reach S3 (refused endpoint, missing or rejected credentials) raises `StorageError` with a
one-line message naming the root and endpoint; "not found" stays a plain `FileNotFoundError`.

Writes are whole-object: on local disk a file is written under a temporary name in the same folder and
`os.replace`d into place, so a reader never sees half a file; on S3 a PUT is atomic by itself.

The s3fs filesystem is cached per process and per credentials. s3fs (aiobotocore) is not fork-safe:
start worker processes with the `spawn` start method; a forked child gets a fresh filesystem here, but
anything else inherited across a fork is on its own.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import threading
import uuid

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_ROOT = "./physlm-data"
_NOT_FOUND = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError)
_SECRET_NAME = re.compile(r"(^|_)(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?|(ACCESS|API|PRIVATE)_KEY)(_|$)")


class StorageError(Exception):
    """The storage backend cannot be used (unreachable endpoint, missing or rejected credentials)."""


def is_s3(url) -> bool:
    return str(url).startswith("s3://")


def root() -> str:
    """The resolved `PHYSLM_ROOT`: `s3://bucket/prefix` as given, or an absolute local path."""
    r = os.environ.get("PHYSLM_ROOT") or DEFAULT_ROOT
    if is_s3(r):
        return r.rstrip("/")
    return os.path.abspath(os.path.expanduser(r))


def join(*parts: str) -> str:
    """Join path parts with `/` (works for local paths and `s3://` URLs alike)."""
    head, rest = str(parts[0]), [p for p in (str(p).strip("/") for p in parts[1:]) if p]
    return "/".join([head.rstrip("/")] + rest) if rest else head


# ---------------------------------------------------------------------------------------------------------
# Filesystems and secrets

_s3_cache: dict[tuple, object] = {}
_s3_lock = threading.Lock()


def _s3_settings() -> dict:
    env = os.environ
    return {
        "endpoint": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        "key": env.get("AWS_ACCESS_KEY_ID"),
        "secret": env.get("AWS_SECRET_ACCESS_KEY"),
        "token": env.get("AWS_SESSION_TOKEN"),
        "region": env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION"),
    }


def _s3_filesystem():
    s = _s3_settings()
    cache_key = (os.getpid(), *s.values())  # a new process (fork) or new credentials get a new filesystem
    with _s3_lock:
        fs = _s3_cache.get(cache_key)
        if fs is None:
            import s3fs

            kw: dict = {"skip_instance_cache": True, "use_listings_cache": False}  # readers must see fresh state
            if s["endpoint"]:
                kw["endpoint_url"] = s["endpoint"]
            if s["key"] and s["secret"]:
                kw.update(key=s["key"], secret=s["secret"], token=s["token"])
            # region: botocore reads AWS_DEFAULT_REGION itself; passing region_name breaks bucket creation
            # on us-east-1 (platform-notes §3), so it is not passed.
            fs = _s3_cache[cache_key] = s3fs.S3FileSystem(**kw)
        return fs


def filesystem(url: str):
    """`(fsspec filesystem, path without protocol)` for a local path or an `s3://` URL."""
    url = str(url)
    if is_s3(url):
        return _s3_filesystem(), url[len("s3://") :]
    if url.startswith("file://"):
        url = url[len("file://") :]
    return fsspec.filesystem("file"), os.path.abspath(url)


def _secret_values(min_len: int) -> list[str]:
    vals = [v for k, v in os.environ.items() if _SECRET_NAME.search(k.upper()) and v and len(v) >= min_len]
    return sorted(set(vals), key=len, reverse=True)  # longest first, so a secret containing another goes whole


def scrub(text: str, min_len: int = 8) -> str:
    """Replace the value of every secret-looking environment variable (a name with a `SECRET`, `TOKEN`,
    `PASSWORD`, `ACCESS_KEY`, `API_KEY`, ... part) found in `text` by `<redacted>`. Values shorter than
    `min_len` are left alone, so that toy secrets like moto's `testing` do not mangle ordinary words."""
    for v in _secret_values(min_len):
        text = text.replace(v, "<redacted>")
    return text


def _s3_guard(func):
    """Turn a failure to use S3 into a one-line `StorageError`; leave 'not found' and our own bugs alone."""

    @functools.wraps(func)
    def wrapper(url, *args, **kwargs):
        try:
            return func(url, *args, **kwargs)
        except _NOT_FOUND:
            raise
        except Exception as e:
            first = url[0] if isinstance(url, (list, tuple)) and url else url
            if not is_s3(first) or not _is_storage_failure(e):
                raise
            r = root()
            where = r if str(first).startswith(r) else str(first)
            endpoint = _s3_settings()["endpoint"] or "AWS default endpoint"
            detail = " ".join(str(e).split())[:300]
            msg = f"S3 storage failed for root {where} (endpoint {endpoint}): {type(e).__name__}: {detail}"
            raise StorageError(scrub(msg, min_len=4)) from None  # `from None`: the cause is not scrubbed

    return wrapper


def _is_storage_failure(e: Exception) -> bool:
    mod = type(e).__module__
    return isinstance(e, (OSError, TimeoutError)) or mod.startswith(("botocore", "aiobotocore", "aiohttp"))


# ---------------------------------------------------------------------------------------------------------
# Files


@_s3_guard
def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


@_s3_guard
def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    return fs.cat_file(path)


def _write_local_atomic(path: str, write) -> None:
    """Call `write(fileobj)` on a temporary file beside `path`, then rename it into place."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@_s3_guard
def write_bytes(url: str, data: bytes) -> None:
    fs, path = filesystem(url)
    if is_s3(url):
        fs.pipe_file(path, bytes(data))
    else:
        _write_local_atomic(path, lambda f: f.write(data))


def read_json(url: str):
    return json.loads(read_bytes(url))


def write_json(url: str, obj) -> None:
    write_bytes(url, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _visible(url: str, paths, base: str) -> list[str]:
    """Sorted full URLs, hiding anything below `base` whose name starts with '.' (temp files, locks and
    in-flight step folders, which exist only on local disk), as a shell does."""
    keep = (p for p in paths if not any(c.startswith(".") for c in p[len(base) :].split("/")))
    return sorted(("s3://" + p if is_s3(url) else p) for p in keep)


@_s3_guard
def listdir(url: str, hidden: bool = False) -> list[str]:
    """Immediate children of a folder, sorted, dot-names hidden (unless `hidden`: staging folders of steps
    being written are dot-names). A missing folder lists as empty (on S3 a folder exists only through the
    objects under it, so that is the one rule both backends can keep)."""
    fs, path = filesystem(url)
    try:
        children = [p.rstrip("/") for p in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []
    if hidden:
        return sorted(("s3://" + p if is_s3(url) else p) for p in children)
    return _visible(url, children, path)


@_s3_guard
def tree_size(url: str) -> int:
    """Bytes of every file under a folder (0 for a missing one)."""
    fs, path = filesystem(url)
    try:
        return sum(int(m["size"]) for m in fs.find(path, detail=True).values())
    except FileNotFoundError:
        return 0


@_s3_guard
def glob(url_pattern: str) -> list[str]:
    """Paths matching an fsspec glob pattern (`*`, `**`, `?`, `[...]`), sorted, dot-names hidden."""
    fs, path = filesystem(url_pattern)
    base = re.split(r"[*?\[]", path, maxsplit=1)[0].rsplit("/", 1)[0]  # the literal folder part
    return _visible(url_pattern, fs.glob(path), base)


@_s3_guard
def remove(url: str, recursive: bool = False) -> None:
    """Delete a file (or a folder with `recursive=True`). Deleting something missing is not an error."""
    fs, path = filesystem(url)
    try:
        fs.rm(path, recursive=recursive)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------------------
# Parquet


@_s3_guard
def write_parquet(table: pa.Table, url: str, **write_options) -> None:
    """Write one Parquet file. Local: temp name + `os.replace`. S3: serialized in memory, then one PUT."""
    fs, path = filesystem(url)
    if is_s3(url):
        buf = io.BytesIO()
        pq.write_table(table, buf, **write_options)
        fs.pipe_file(path, buf.getvalue())
    else:
        _write_local_atomic(path, lambda f: pq.write_table(table, f, **write_options))


@_s3_guard
def read_parquet(url_or_list, columns: list[str] | None = None) -> pa.Table:
    """Read one Parquet file, or several (concatenated in the given order; schemas must agree)."""
    urls = [url_or_list] if isinstance(url_or_list, str) else list(url_or_list)
    if not urls:
        raise ValueError("read_parquet: no files given")
    tables = [parquet_table(read_bytes(url), columns) for url in urls]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def parquet_table(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """The table of one Parquet file's bytes. Arrow reads a copy in its own memory: handed a Python file or
    Python-owned bytes, its reader threads can still hold them when the interpreter exits, and the process then
    aborts ("terminate called without an active exception", apache/arrow#34314) after its work is done."""
    sink = pa.BufferOutputStream()
    sink.write(data)
    return pq.read_table(pa.BufferReader(sink.getvalue()), columns=columns)
