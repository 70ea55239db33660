"""The analyze stage: one canned SQL query per paper figure (E2-E10 of spec D) over the warehouse views.

Each query is a file ``physlm/queries/<name>.sql`` whose header comment says which figure it reproduces,
what the paper found and what the columns are (:func:`describe` returns it). :data:`QUERIES` lists them
in figure order. ``run_query(name)`` runs one over every finished step under ``PHYSLM_ROOT`` and returns
an Arrow table (``physlm sql --query NAME`` on the command line); ``run_analyze(folder)`` runs them all on
one warehouse snapshot and writes ``<name>.parquet`` plus ``<name>.md`` (a markdown table) for each.

The analyze step (``analyze_step``): name "analyze", config = the query names, ``ANALYZE_VERSION`` bumped
whenever a query's output changes (code, SQL included, is not hashed: see physlm/steps.py), inputs = the
evaluate / probe (/ sweep) steps it summarises, so new results make a new step. Note that the queries read
the whole warehouse, i.e. every finished step under the root at the time the step runs, not only its
inputs: a cached analyze step is a snapshot; ``physlm report`` always queries live.

The sweep table's schema lives with the sweep stage (physlm/sweep.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

from physlm import storage, warehouse
from physlm.steps import Step, run_step
from physlm.sweep import SWEEP  # the sweep table schema, re-exported for the warehouse

ANALYZE_VERSION = 1

QUERIES = ("accuracy_by_op", "unnecessary", "probe_accuracy", "probe_unnecessary", "probe_by_label",
           "error_unnecessary_plan", "error_not_ready", "depth_width", "layer_distance")
"""Canned queries in paper-figure order (E2, E3, E4, E5, E6, E7, E8, E9, E10)."""

class UnknownQuery(warehouse.QueryError):
    """A canned query name that has no .sql file; the message lists the known ones."""


# ---------------------------------------------------------------------------------------------------------
# Canned queries


def query_sql(name: str) -> str:
    """The SQL text of canned query ``name``."""
    if name not in QUERIES:
        raise UnknownQuery(f"unknown query {name!r}; known: {', '.join(QUERIES)}")
    return resources.files("physlm").joinpath(f"queries/{name}.sql").read_text()


def describe(name: str) -> str:
    """The header comment of a canned query (its leading ``--`` lines, without the dashes)."""
    lines = []
    for line in query_sql(name).splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return "\n".join(lines)


def _run(con, name: str) -> pa.Table:
    sql = query_sql(name)
    warehouse._check(con, sql)  # our own files, but the same read-only guard as any user statement
    try:
        return con.sql(sql).to_arrow_table()
    except Exception as e:  # duckdb.Error: one line, like warehouse.query
        raise warehouse.QueryError(f"{name}: {' '.join(str(e).split())}") from None


def run_queries(names: tuple[str, ...] = QUERIES, root: str | None = None) -> dict[str, pa.Table]:
    """Run several canned queries on ONE warehouse snapshot (one connection: one listing of the root)."""
    for name in names:
        query_sql(name)  # unknown names fail before the root is listed
    con = warehouse.connect(root)
    try:
        return {name: _run(con, name) for name in names}
    finally:
        con.close()


def run_query(name: str, root: str | None = None) -> pa.Table:
    """Run canned query ``name`` over every finished step under ``root`` (default ``PHYSLM_ROOT``)."""
    return run_queries((name,), root)[name]


# ---------------------------------------------------------------------------------------------------------
# Markdown


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if v == v else "–"  # NaN
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pa.Table, title: str | None = None, max_rows: int = 200) -> str:
    """A markdown table (floats to 3 decimals); "no data yet" when empty; at most ``max_rows`` rows."""
    out = [f"## {title}\n"] if title else []
    if table.num_rows == 0:
        return "\n".join(out + ["_no data yet_", ""])
    cols = table.column_names
    out += ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in table.slice(0, max_rows).to_pylist():
        out.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    if table.num_rows > max_rows:
        out.append(f"\n_{table.num_rows - max_rows} more rows in the Parquet file_")
    return "\n".join(out) + "\n"


def markdown_for(name: str, table: pa.Table) -> str:
    """Title (the query's first header line), the header as a quote, then the table."""
    head = describe(name).splitlines()
    quote = "\n".join("> " + line for line in head[1:])
    return f"# {head[0]}\n\n{quote}\n\n" + to_markdown(table)


# ---------------------------------------------------------------------------------------------------------
# The analyze step


def run_analyze(out_folder: str, root: str | None = None, names: tuple[str, ...] = QUERIES) -> dict:
    """Every canned query -> ``<name>.parquet`` + ``<name>.md`` under ``out_folder``; returns row counts.
    An empty result is written too: an empty table with the query's columns and "no data yet"."""
    tables = run_queries(names, root)
    for name, table in tables.items():
        storage.write_parquet(table, storage.join(out_folder, f"{name}.parquet"))
        storage.write_bytes(storage.join(out_folder, f"{name}.md"), markdown_for(name, table).encode())
    return {name: t.num_rows for name, t in tables.items()}


@dataclass(frozen=True)
class AnalyzeConfig:
    queries: tuple[str, ...] = QUERIES
    """Canned queries run (and files written), in figure order."""

    def __post_init__(self):
        unknown = [q for q in self.queries if q not in QUERIES]
        if unknown:
            raise ValueError(f"queries: unknown {unknown}; known: {', '.join(QUERIES)}")


def _as_path(ref: str, root: str) -> str:
    """A step id ``name-hash`` -> ``{root}/{name}/{hash}``; a path (has a "/") is kept as it is."""
    if "/" in ref:
        return ref
    name, sep, h = ref.rpartition("-")
    if not sep or not name or not h:
        raise ValueError(f"analyze input {ref!r}: expected a step id 'name-hash' or a step path")
    return storage.join(root, name, h)


def analyze_step(input_ids: dict[str, str], root: str | None = None) -> Step:
    """The analyze step over named upstream steps, e.g. ``{"evaluate": "evaluate-1a2b3c4d", "probe": ...}``
    (step ids or step paths); ids are resolved under ``root`` so the hash only sees ``evaluate/1a2b3c4d``."""
    root = storage.root() if root is None else root
    inputs = {k: _as_path(v, root) for k, v in sorted(input_ids.items())}
    return Step("analyze", AnalyzeConfig(), inputs=inputs, version=ANALYZE_VERSION)


def run_analyze_step(step: Step, force: bool = False, root: str | None = None) -> str:
    """Run the analyze step (cached by its folder); returns its path."""
    cfg: AnalyzeConfig = step.config
    return run_step(step, lambda out: {"rows": run_analyze(out, root, cfg.queries)}, force=force, root=root)
