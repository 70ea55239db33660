"""Query results for people: a table that fits the terminal without cutting anything, or markdown.

``text(table, width)`` draws a boxed table when every column fits side by side in ``width`` characters, and
otherwise switches to a vertical layout (one block per row, ``column  value`` per line, as psql's ``\\x``):
column names and values are always printed whole, never cut to ``GPT2…``. ``markdown(table)`` is the same
cells as a GitHub table. Both round floats for reading only (:func:`cell`: 3 decimals, so a floating-point
``3.3e-17`` reads ``0.000``); the csv and json formats of ``physlm sql`` keep full precision.
"""

from __future__ import annotations

import decimal
import math

import pyarrow as pa

NULL = "NULL"


def cell(v) -> str:
    """A value as a reader wants it: floats to 3 decimals (or 4 significant digits when huge), NULL, lists
    as ``[a, b]``, no newlines."""
    if v is None:
        return NULL
    if isinstance(v, decimal.Decimal):  # DuckDB's literal 0.5 is a DECIMAL
        v = float(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.3f}" if abs(v) < 1e9 else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(cell(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {cell(x)}" for k, x in v.items()) + "}"
    return str(v).replace("\n", " ")


def _cells(table: pa.Table) -> tuple[list[str], list[list[str]]]:
    return table.column_names, [[cell(r[c]) for c in table.column_names] for r in table.to_pylist()]


def text(table: pa.Table, width: int) -> str:
    """The boxed table if it fits ``width``, else the vertical layout; a row count line last."""
    cols, rows = _cells(table)
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    total = sum(widths) + 3 * len(cols) + 1  # "| " + " | ".join + " |"
    body = _boxed(cols, rows, widths) if total <= width else _vertical(cols, rows)
    return body + f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n"


def _boxed(cols: list[str], rows: list[list[str]], widths: list[int]) -> str:
    def line(vals) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    return "\n".join([rule, line(cols), rule, *(line(r) for r in rows), rule]) + "\n"


def _vertical(cols: list[str], rows: list[list[str]]) -> str:
    name_w = max(len(c) for c in cols) if cols else 0
    out = []
    for n, r in enumerate(rows, 1):
        out.append(f"-[ row {n} ]" + "-" * max(0, name_w - 6))
        out += [f"{c.ljust(name_w)} | {v}" for c, v in zip(cols, r)]
    return "\n".join(out) + ("\n" if out else "")


def markdown(table: pa.Table) -> str:
    """A GitHub markdown table of the same cells (pipes escaped)."""
    cols, rows = _cells(table)

    def esc(v: str) -> str:
        return v.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
