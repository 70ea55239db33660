"""A preset's plan: every step of its study in pipeline order, and whether each is cached or will run.

    generate (one step per dataset) -> train -> evaluate -> probe -> analyze

``steps(preset, upto)`` lists ``(stage, step)`` pairs for the stages of the study up to ``upto`` (each stage's
own ``plan(preset)``, physlm/stages/); ``rows`` turns them into the table that dry runs print and flows log;
``status`` is the one definition of "cached" (finished and not forced) used everywhere. Nothing here does any
work: planning never generates a problem, builds a tokenizer or touches a model.
"""

from __future__ import annotations

from physlm.presets import Preset
from physlm.stages import PIPELINE, get
from physlm.store.steps import Step


def stages_upto(upto: str) -> tuple[str, ...]:
    """The study's stages up to and including ``upto`` ("analyze": all of them)."""
    if upto not in PIPELINE:
        raise KeyError(f"unknown stage {upto!r}; the study's stages: {', '.join(PIPELINE)}")
    return PIPELINE[: PIPELINE.index(upto) + 1]


def steps(preset: Preset, upto: str = "analyze") -> list[tuple[str, Step]]:
    """``(stage name, step)`` of every step the study of ``preset`` needs up to ``upto``, in pipeline order."""
    return [(name, step) for name in stages_upto(upto) for step in get(name).plan(preset)]


def status(step: Step, force: bool = False) -> str:
    """ "cached" when the step is finished and not forced, else "will-run"."""
    return "cached" if step.done() and not force else "will-run"


def rows(pairs: list[tuple[str, Step]], forced: set[str] | frozenset = frozenset()) -> list[dict]:
    """One row per step: stage, step id, what it is, "cached" or "will-run" (``forced``: stages to rerun),
    and its folder."""
    return [
        {
            "stage": name,
            "step": step.id,
            "what": get(name).describe(step),
            "status": status(step, name in forced),
            "path": step.path(),
        }
        for name, step in pairs
    ]


def table(rows_: list[dict], columns: tuple[str, ...] = ("stage", "step", "what", "status")) -> str:
    """A plain-text table for logs and the terminal (the Prefect UI shows logs in a fixed-width font)."""
    widths = [max([len(c)] + [len(str(r[c])) for r in rows_]) for c in columns]

    def line(vals) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(vals, widths)).rstrip()

    return "\n".join([line(columns), line("-" * w for w in widths)] + [line(r[c] for c in columns) for r in rows_])
