"""The study's flows: `reproduce` (every stage, then the report) and one flow per stage, each reading like
the pipeline diagram

    generate (a task per shard, then one per dataset) -> train -> evaluate -> probe -> analyze -> report

One flow run, one task run per step: the flow plans every step it needs (physlm.plan, no work), logs the
plan, then submits each step as a task that waits only for the steps it reads (so the test sets generate
while the model trains). A stage flow (`physlm train`, ...) runs its upstream steps as tasks too, cached
when done; its `force` reruns that stage only, while `reproduce`'s reruns every stage.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact

from physlm import plan, stages
from physlm.presets import resolve
from physlm.stages import generate as gen_stage
from physlm.store import storage
from physlm.store.steps import made_by
from tasks.report import report as report_task
from tasks.step import run_part, run_step

ARTIFACTS = {
    "evaluate": ("accuracy.md", "accuracy", "Accuracy"),
    "probe": ("probe_metrics.md", "probe-metrics", "Probe metrics"),
}
"""Markdown tables a stage's step publishes as a Prefect artifact: (file, key, title)."""


def run_study(preset: str, overrides: list[str], upto: str, dry_run: bool, forced: set[str]) -> dict[str, str]:
    """Plan the study up to `upto`, log it, run every step as a task; returns `{step id: path}`."""
    p = resolve(preset, overrides)
    pairs = plan.steps(p, upto)
    rows = plan.rows(pairs, forced)
    print(f"plan for preset {p.name} ({'dry run' if dry_run else 'run'}):\n{plan.table(rows)}")
    if dry_run:
        return {}
    with made_by(preset=p.name, overrides=list(overrides)):  # recorded in each step.json (`physlm steps`)
        paths = _submit(p, pairs, rows, forced)
    publish(p.name, pairs)
    ran = sum(r["status"] == "will-run" for r in rows)
    print(f"{p.name}: {len(rows)} steps, {len(rows) - ran} cached, {ran} ran")
    return paths


def _submit(p, pairs, rows, forced: set[str]) -> dict[str, str]:
    """Every step as a task that waits for the steps it reads (shards first for a dataset); `{step id: path}`."""
    processes = gen_stage.processes_for(p, [s for n, s in pairs if n == "generate"], force="generate" in forced)
    futures: dict[str, object] = {}  # step path -> its task's future
    for (name, step), row in zip(pairs, rows):
        force = name in forced
        wait = [futures[path] for path in step.inputs.values() if path in futures]
        if name == "generate" and row["status"] == "will-run":
            parts = run_part.with_options(task_run_name=f"generate-{step.config.dataset}-{{part:05d}}").map(
                unmapped(name),
                unmapped(step),
                gen_stage.parts(step),
                force=unmapped(force),
                processes=unmapped(processes),
                wait_for=list(wait),
            )
            wait = wait + list(parts)
        label = f"generate-{step.config.dataset}" if name == "generate" else name
        futures[step.path()] = run_step.with_options(task_run_name=label).submit(name, step, force=force, wait_for=wait)
    return {step.id: futures[step.path()].result() for _, step in pairs}


def publish(preset: str, pairs) -> None:
    """Each evaluate/probe table as a Prefect markdown artifact; each analyze query too."""
    for name, step in pairs:
        if name in ARTIFACTS:
            filename, key, title = ARTIFACTS[name]
            md = storage.read_bytes(storage.join(step.path(), filename)).decode()
            create_markdown_artifact(key=key, markdown=f"# {title} ({preset})\n\n{md}")
        if name == "analyze":
            from physlm.sql.queries import describe

            for q in step.config.queries:
                md = storage.read_bytes(storage.join(step.path(), f"{q}.md")).decode()
                create_markdown_artifact(
                    key=f"analyze-{q.replace('_', '-')}", markdown=md, description=describe(q).splitlines()[0]
                )


@flow(name="reproduce", log_prints=True)
def reproduce(
    preset: str = "tiny",
    overrides: list[str] = [],  # noqa: B006 (Prefect flow parameters: a JSON default)
    dry_run: bool = False,
    force: bool = False,
) -> dict[str, str]:
    """Every stage of `preset`, then the report; `force` reruns every stage. Returns `{step id: path}` and the
    report page under "report"."""
    paths = run_study(preset, overrides, "analyze", dry_run, set(stages.PIPELINE) if force else set())
    if not dry_run:
        page = report_task()
        create_markdown_artifact(
            key="report", markdown=f"Report: `{page}` (open it in a browser)", description="physlm report of this study"
        )
        print(f"report: {page}")
        paths["report"] = page
    return paths


def _stage_flow(stage: str):
    def stage_flow(
        preset: str = "tiny",
        overrides: list[str] = [],  # noqa: B006 (Prefect flow parameters: a JSON default)
        dry_run: bool = False,
        force: bool = False,
    ) -> dict[str, str]:
        return run_study(preset, overrides, stage, dry_run, {stage} if force else set())

    stage_flow.__doc__ = f"The {stage} stage of `preset` and every step it needs; `force` reruns {stage} only."
    stage_flow.__name__ = stage_flow.__qualname__ = stage
    return flow(name=stage, log_prints=True)(stage_flow)


generate = _stage_flow("generate")
train = _stage_flow("train")
evaluate = _stage_flow("evaluate")
probe = _stage_flow("probe")
analyze = _stage_flow("analyze")
FLOWS = {
    "run": reproduce,
    "generate": generate,
    "train": train,
    "evaluate": evaluate,
    "probe": probe,
    "analyze": analyze,
}
"""The CLI verb of each flow."""


if __name__ == "__main__":
    reproduce(preset="tiny")
