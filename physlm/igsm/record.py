"""The problem record: one Parquet row per problem, with an explicit Arrow schema.

A row carries the texts, the answer, op/ip/hash/split and the *whole graph* in typed list columns
(``param_*`` are parallel lists over the parameters of G_d; ``param_preds`` holds operand indices), so any
solution can be checked and every probe label computed from the row alone (``graph_of(row)``), without
re-running the generator. DuckDB reads the columns directly: e.g. ``len(param_kind)`` is the size of G_d,
``list_count(order)`` the number of solution sentences.
"""

from __future__ import annotations

import pyarrow as pa

from physlm.igsm.generate import Problem
from physlm.igsm.graph import Graph

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),  # e.g. "train", "test_op20", "test_reask"
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("family", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # "train" | "test" by template hash
        pa.field("reask", pa.bool_(), nullable=False),
        pa.field("op", pa.int16(), nullable=False),
        pa.field("base_op", pa.int16()),  # op of the original problem of a re-ask
        pa.field("ip", pa.int16(), nullable=False),
        pa.field("depth", pa.int8(), nullable=False),
        pa.field("template_hash", pa.int8(), nullable=False),
        pa.field("problem", pa.string(), nullable=False),  # the text the model reads (pq or qp)
        pa.field("question", pa.string(), nullable=False),
        pa.field("solution", pa.string(), nullable=False),
        pa.field("answer", pa.int8(), nullable=False),
        pa.field("layers", pa.list_(pa.string()), nullable=False),
        pa.field("items", pa.list_(pa.list_(pa.string())), nullable=False),
        pa.field("param_kind", pa.list_(pa.int8()), nullable=False),  # 0 instance, 1 abstract
        pa.field("param_i", pa.list_(pa.int8()), nullable=False),
        pa.field("param_j", pa.list_(pa.int8()), nullable=False),
        pa.field("param_k", pa.list_(pa.int8()), nullable=False),
        pa.field("param_name", pa.list_(pa.string()), nullable=False),
        pa.field("param_preds", pa.list_(pa.list_(pa.int16())), nullable=False),
        pa.field("param_rng", pa.list_(pa.bool_()), nullable=False),
        pa.field("param_inner", pa.list_(pa.string()), nullable=False),
        pa.field("param_outer", pa.list_(pa.string()), nullable=False),
        pa.field("param_const", pa.list_(pa.int8()), nullable=False),
        pa.field("param_value", pa.list_(pa.int8()), nullable=False),
        pa.field("query", pa.int16(), nullable=False),
        pa.field("order", pa.list_(pa.int16()), nullable=False),  # solution order (necessary params)
        pa.field("sentences", pa.list_(pa.int16()), nullable=False),  # problem-text order (instance params)
    ]
)
COLUMNS = SCHEMA.names


def row(problem: Problem, id: str, dataset: str, train_bins: int = 17) -> dict:
    """The record of one problem as a dict of plain Python values, keyed by SCHEMA's names."""
    g = problem.graph
    return {
        "id": id,
        "dataset": dataset,
        "seed": problem.seed,
        "family": problem.family,
        "format": problem.format,
        "split": problem.split(train_bins),
        "reask": problem.reask,
        "op": problem.op,
        "base_op": problem.base_op,
        "ip": g.ip,
        "depth": g.d,
        "template_hash": problem.template_hash,
        "problem": problem.problem,
        "question": problem.question,
        "solution": problem.solution,
        "answer": problem.answer,
        "layers": g.layers,
        "items": g.items,
        "param_kind": [p[0] for p in g.params],
        "param_i": [p[1] for p in g.params],
        "param_j": [p[2] for p in g.params],
        "param_k": [p[3] for p in g.params],
        "param_name": [g.name(x) for x in range(g.n)],
        "param_preds": g.preds,
        "param_rng": g.rng,
        "param_inner": g.inner,
        "param_outer": g.outer,
        "param_const": g.const,
        "param_value": g.value,
        "query": g.query,
        "order": g.order,
        "sentences": g.sentences,
    }


def table(rows: list[dict]) -> pa.Table:
    """Rows -> an Arrow table with exactly SCHEMA (column-wise build: fast and type-checked)."""
    cols = {name: [r[name] for r in rows] for name in COLUMNS}
    return pa.table({f.name: pa.array(cols[f.name], type=f.type) for f in SCHEMA}, schema=SCHEMA)


def graph_of(r: dict) -> Graph:
    """Rebuild the Graph of a record row (a dict as from ``Table.to_pylist()``)."""
    return Graph(
        layers=list(r["layers"]),
        items=[list(x) for x in r["items"]],
        params=[
            (int(a), int(b), int(c), int(d))
            for a, b, c, d in zip(r["param_kind"], r["param_i"], r["param_j"], r["param_k"])
        ],
        preds=[list(p) for p in r["param_preds"]],
        rng=list(r["param_rng"]),
        inner=list(r["param_inner"]),
        outer=list(r["param_outer"]),
        const=list(r["param_const"]),
        value=list(r["param_value"]),
        query=int(r["query"]),
        order=list(r["order"]),
        sentences=list(r["sentences"]),
    )
