"""The analyze stage: every canned query (one per paper figure, physlm/sql/queries/) written as Parquet + markdown.

analyze ``{root}/analyze/{hash}/`` — config: ``AnalyzeConfig`` (the query names); inputs: the evaluate and
probe steps it summarises (so new results make a new step); ``VERSION`` is bumped whenever a query's output
changes (code, SQL included, is not hashed: see physlm/store/steps.py). The queries read the whole warehouse,
i.e. every finished step under the root at the time the step runs, not only its inputs: a cached analyze step
is a snapshot; ``physlm report`` always queries live. Where a checkpoint was probed more than once, the probe
figures come from the analyze step's own probe input (else from the newest probe step: the views' ``latest``).
"""

from __future__ import annotations

from physlm.config import QUERIES, AnalyzeConfig
from physlm.presets import Preset
from physlm.sql.queries import markdown_for, run_queries
from physlm.stages import evaluate, probe
from physlm.store import storage
from physlm.store.steps import Step, run_step

NAME = "analyze"
GPU = False
VERSION = 3
"""2: every Wilson interval comes from one SQL macro computed as physlm.model.scoring.wilson, to the last bit
(version 1's two inline formulas rounded differently: bounds differ in the last bit). 3: the probe queries
(E4-E8, E10) read each row from the newest probe step that measured it (the views' `latest`) instead of
pooling every probe step of a checkpoint, and E4-E6 name it (column probe_step)."""


def plan(preset: Preset) -> list[Step]:
    inputs = {"evaluate": evaluate.evaluate_step(preset).path(), "probe": probe.probe_step(preset).path()}
    return [analyze_step(inputs)]


def describe(step: Step) -> str:
    return f"{len(step.config.queries)} queries"


def run(step: Step, force: bool = False, root: str | None = None) -> str:
    """Run the analyze step (cached by its folder); returns its path."""
    cfg: AnalyzeConfig = step.config
    probe = step.inputs.get("probe")
    probes = (probe.rstrip("/").rsplit("/", 1)[1],) if probe else ()  # its hash: the folder's name
    return run_step(step, lambda out: {"rows": run_analyze(out, root, cfg.queries, probes)}, force=force, root=root)


def run_analyze(
    out_folder: str, root: str | None = None, names: tuple[str, ...] = QUERIES, prefer_probes: tuple[str, ...] = ()
) -> dict:
    """Every canned query -> ``<name>.parquet`` + ``<name>.md`` under ``out_folder``; returns row counts.
    An empty result is written too: an empty table with the query's columns and "no data yet". The probe steps
    in ``prefer_probes`` (hashes) count as the newest of their checkpoints."""
    tables = run_queries(names, root, prefer_probes)
    for name, table in tables.items():
        storage.write_parquet(table, storage.join(out_folder, f"{name}.parquet"))
        storage.write_bytes(storage.join(out_folder, f"{name}.md"), markdown_for(name, table).encode())
    return {name: t.num_rows for name, t in tables.items()}


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
    return Step(NAME, AnalyzeConfig(), inputs=inputs, version=VERSION)
