"""The SQL warehouse: read-only DuckDB views over every finished step's Parquet under `PHYSLM_ROOT`.

`connect()` opens an in-memory DuckDB and defines one view per output kind; `query(sql)` runs one user
statement on it and returns a pyarrow Table. Views (physlm.tables.VIEWS; their SQL in `sql/views/*.sql`,
after the macros of `sql/views/macros.sql`):

- `problems`: every row of every finished generate step (record schema, `physlm.igsm.record`), plus a
  `step` column with the step's hash (the folder name `{root}/generate/{hash}`);
- `checkpoints`: the checkpoint registry (`physlm.tables.CHECKPOINTS`), one row per registered checkpoint;
- `generations`: every scored generation of every finished evaluate step (`physlm.tables.GENERATIONS`)
  plus `step`; `accuracy`: their accuracy tables (op = -1: all ops of a test set pooled).

Only folders with `_SUCCESS` enter, so a step being written or killed mid-way is invisible. The file list
is taken when the connection is opened (a snapshot). On `s3://` roots the s3fs filesystem of
`physlm.store.storage` is registered on the connection (`register_filesystem`): DuckDB 2's httpfs extension
cannot be installed offline, and nothing here ever runs INSTALL or LOAD.

Read-only: the views read files lazily, so DuckDB needs external (file) access and cannot simply have it
switched off. Instead every statement is classified by DuckDB's own parser (`extract_statements`) and
only SELECT-type statements (SELECT, WITH, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN of
one run; COPY, CREATE, INSERT, ATTACH, SET, PRAGMA, CALL, EXPORT ... are refused before anything runs,
so no query can write under the root (or anywhere).
"""

from __future__ import annotations

import re
from importlib import resources

import duckdb
import pyarrow as pa

from physlm.store import steps, storage
from physlm.tables import VIEWS

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryError(ValueError):
    """A statement that is not a read-only query, or one DuckDB rejects; the message is one line."""


def _finished(name: str, root: str) -> list[tuple[str, str]]:
    """`(hash, step folder)` of every finished step called `name` under the root."""
    out = []
    for folder in storage.listdir(storage.join(root, name)):
        if storage.exists(storage.join(folder, steps.SUCCESS)):
            out.append((folder.rsplit("/", 1)[1], folder))
    return out


def _ended_at(folder: str) -> str | None:
    """The `ended_at` (ISO time) of a step folder's step.json; None without a readable one."""
    try:
        info = steps.read_info(folder)
    except (OSError, ValueError):
        return None
    ended = info.get("ended_at") if isinstance(info, dict) else None
    return ended if isinstance(ended, str) else None


def _step_order(finished: list[tuple[str, str]], prefer: tuple[str, ...] = ()) -> pa.Table:
    """`(step, ended_at, step_order)` of the `finished` steps of one name: step_order ranks them by the
    `ended_at` of their step.json (ties and steps without one, e.g. written by hand, ordered by hash; those
    without one first), the hashes in `prefer` above all, so a view can tell a newer step's rows from an
    older one's."""
    # "" (no ended_at) sorts before every ISO time
    rows = sorted((h in prefer, _ended_at(folder) or "", h) for h, folder in finished)
    return pa.table(
        {
            "step": pa.array([h for _, _, h in rows], pa.string()),
            "ended_at": pa.array([e or None for _, e, _ in rows], pa.string()),
            "step_order": pa.array(range(len(rows)), pa.int64()),
        }
    )


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def _view_sql(view: str) -> str:
    return resources.files("physlm.sql").joinpath(f"views/{view}.sql").read_text()


def _files_by_step(finished: list[tuple[str, str]], pattern: str) -> list[str]:
    """The files matching `pattern` in the `finished` step folders."""
    return [url for _, folder in finished for url in storage.glob(storage.join(folder, pattern))]


def connect(root: str | None = None, prefer_probes: tuple[str, ...] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the warehouse views over `root` (default `PHYSLM_ROOT`); the probe steps
    whose hashes are in `prefer_probes` count as the newest (the analyze step's own inputs)."""
    root = storage.root() if root is None else root
    con = duckdb.connect(":memory:")
    if storage.is_s3(root):
        fs, _ = storage.filesystem(root)
        con.register_filesystem(fs)

    con.execute(_view_sql("macros"))
    finished = {name: _finished(name, root) for name in {v[1] for v in VIEWS if v[1] is not None}}
    con.register("_probe_steps", _step_order(finished["probe"], prefer_probes))
    # Each view: its file list is a literal of the view; the step hash comes from the file's folder name.
    for view, step_name, pattern, schema, _ in VIEWS:
        if step_name is None:  # not a step output: e.g. the checkpoint registry's one-file-per-row folder
            files = storage.glob(storage.join(root, pattern))
        else:
            files = _files_by_step(finished[step_name], pattern)
        if files:
            source = f"read_parquet({_sql_list(files)}, filename = true, union_by_name = true)"
        else:  # no data yet: an empty view with the right columns, so queries still bind
            con.register(f"_{view}_empty", schema.empty_table().append_column("filename", pa.array([], pa.string())))
            source = f"_{view}_empty"
        con.execute(_view_sql(view).replace("{source}", source))
    return con


def _check(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(_one_line(e)) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one statement, got {len(statements)}")
    st = statements[0]
    if st.type not in ALLOWED:
        raise QueryError(
            f"only read-only queries (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) are "
            f"allowed; got a {st.type.name} statement"
        )
    if st.type == duckdb.StatementType.EXPLAIN:  # EXPLAIN ANALYZE runs its statement: check that one too
        inner = re.sub(r"^\s*explain\s+(analyze\s+)?", "", st.query, flags=re.IGNORECASE)
        _check(con, inner)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def query(sql: str, root: str | None = None) -> pa.Table:
    """Run one read-only statement over the warehouse views; QueryError (one line) if it is refused."""
    con = connect(root)
    try:
        _check(con, sql)
        try:
            return con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise QueryError(_one_line(e)) from None
    finally:
        con.close()
