"""Every Parquet table physlm writes: its explicit Arrow schema, and the names and order of the test sets.

One place for the contracts between stages and readers (DuckDB views, the report, users' SQL): a stage
writes rows with the schema named here, the warehouse reads them with it, and nothing else defines a
column. A leaf module (pyarrow only): importing it pulls in no torch, so ``physlm sql`` stays light.

| table | written by | file |
| --- | --- | --- |
| PROBLEMS | generate | ``generate/{hash}/shard_{i:05d}.parquet`` (physlm.igsm.record) |
| CHECKPOINTS | train | ``registry/checkpoints/{checkpoint_id}.parquet`` (one row a file) |
| GENERATIONS, ACCURACY | evaluate | ``evaluate/{hash}/generations.parquet``, ``accuracy.parquet`` |
| PROBE_PREDICTIONS, PROBE_METRICS | probe | ``probe/{hash}/probe_predictions.parquet``, ``probe_metrics.parquet`` |
| SWEEP | sweep | ``sweep/{hash}/sweep.parquet`` |

Test sets (spec C.3) are named ``test_id`` (unseen templates, the training op law), ``test_seen`` (fresh
problems of the training templates), ``test_op{k}`` (a forced op: max_op, then each OOD op),
``test_reask`` and ``test_reask_seen`` (re-asked problems of the training templates);
:func:`test_set_order` is their order in every table and plot.
"""

from __future__ import annotations

import re

import pyarrow as pa

from physlm.igsm.record import SCHEMA as PROBLEMS  # the problem record lives with the generator

__all__ = [
    "PROBLEMS",
    "CHECKPOINTS",
    "GENERATIONS",
    "ACCURACY",
    "PROBE_PREDICTIONS",
    "PROBE_METRICS",
    "SWEEP",
    "TRAIN",
    "TEST_ID",
    "TEST_SEEN",
    "TEST_REASK",
    "TEST_REASK_SEEN",
    "REASK_SETS",
    "test_op",
    "op_of",
    "test_set_order",
    "in_distribution",
]

# ---------------------------------------------------------------------------------------------------------
# Test sets

TRAIN, TEST_ID, TEST_SEEN, TEST_REASK = "train", "test_id", "test_seen", "test_reask"
TEST_REASK_SEEN = "test_reask_seen"
REASK_SETS = (TEST_REASK, TEST_REASK_SEEN)
_TEST_OP = re.compile(r"test_op(\d+)")


def test_op(k: int) -> str:
    """The name of the test set of op ``k`` problems."""
    return f"test_op{k}"


def op_of(test_set: str) -> int | None:
    """``k`` of ``test_op{k}``; None for the other sets."""
    m = _TEST_OP.fullmatch(test_set)
    return int(m[1]) if m else None


def in_distribution(test_set: str) -> bool:
    """``test_id`` and ``test_seen``: the training op law (any other set forces an op or re-asks)."""
    return test_set in (TEST_ID, TEST_SEEN)


def test_set_order(name: str) -> tuple:
    """Spec C.3 column order: in distribution (test_id, test_seen), then by op, then re-ask (test_reask,
    test_reask_seen)."""
    if name in REASK_SETS:
        return (2, REASK_SETS.index(name), name)
    k = op_of(name)
    return (1, k, name) if k is not None else (0, 0, name)


# ---------------------------------------------------------------------------------------------------------
# train

CHECKPOINTS = pa.schema(
    [
        ("checkpoint_id", pa.string()),
        ("model", pa.string()),  # GPT2-ℓ-h
        ("n_layer", pa.int32()),
        ("n_head", pa.int32()),
        ("width", pa.int32()),
        ("params", pa.int64()),
        ("non_embedding_params", pa.int64()),
        ("data_hash", pa.string()),  # the data (generate) step hash the run trained on
        ("train_hash", pa.string()),  # the train step hash: identical requests share it
        ("step", pa.int64()),
        ("tokens_seen", pa.int64()),
        ("loss", pa.float64()),
        ("final", pa.bool_()),  # the run's last step (cfg.steps reached)
        ("path", pa.string()),  # URL of the checkpoint's meta_{step:06d}.json
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""The checkpoint registry (physlm/store/registry.py), one row per registered checkpoint."""

LOSS_CURVE = pa.schema(
    [
        ("model", pa.string()),
        ("train_hash", pa.string()),
        ("step", pa.int64()),
        ("tokens_seen", pa.int64()),
        ("loss", pa.float64()),
    ]
)
"""``loss_curve.parquet`` of a train step whose final checkpoint was installed from a pretrained folder
(physlm/store/pretrained.py): the loss at every checkpoint of the run that made the weights (its card's
curve), which the registry does not hold: it registers the installed final checkpoint only."""

# ---------------------------------------------------------------------------------------------------------
# evaluate

GENERATIONS = pa.schema(
    [
        ("checkpoint_id", pa.string()),
        ("problem_id", pa.string()),
        ("test_set", pa.string()),
        ("op", pa.int16()),
        ("decoding", pa.string()),
        ("output", pa.string()),
        ("correct", pa.bool_()),
        ("answer_correct", pa.bool_()),
        ("n_unnecessary", pa.int16()),
        ("unnecessary", pa.list_(pa.string())),
        ("first_wrong_param", pa.string()),
        ("error", pa.string()),
        ("errors", pa.list_(pa.string())),
        ("n_tokens", pa.int32()),
        ("ended", pa.bool_()),
        ("answer", pa.string()),
        ("true_answer", pa.int8()),
    ]
)
"""One scored generation per (checkpoint, problem, decoding)."""

ACCURACY = pa.schema(
    [
        ("checkpoint_id", pa.string()),
        ("test_set", pa.string()),
        ("op", pa.int16()),
        ("decoding", pa.string()),
        ("n", pa.int32()),
        ("correct", pa.int32()),
        ("accuracy", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("answer_accuracy", pa.float64()),
        ("mean_unnecessary", pa.float64()),
    ]
)
"""Fully-correct accuracy per (checkpoint, test set, op, decoding) with a Wilson 95% interval; op -1 = all
ops of the test set pooled."""

# ---------------------------------------------------------------------------------------------------------
# probe

PROBE_SOURCES = ("probe_test", "reask_all_params", "first_wrong")
"""Values of ``probe_predictions.source``: the probes' own test examples (E4-E6, E10), the trained nece
probe on every parameter of re-ask problems (E7), the can_next/nece_next probes before a wrong step (E8)."""

PROBE_PREDICTIONS = pa.schema(
    [
        pa.field("checkpoint_id", pa.string(), nullable=False),
        pa.field("test_set", pa.string(), nullable=False),  # the problem's: test_id | test_seen | a re-ask set
        pa.field("task", pa.string(), nullable=False),
        pa.field("layer", pa.int16(), nullable=False),  # -1 = final LN output
        pa.field("baseline", pa.string(), nullable=False),  # vprobe | random_init | linear
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("state", pa.int16(), nullable=False),  # solution sentences written (0 for nece, dep)
        pa.field("param_a", pa.string(), nullable=False),  # name, as in the solution text
        pa.field("param_b", pa.string()),  # dep only
        pa.field("param_a_necessary", pa.bool_(), nullable=False),
        pa.field("distance", pa.int16(), nullable=False),  # A to the query; -1 unnecessary
        pa.field("label", pa.int8(), nullable=False),
        pa.field("prediction", pa.int8(), nullable=False),
        pa.field("probability", pa.float32(), nullable=False),  # P(class 1) binary; P(prediction) for value
        pa.field("source", pa.string(), nullable=False),  # one of PROBE_SOURCES
    ]
)
"""One probe prediction per (checkpoint, task, layer, baseline, example)."""

PROBE_METRICS = pa.schema(
    [
        pa.field("checkpoint_id", pa.string(), nullable=False),
        pa.field("test_set", pa.string(), nullable=False),  # test_id | test_seen (ProbeConfig.test_sets)
        pa.field("task", pa.string(), nullable=False),
        pa.field("layer", pa.int16(), nullable=False),
        pa.field("baseline", pa.string(), nullable=False),
        pa.field("slice", pa.string(), nullable=False),  # all | positive | negative | unnecessary | t=1..t=8
        pa.field("n", pa.int64(), nullable=False),
        pa.field("accuracy", pa.float64(), nullable=False),
        pa.field("mcc", pa.float64()),  # null where undefined (a single true class)
        pa.field("majority_accuracy", pa.float64(), nullable=False),  # train-majority class scored on the slice
    ]
)
"""Accuracy and MCC of each probe on each slice of its test examples (source probe_test)."""

# ---------------------------------------------------------------------------------------------------------
# sweep

SWEEP = pa.schema(
    [
        ("sweep_id", pa.string()),  # "<preset>-<sweep step hash>"
        ("cell", pa.string()),  # "GPT2-4-2-s0": model shape and seed
        ("model", pa.string()),  # GPT2-l-h
        ("n_layer", pa.int32()),
        ("n_head", pa.int32()),
        ("width", pa.int32()),
        ("params", pa.int64()),  # non-embedding parameters (spec C.1: 12d^2 + 13d per block + final LN)
        ("seed", pa.int32()),  # train.seed
        ("test_set", pa.string()),
        ("decoding", pa.string()),  # greedy | beam4
        ("accuracy", pa.float64()),  # fully-correct solutions, all ops of the test set pooled
        ("n", pa.int32()),  # problems behind `accuracy`
        ("best", pa.bool_()),  # the best of the model's seeds x decodings on this test set (the paper's value)
    ]
)
"""One row per (sweep cell, test set, decoding); `best` marks the paper's value per (model, test set)."""


# ---------------------------------------------------------------------------------------------------------
# The warehouse's views over these tables (physlm/sql/warehouse.py; each view's SQL: physlm/sql/views/NAME.sql)

VIEWS = (
    ("problems", "generate", "shard_*.parquet", PROBLEMS, "every problem of every dataset (texts, graph, op, split)"),
    (
        "checkpoints",
        None,
        "registry/checkpoints/*.parquet",
        CHECKPOINTS,
        "every registered checkpoint: model, step, tokens seen, loss (the training curves)",
    ),  # not a step: one file per row
    (
        "loss_curves",
        "train",
        "loss_curve.parquet",
        LOSS_CURVE,
        "the loss curve of the run that made an installed model's weights (train.pretrained; its card's)",
    ),
    ("generations", "evaluate", "generations.parquet", GENERATIONS, "every scored generation of every evaluation"),
    (
        "accuracy",
        "evaluate",
        "accuracy.parquet",
        ACCURACY,
        "accuracy per checkpoint, test set, op and decoding (op -1: pooled), Wilson 95% intervals",
    ),
    (
        "probe_metrics",
        "probe",
        "probe_metrics.parquet",
        PROBE_METRICS,
        "accuracy and MCC of every probe on every slice, with its baselines",
    ),
    (
        "probe_predictions",
        "probe",
        "probe_predictions.parquet",
        PROBE_PREDICTIONS,
        "every probe prediction (probe tests, E7 re-ask parameters, E8 first wrong steps)",
    ),
    ("sweep", "sweep", "sweep.parquet", SWEEP, "accuracy of every depth x width sweep cell, the best of seeds marked"),
)
"""``(view, step name or None, file pattern under a finished step folder (or the root), schema of the empty
view, what it holds)`` of every warehouse view."""


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts with at least the schema's columns) -> an Arrow table with exactly ``schema``."""
    return pa.table({f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in schema}, schema=schema)
