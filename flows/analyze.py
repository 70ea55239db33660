"""The analyze flow: evaluation and probing upstream (cached), then one canned SQL query per paper figure
(physlm/queries/*.sql, E2-E10) written as Parquet + markdown into the analyze step folder; each markdown
table is published as a Prefect artifact (key ``analyze-<query>``). `physlm report` draws the plots."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.evaluate import evaluate
from flows.probe import probe
from physlm import analysis, storage
from tasks.analyze import analyze as analyze_task
from tasks.analyze import analyze_step_for


@flow(name="analyze", log_prints=True)
def analyze(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
            force: bool = False) -> str:
    """Analyze `preset`'s results; `force` reruns this stage only (upstream steps stay cached)."""
    evaluate(preset=preset, overrides=overrides, dry_run=dry_run)
    probe(preset=preset, overrides=overrides, dry_run=dry_run)
    step = analyze_step_for(preset, overrides)
    status = "cached" if step.done() and not force else "will-run"
    print(f"analyze plan: {step.id} ({len(step.config.queries)} queries) {status}")
    if dry_run:
        return step.path()
    path = analyze_task(preset, overrides, force=force)
    for name in step.config.queries:
        md = storage.read_bytes(storage.join(path, f"{name}.md")).decode()
        create_markdown_artifact(key=f"analyze-{name.replace('_', '-')}", markdown=md,
                                 description=analysis.describe(name).splitlines()[0])
    print(f"analyze: {len(step.config.queries)} tables in {path}; `physlm report` renders the plots")
    return path


if __name__ == "__main__":
    analyze(preset="tiny")
