"""Canned queries, one per paper figure (E2-E10 of spec D), over the warehouse views; their markdown form.

Each query is a file ``physlm/sql/queries/<name>.sql`` whose header comment says which figure it reproduces,
what the paper found and what the columns are (:func:`describe` returns it). ``physlm.config.QUERIES`` lists
them in figure order. ``run_query(name)`` runs one over every finished step under ``PHYSLM_ROOT`` and returns an
Arrow table (``physlm sql --query NAME``); ``run_queries`` runs several on one warehouse snapshot. Wilson
intervals come from the warehouse's ``wilson_low`` / ``wilson_high`` macros (physlm/sql/views/macros.sql),
the SQL twin of ``physlm.model.scoring.wilson``.
"""

from __future__ import annotations

from importlib import resources

import pyarrow as pa

from physlm.config import EXTRA_QUERIES, QUERIES
from physlm.sql import warehouse

TITLES = {
    "accuracy_by_op": "E2 (Fig. 3): fully-correct accuracy by test set and op, with Wilson 95% intervals",
    "unnecessary": "E3 (Fig. 4): unnecessary parameters per fully-correct solution",
    "probe_accuracy": "E4 (Fig. 7a): each V-probe's accuracy and MCC beside its baselines",
    "probe_unnecessary": "E5 (Fig. 7b): dep and can_next probes on parameters the solution does not need",
    "probe_by_label": "E6 (Fig. 12): dep and nece_next probe accuracy split by the true label",
    "error_unnecessary_plan": "E7 (Fig. 8a): the nece probe on the unnecessary steps of correct re-ask solutions",
    "error_not_ready": "E8 (Fig. 8b): can_next / nece_next probes just before the first wrong step",
    "depth_width": "E9 (Fig. 9): the best accuracy of each depth x width cell of a sweep",
    "layer_distance": "E10 (Figs. 10, 14): nece probe accuracy by layer and distance to the query",
    "training_curves": "the training loss of every train step by checkpoint, with accuracy where evaluated",
}
"""One line per canned query, for listings (``physlm sql --list``); the .sql header says the rest."""
assert set(TITLES) == set(QUERIES + EXTRA_QUERIES)


class UnknownQuery(warehouse.QueryError):
    """A canned query name that has no .sql file; the message lists the known ones."""


# ---------------------------------------------------------------------------------------------------------
# Canned queries


def query_sql(name: str) -> str:
    """The SQL text of canned query ``name``."""
    if name not in QUERIES + EXTRA_QUERIES:
        raise UnknownQuery(f"unknown query {name!r}; known: {', '.join(QUERIES + EXTRA_QUERIES)}")
    return resources.files("physlm.sql").joinpath(f"queries/{name}.sql").read_text()


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


def run_queries(
    names: tuple[str, ...] = QUERIES, root: str | None = None, prefer_probes: tuple[str, ...] = ()
) -> dict[str, pa.Table]:
    """Run several canned queries on ONE warehouse snapshot (one connection: one listing of the root); the probe
    steps in ``prefer_probes`` (hashes) count as the newest of their checkpoints."""
    for name in names:
        query_sql(name)  # unknown names fail before the root is listed
    con = warehouse.connect(root, prefer_probes)
    try:
        return {name: _run(con, name) for name in names}
    finally:
        con.close()


def run_query(name: str, root: str | None = None) -> pa.Table:
    """Run canned query ``name`` over every finished step under ``root`` (default ``PHYSLM_ROOT``)."""
    return run_queries((name,), root)[name]


# ---------------------------------------------------------------------------------------------------------
# Markdown


def cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if v == v else "–"  # NaN
    if isinstance(v, (list, tuple)):
        return ", ".join(cell(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: pa.Table, title: str | None = None, max_rows: int = 200) -> str:
    """A markdown table (floats to 3 decimals); "no data yet" when empty; at most ``max_rows`` rows."""
    out = [f"## {title}\n"] if title else []
    if table.num_rows == 0:
        return "\n".join(out + ["_no data yet_", ""])
    cols = table.column_names
    out += ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in table.slice(0, max_rows).to_pylist():
        out.append("| " + " | ".join(cell(row[c]) for c in cols) + " |")
    if table.num_rows > max_rows:
        out.append(f"\n_{table.num_rows - max_rows} more rows in the Parquet file_")
    return "\n".join(out) + "\n"


def markdown_for(name: str, table: pa.Table) -> str:
    """Title (the query's first header line), the header as a quote, then the table."""
    head = describe(name).splitlines()
    quote = "\n".join("> " + line for line in head[1:])
    return f"# {head[0]}\n\n{quote}\n\n" + to_markdown(table)
