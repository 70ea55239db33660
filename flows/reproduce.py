"""The reproduce flow: the whole study of one preset, end to end, reading like the pipeline diagram:
generate -> train -> evaluate -> probe -> analyze -> report. Each stage flow runs what it needs upstream;
steps already done are cached, so a rerun does no work (the report page is rewritten only if it changed)."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.analyze import analyze
from flows.evaluate import evaluate
from flows.generate import generate
from flows.probe import probe
from flows.train import train
from tasks.report import report


@flow(name="reproduce", log_prints=True)
def reproduce(preset: str = "tiny", overrides: list[str] = [], dry_run: bool = False,  # noqa: B006
              force: bool = False) -> dict[str, str]:
    """Every stage for `preset`; `force` reruns every stage."""
    kw = dict(preset=preset, overrides=overrides, dry_run=dry_run, force=force)
    data = generate(**kw)
    train(**kw)
    evaluate(**kw)
    probe(**kw)
    analyze(**kw)
    if not dry_run:
        page = report()
        create_markdown_artifact(key="report", markdown=f"Report: `{page}` (open it in a browser)",
                                 description="physlm report of this study")
        print(f"report: {page}")
    return data


if __name__ == "__main__":
    reproduce(preset="tiny")
