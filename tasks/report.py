"""Prefect task of the report: the HTML page (plots inline) over every result under PHYSLM_ROOT. Not a cached
step: the page always reflects the live warehouse, and is rewritten only when its content changed."""

from __future__ import annotations

from prefect import task

from physlm.sql.report import build_report, default_out


@task(name="report", task_run_name="report")
def report(out: str | None = None) -> str:
    """Render the report; returns the path of its index.html."""
    return build_report(out or default_out())
