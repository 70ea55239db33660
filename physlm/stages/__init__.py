"""The pipeline's stages, one module per verb, and `STAGES`: the registry every caller reads, in pipeline order.

    generate -> train -> evaluate -> probe -> analyze        (the study of one preset: `physlm run`)
                                                  sweep       (a grid of cells, each train -> evaluate -> probe)

A stage module holds the whole verb: its library glue, its step(s) and its runner. Each one exposes

* ``NAME`` — the step name (its folder `{root}/{NAME}/{hash}`) and the CLI verb;
* ``GPU`` — whether its runner holds a `gpu` concurrency slot under Prefect;
* ``VERSION`` — bumped whenever what its step writes changes for the same config (code is not hashed);
* ``plan(preset) -> list[Step]`` — the preset's steps of this stage (generate: one per dataset), computed
  without any work: no generation, no tokenizer build, no model;
* ``run(step, force=False) -> str`` — make the step (a no-op returning its path when it is done), reading its
  inputs from ``step.inputs`` only, so any step can be rerun from its own step.json (`physlm repair`);
* ``describe(step) -> str`` — a few words for plan tables ("train", "GPT2-2-2, 3500 steps");
* optionally ``parts(step)`` / ``run_part(step, part, force)`` — independent pieces a step is made of (the
  shards of a dataset), which an orchestrator may compute in parallel before ``run`` finishes the step.

Who reads `STAGES`: `physlm.plan` (dry runs, the flows' task list), `physlm.repair` (pipeline order and the
runner of a damaged step), tasks/ (one generic task runs any stage's step), the CLI (one command per stage).
The warehouse reads the tables a stage writes from `physlm.tables.VIEWS`. Adding a stage is: its module
here, its line in `STAGES`, and (if it writes a table) its schema + view in physlm/tables.py and
physlm/sql/views/.
"""

from __future__ import annotations

from physlm.stages import analyze, evaluate, generate, probe, sweep, train

STAGES = (generate, train, evaluate, probe, analyze, sweep)
"""Every stage, in pipeline order: a step is only ever made after the steps of the stages before it."""

PIPELINE = ("generate", "train", "evaluate", "probe", "analyze")
"""The stages of one preset's study (`physlm run`); the sweep is a study of its own (`physlm sweep`)."""


def get(name: str):
    """The stage module called `name`; KeyError naming the known ones."""
    for stage in STAGES:
        if stage.NAME == name:
            return stage
    raise KeyError(f"unknown stage {name!r}; known: {', '.join(s.NAME for s in STAGES)}")


def names() -> tuple[str, ...]:
    return tuple(s.NAME for s in STAGES)
