"""Content-addressed pipeline steps (marin-style): step identity, output folders, completion, provenance.

A step is a `name`, a frozen dataclass `config`, `inputs` (named paths of upstream step folders) and a
manual integer `version`. It writes only under `{root}/{name}/{hash}/`; `hash` is the first 8 hex digits
of sha256 over a canonical JSON of exactly these four things:

- `name`;
- the *semantic* config fields, recursively: all but those declared `field(metadata={"hash": False})`,
  knobs that change how a result is made, not what it is (worker processes, progress bars). A field
  declared `field(metadata=HASH_IF_SET)` enters only when it differs from its default: that is how an
  option is added to a config without moving any existing step id (a new model or family knob is absent
  from every hash made before it existed, and from every hash that leaves it at its default);
- `version`: code is not hashed (that would rerun everything on every refactor); whoever changes what a
  step outputs bumps its version, an explicit promise (marin's reasoning);
- `inputs`: a path under the root enters *relative to it* (`generate/1a2b3c4d`), so a pipeline has the
  same hashes on local disk and on `s3://`, and moving the root invalidates nothing. Others enter whole.

Canonical JSON: sorted keys, no spaces; tuples and lists alike; enums by value; floats by `repr` (as
`json` does); an int in a `float`-annotated field counts as that float (`Cfg(lr=1) == Cfg(lr=1.0)`, so
their hashes agree); sets sorted; dict keys must be str. Any other type is a `TypeError`, never a hash of
something unstable such as a repr with an address. Class names do not enter: renaming keeps hashes.

A folder is a finished step iff `_SUCCESS` exists, written last, after `step.json` (resolved config, the
exact hash payload, inputs, version, physlm version and git SHA, package versions, host, timings, size and
sha256 of every output file, and what the step function returned, e.g. row counts). Readers call
`require_done`, never trust a folder without `_SUCCESS`, and can re-check the files: `damage`/`verify` for a
whole step, `read_checked` for one file as it is read (`physlm.store.shards.read_shards` reads every shard so);
a mismatch is a `CorruptStep` naming the file, repaired by `physlm repair` (`physlm.repair`).

Writing, local disk: the step function writes into a fresh `{root}/{name}/.tmp-{hash}-XXXX/`, renamed
into place under the flock `{root}/{name}/.lock`. Concurrent writers both compute; the first to finish
wins, the other discards its work and returns the winner's path. `force` swaps a finished folder out
(rename aside, rename in, delete old). S3 has no rename: `_SUCCESS` and then the stale objects under the
final prefix are deleted, the function writes there directly, and `_SUCCESS` comes last. Concurrent
writers of one step on S3 are not coordinated (the orchestrator must not start them); step.json's
checksums let `verify` detect a mixed or truncated result.

Credentials never reach step.json: configs never hold them, and as a last guard the text is scrubbed of
the value of every secret-looking environment variable (`storage.scrub`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import time
import types
import typing
import uuid
from datetime import UTC, datetime

from physlm import __version__
from physlm.store import storage

SUCCESS = "_SUCCESS"
HASH_IF_SET = {"hash": "if_set"}
"""Field metadata: the field enters the step hash only when its value differs from its default."""
INFO = "step.json"
HASH_LEN = 8
PACKAGES = ("numpy", "pyarrow", "torch", "transformers", "prefect", "duckdb", "fsspec", "s3fs")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
log = logging.getLogger(__name__)


MADE_BY: contextvars.ContextVar[dict | None] = contextvars.ContextVar("physlm_made_by", default=None)
"""Who asked for the steps made in this context, recorded in their step.json as `made_by` (e.g. `{"preset":
"tiny", "overrides": [...]}`, set by the flows); None for library calls. Never part of a hash."""


@contextlib.contextmanager
def made_by(**who):
    """Record `who` (e.g. preset=..., overrides=...) in the step.json of every step made within the block."""
    token = MADE_BY.set(who)
    try:
        yield
    finally:
        MADE_BY.reset(token)


class StepNotDone(Exception):
    """A step folder was read that has no `_SUCCESS`: missing, still being written, or failed."""


class StepLoadError(Exception):
    """A folder whose step.json cannot be turned back into its `Step` (unknown config class, or a config that
    no longer hashes to the folder's name because the code changed what it means)."""


class CorruptStep(Exception):
    """A file of a finished step no longer matches the size and sha256 recorded in its step.json (truncated,
    altered or deleted since). The message names the file and how to repair the step."""


# ---------------------------------------------------------------------------------------------------------
# Config <-> JSON


def _jsonable(obj, semantic: bool, where: str):
    """JSON-safe, deterministic form of a config value; `semantic=True` drops `hash=False` fields."""
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value, semantic, where)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            if semantic and not f.metadata.get("hash", True):
                continue
            v = getattr(obj, f.name)
            if semantic and f.metadata.get("hash") == "if_set" and v == _default(f):
                continue
            if f.type in (float, "float") and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            out[f.name] = _jsonable(v, semantic, f"{where}.{f.name}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, semantic, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [_jsonable(v, semantic, f"{where}{{}}") for v in obj]
        return sorted(items, key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"config value {where}: dict keys must be str, got {bad[0]!r}")
        return {k: _jsonable(v, semantic, f"{where}[{k!r}]") for k, v in obj.items()}
    raise TypeError(
        f"config value {where} has type {type(obj).__name__}, which has no deterministic JSON form; "
        "use None/bool/int/float/str, enums, tuples, lists, dicts with str keys, or nested dataclasses"
    )


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise TypeError(f"config field {f.name}: HASH_IF_SET needs a default")


def config_to_dict(cfg) -> dict:
    """All fields of a (possibly nested) dataclass config as a JSON-safe dict."""
    return _jsonable(cfg, semantic=False, where=type(cfg).__name__)


def config_from_dict(cls, d: dict):
    """Rebuild a `config_to_dict` result into `cls`, restoring nested dataclasses, enums and tuples."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {unknown}")
    return cls(**{k: _from_json(hints[k], v) for k, v in d.items()})


def _from_json(tp, v):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if v is None:
        return None
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _from_json(options[0], v) if len(options) == 1 else v
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, v)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(v)
    if tp is float and isinstance(v, int):
        return float(v)
    if tp is tuple or origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], x) for x in v)
        return tuple(_from_json(a, x) for a, x in zip(args, v)) if args else tuple(v)
    if origin is list and args:
        return [_from_json(args[0], x) for x in v]
    if origin is dict and args:
        return {k: _from_json(args[1], x) for k, x in v.items()}
    return v


# ---------------------------------------------------------------------------------------------------------
# Identity


def _input_id(path: str, root: str) -> str:
    """An input path as it enters the hash: relative to the root when under it, else whole."""
    p = str(path).rstrip("/")
    if not storage.is_s3(p):
        p = os.path.normpath(os.path.abspath(p))
    return p[len(root) + 1 :] if p.startswith(root + "/") else p


def hash_payload(
    name: str, config, inputs: dict[str, str] | None = None, version: int = 1, root: str | None = None
) -> dict:
    """Exactly what `step_hash` hashes (also recorded in step.json, so any hash can be recomputed)."""
    if not _NAME.match(name):
        raise ValueError(f"step name {name!r}: use letters, digits, '_', '-', '.' (no '/')")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"step {name}: version must be a non-negative int, got {version!r}")
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"step {name}: config must be a dataclass instance, got {type(config).__name__}")
    if not config.__dataclass_params__.frozen:
        raise TypeError(f"step {name}: config class {type(config).__name__} must be @dataclass(frozen=True)")
    root = storage.root() if root is None else root
    root = root.rstrip("/") if storage.is_s3(root) else os.path.abspath(root)
    inputs = inputs or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()):
        raise TypeError(f"step {name}: inputs must map str names to str paths")
    return {
        "name": name,
        "config": _jsonable(config, semantic=True, where=type(config).__name__),
        "version": version,
        "inputs": {k: _input_id(v, root) for k, v in inputs.items()},
    }


def _digest(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LEN]


def step_hash(
    name: str, config, inputs: dict[str, str] | None = None, version: int = 1, root: str | None = None
) -> str:
    """First 8 hex digits of sha256 over the canonical JSON of `hash_payload` (see module docstring)."""
    return _digest(hash_payload(name, config, inputs, version, root))


@dataclasses.dataclass(frozen=True)
class Step:
    """One pipeline step: what it is (name, config, inputs, version) determines where it lives."""

    name: str
    config: typing.Any
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    version: int = 1

    def __post_init__(self):
        hash_payload(self.name, self.config, self.inputs, self.version)  # validate early

    @property
    def hash(self) -> str:
        return step_hash(self.name, self.config, self.inputs, self.version)

    @property
    def id(self) -> str:
        return f"{self.name}-{self.hash}"

    def path(self, root: str | None = None) -> str:
        """`{root}/{name}/{hash}`; the root defaults to `PHYSLM_ROOT`."""
        root = storage.root() if root is None else root
        return storage.join(root, self.name, step_hash(self.name, self.config, self.inputs, self.version, root))

    def done(self, root: str | None = None) -> bool:
        return _done(self.path(root))

    def read_info(self, root: str | None = None) -> dict:
        return read_info(self.path(root))


def _done(path: str) -> bool:
    return storage.exists(storage.join(path, SUCCESS))


def require_done(path: str) -> str:
    """Return `path` if it is a finished step folder, else raise `StepNotDone`."""
    if not _done(path):
        raise StepNotDone(
            f"{path} is not a finished step (no {SUCCESS}): it is missing, still being "
            "written, or its run failed; run that step before reading its output"
        )
    return path


def read_info(path: str) -> dict:
    """The parsed step.json of a finished step folder."""
    return storage.read_json(storage.join(require_done(path), INFO))


def _sha256(fs, path: str) -> str:
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            h.update(chunk)
    return h.hexdigest()


def _file_table(folder: str) -> dict:
    """`{relative name: {size, sha256}}` for every file under a folder."""
    fs, base = storage.filesystem(folder)
    found = fs.find(base, detail=True)
    return {
        p[len(base) + 1 :]: {"size": int(meta["size"]), "sha256": _sha256(fs, p)}
        for p, meta in sorted(found.items())
        if p.startswith(base + "/")
    }


def quick_damage(step_path: str) -> dict[str, str]:
    """Like :func:`damage` but sizes only (no file is read): `{file: what is wrong}` for missing files and
    files of another size than step.json records."""
    fs, base = storage.filesystem(step_path)
    bad = {}
    for rel, meta in sorted(read_info(step_path)["files"].items()):
        try:
            size = int(fs.info(f"{base}/{rel}")["size"])
        except FileNotFoundError:
            bad[rel] = "missing"
            continue
        if size != meta["size"]:
            bad[rel] = f"{size} bytes, recorded {meta['size']}"
    return bad


def damage(step_path: str) -> dict[str, str]:
    """`{file: what is wrong}` for every file listed in step.json that is missing, has another size, or whose
    sha256 differs; empty when the step is intact. Sizes are compared first, so a truncated file costs no hash."""
    files = read_info(step_path)["files"]
    fs, base = storage.filesystem(step_path)
    bad = {}
    for rel, meta in sorted(files.items()):
        path = f"{base}/{rel}"
        try:
            size = int(fs.info(path)["size"])
            if size != meta["size"]:
                bad[rel] = f"{size} bytes, recorded {meta['size']}"
            elif _sha256(fs, path) != meta["sha256"]:
                bad[rel] = f"sha256 differs from the recorded one ({size} bytes)"
        except FileNotFoundError:
            bad[rel] = "missing"
    return bad


def verify(step_path: str) -> list[str]:
    """Names of the files listed in step.json that are missing or whose sha256 no longer matches."""
    return sorted(damage(step_path))


def corrupt_message(step_path: str, rel: str, what: str) -> str:
    """The one-line error for a damaged file of a finished step, with the way to repair it."""
    return (
        f"{storage.join(step_path, rel)} is damaged ({what}): the step's output no longer matches its "
        f"step.json; repair it with `physlm repair {step_path}` (or rerun that step with --force)"
    )


def read_checked(step_path: str, rel: str, files: dict | None = None) -> bytes:
    """The bytes of file `rel` of a finished step, checked against the size and sha256 in its step.json
    (`files`: that table, if the caller has it); `CorruptStep` names a damaged or missing file."""
    files = read_info(step_path)["files"] if files is None else files
    meta = files.get(rel)
    if meta is None:
        raise CorruptStep(corrupt_message(step_path, rel, "not listed in step.json"))
    try:
        data = storage.read_bytes(storage.join(step_path, rel))
    except FileNotFoundError:
        raise CorruptStep(corrupt_message(step_path, rel, "missing")) from None
    if len(data) != meta["size"]:
        raise CorruptStep(corrupt_message(step_path, rel, f"{len(data)} bytes, recorded {meta['size']}"))
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CorruptStep(corrupt_message(step_path, rel, f"sha256 differs from the recorded one ({len(data)} bytes)"))
    return data


def in_root(path: str, root: str | None = None) -> bool:
    """Whether `path` lies under the root (default `PHYSLM_ROOT`), where every folder is a step's."""
    root = storage.root() if root is None else root
    p = str(path).rstrip("/")
    if not storage.is_s3(p):
        if storage.is_s3(root):
            return False
        p = os.path.normpath(os.path.abspath(p))
    return p.startswith(root.rstrip("/") + "/")


# ---------------------------------------------------------------------------------------------------------
# Running


@functools.lru_cache(maxsize=1)
def _git_sha() -> str:
    """HEAD of the checkout physlm runs from; `PHYSLM_GIT_SHA` where there is no .git (containers)."""
    if os.environ.get("PHYSLM_GIT_SHA"):
        return os.environ["PHYSLM_GIT_SHA"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def _package_versions() -> dict:
    """Installed versions from package metadata: nothing heavy (torch, transformers) is imported."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _json_default(obj):
    if hasattr(obj, "tolist"):  # numpy scalars and arrays in the info a step function returns
        return obj.tolist()
    raise TypeError(f"step info value of type {type(obj).__name__} is not JSON-serializable")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def _produce(step: Step, fn, out: str, root: str) -> None:
    """Call `fn(out)`, then write step.json and, last, `_SUCCESS` into `out`."""
    started = time.time()
    extra = fn(out) or {}
    ended = time.time()
    if not isinstance(extra, dict):
        raise TypeError(f"step {step.name}: the step function must return a dict or None")
    for reserved in (INFO, SUCCESS):
        if storage.exists(storage.join(out, reserved)):
            raise ValueError(f"step {step.name}: the step function wrote {reserved}, which run_step owns")
    payload = hash_payload(step.name, step.config, step.inputs, step.version, root)
    info = {
        "name": step.name,
        "hash": _digest(payload),
        "version": step.version,
        "config_class": f"{type(step.config).__module__}.{type(step.config).__qualname__}",
        "config": config_to_dict(step.config),
        "hash_payload": payload,
        "inputs": dict(step.inputs),
        "code": {"physlm": __version__, "git_sha": _git_sha()},
        "python": platform.python_version(),
        "packages": _package_versions(),
        "host": socket.gethostname(),
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "seconds": round(ended - started, 3),
        "files": _file_table(out),
        "made_by": MADE_BY.get(),
    }
    clash = sorted(set(extra) & set(info))
    if clash:
        raise ValueError(f"step {step.name}: returned info keys {clash} are reserved by step.json")
    info.update(extra)
    text = json.dumps(info, indent=2, sort_keys=True, default=_json_default) + "\n"
    safe = storage.scrub(text)
    if safe != text:
        log.warning(
            "step %s-%s: a secret from the environment appeared in step.json and was redacted", step.name, info["hash"]
        )
    storage.write_bytes(storage.join(out, INFO), safe.encode())
    storage.write_bytes(storage.join(out, SUCCESS), b"")


@contextlib.contextmanager
def _locked(lock_path: str):
    with open(lock_path, "a") as f:  # flock excludes other processes and other threads (own open file)
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive(step: Step, root: str | None = None):
    """Hold `step` exclusively for a long write whose staging is shared (training): on a local root a flock
    on `{root}/{name}/.lock-{hash}`, so a second writer waits and then finds the step done. On S3 there is
    no lock (concurrent writers of one S3 step are not coordinated)."""
    root = storage.root() if root is None else root
    if storage.is_s3(root):
        yield
        return
    folder = os.path.join(root, step.name)
    os.makedirs(folder, exist_ok=True)
    with _locked(os.path.join(folder, f".lock-{step_hash(step.name, step.config, step.inputs, step.version, root)}")):
        yield


def _run_local(step: Step, fn, final: str, force: bool, root: str) -> str:
    parent, h = os.path.split(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{h}-", dir=parent)
    try:
        _produce(step, fn, tmp, root)
        with _locked(os.path.join(parent, ".lock")):
            if not force and _done(final):
                log.info("step %s-%s: another writer finished first; keeping its output", step.name, h)
                return final
            aside = None
            if os.path.exists(final):  # a finished folder (force) or a torn one: swap it out
                aside = os.path.join(parent, f".old-{h}-{uuid.uuid4().hex[:8]}")
                os.rename(final, aside)
            try:
                os.rename(tmp, final)
            except BaseException:
                if aside:
                    os.rename(aside, final)  # put the old folder back rather than leave none
                raise
        if aside:
            shutil.rmtree(aside, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after the rename; our leftovers otherwise


def run_step(step: Step, fn, force: bool = False, root: str | None = None) -> str:
    """Run `fn(output_path) -> dict | None` for `step` unless it is already done; return the step path.

    `fn` writes its outputs under the path it is given (a temp folder on local disk) and may return extra
    JSON-safe info (row counts, ...) that goes into step.json. On failure nothing is accepted: no
    `_SUCCESS` and, on local disk, no final folder. `force=True` reruns and replaces a finished folder.
    """
    root = storage.root() if root is None else root
    final = step.path(root)
    if not force and _done(final):
        log.debug("step %s: cached at %s", step.name, final)
        return final
    log.info("step %s: running -> %s", step.name, final)
    if not storage.is_s3(final):
        return _run_local(step, fn, final, force, root)
    storage.remove(storage.join(final, SUCCESS))  # first: from here on no reader trusts the folder
    storage.remove(final, recursive=True)  # objects of a replaced or failed run must not mix with ours
    _produce(step, fn, final, root)
    return final


# ---------------------------------------------------------------------------------------------------------
# Steps written in parts: many writers (tasks, processes, machines), one finalize
#
# A step whose output is many independent files (e.g. shards) can be written by many tasks at once: each
# part is written whole (atomically, through `storage`) into the step's staging folder
# `{root}/{name}/.parts-{hash}/`, a dot-name that listings and globs never show and that has no _SUCCESS.
# `finalize_parts` then runs the step through `run_step` with a function that copies the parts into the
# output folder (hard links on local disk, server-side copies on S3), so completion, step.json (with every
# file's sha256) and _SUCCESS come exactly as for any other step, and the staging folder goes last.
# A killed run leaves only whole parts in staging; the rerun keeps them (a part is a pure function of the
# step, as the step is of its config and version) and writes only the missing ones. Concurrent writers of
# one step (local disk) share the staging folder; the first to finalize removes it, and a writer that then
# finds its part or the staging folder gone takes the finished step instead of failing.


def parts_path(step: Step, root: str | None = None) -> str:
    """The staging folder of a step written in parts: `{root}/{name}/.parts-{hash}`."""
    root = storage.root() if root is None else root
    return storage.join(root, step.name, f".parts-{step_hash(step.name, step.config, step.inputs, step.version, root)}")


def write_part(step: Step, part: str, fn, force: bool = False, root: str | None = None) -> str:
    """Write one part of `step` by calling `fn(url)` (which must write the file at `url` in one atomic
    write, e.g. `storage.write_parquet`), unless that part is staged already or the step is done; return
    the part's URL (in staging, or in the finished step folder). `force` rewrites the part."""
    if "/" in part or part.startswith(".") or part in (INFO, SUCCESS):
        raise ValueError(f"step {step.name}: bad part name {part!r}")
    final = step.path(root)
    if not force and _done(final):
        return storage.join(final, part)
    url = storage.join(parts_path(step, root), part)
    if force or not storage.exists(url):
        try:
            fn(url)
        except FileNotFoundError:  # a concurrent writer finished the step and removed the staging folder
            if not force and _done(final):
                return storage.join(final, part)
            raise
    return url


def _copy_part(src: str, dst: str) -> None:
    if storage.is_s3(src):
        fs, _ = storage.filesystem(src)
        fs.copy(src[len("s3://") :], dst[len("s3://") :])
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)  # the staged file stays until the step is done: a failed finalize loses nothing
    except OSError:
        shutil.copyfile(src, dst)


def finalize_parts(step: Step, parts: list[str], info=None, force: bool = False, root: str | None = None) -> str:
    """Finish `step` from its staged `parts` (all must be there) and return the step path. `info(out)` may
    return extra step.json entries (e.g. row counts) computed from the files in the output folder `out`.
    A finished step is returned as it is unless `force`."""
    root = storage.root() if root is None else root
    staging = parts_path(step, root)
    if not force and step.done(root):
        return step.path(root)
    missing = [p for p in parts if not storage.exists(storage.join(staging, p))]
    if missing:
        if not force and step.done(root):  # a concurrent writer finished first and cleared the staging folder
            return step.path(root)
        raise StepNotDone(
            f"step {step.name}-{step.hash}: {len(missing)} of {len(parts)} parts are not written "
            f"yet (first: {missing[0]}); write every part before finalizing"
        )

    def assemble(out: str) -> dict | None:
        for p in parts:
            _copy_part(storage.join(staging, p), storage.join(out, p))
        return info(out) if info else None

    try:
        path = run_step(step, assemble, force=force, root=root)
    except FileNotFoundError:
        if not force and step.done(root):  # a concurrent writer finished first and cleared the staging folder
            return step.path(root)
        raise
    storage.remove(staging, recursive=True)
    return path


# ---------------------------------------------------------------------------------------------------------
# A step back from its folder

LEGACY_CLASSES = {
    "physlm.datasets.GenerateConfig": "physlm.config.GenerateConfig",
    "physlm.stages.TrainStepConfig": "physlm.config.TrainStepConfig",
    "physlm.stages.EvalStepConfig": "physlm.config.EvalConfig",
    "physlm.presets.ProbeSection": "physlm.config.ProbeConfig",
    "physlm.analysis.AnalyzeConfig": "physlm.config.AnalyzeConfig",
    "physlm.sweep.SweepConfig": "physlm.config.SweepConfig",
}
"""Config classes recorded in step.json before physlm was organised by stage -> where they live now (the
JSON, and so the hash, of each is unchanged)."""


def load(path: str, root: str | None = None) -> Step:
    """The `Step` whose folder is `path`, rebuilt from its step.json (root-relative inputs re-rooted, so a
    moved root loads in place); `StepLoadError` if it no longer hashes to that folder."""
    import importlib

    root = storage.root() if root is None else root
    info = read_info(path)
    recorded = LEGACY_CLASSES.get(info["config_class"], info["config_class"])
    module, _, cls_name = recorded.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
        config = config_from_dict(cls, info["config"])
    except (ImportError, AttributeError, TypeError, ValueError) as e:
        raise StepLoadError(f"{path}: cannot rebuild config {info['config_class']} from step.json: {e}") from None
    inputs = {
        k: v if storage.is_s3(v) or v.startswith("/") else storage.join(root, v)
        for k, v in info["hash_payload"]["inputs"].items()
    }
    step = Step(info["name"], config, inputs, info["version"])
    if step.path(root) != path.rstrip("/"):
        raise StepLoadError(
            f"{path}: its step.json now hashes to {step.path(root)} (the code changed what this "
            f"config means); rerun the flow that made it with --force instead"
        )
    return step
