"""The ``physlm`` console entry point: the library's commands (physlm/cli.py) plus the pipeline's, which
run Prefect flows (so runs show in the Prefect UI), on Prefect's embedded ephemeral API unless
PREFECT_API_URL points at a server:

    physlm run [--preset tiny] [--set key=value ...] [--dry-run] [--force]      (the reproduce flow)
    physlm generate|train|evaluate|probe|analyze --preset P [--set k=v ...] [--dry-run] [--force]
    physlm sweep --preset grid-tiny [--seed 0 --seed 1] [--set k=v ...] [--dry-run] [--force]

Preset and overrides (and whether the training context holds the family's problems) are validated before
Prefect is even imported: a typo costs a one-line error, not a server start-up.
"""

from __future__ import annotations

import os

import typer

from physlm.cli import app, fail
from physlm.config import ConfigError
from physlm.stages import PIPELINE

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a cold ephemeral server on 2 cores is slow
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline machines: no telemetry attempts
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "physlm",  # training progress (loss, tokens/s) in the flow's log
}


def _check_root() -> None:
    """Fail with one line, before any work, when PHYSLM_ROOT cannot be reached (S3 endpoint down, no credentials)."""
    from physlm.store import storage

    try:
        storage.listdir(storage.root())
    except storage.StorageError as e:
        fail(str(e))


def _check(verb: str, preset: str, sets: list[str]):
    """The resolved preset, after every check that needs no work; a one-line error otherwise."""
    from physlm.presets import resolve
    from physlm.stages import train

    try:
        p = resolve(preset, sets)
        if verb != "generate":  # everything downstream trains on windows of model.n_ctx tokens
            train.check_preset(p)
    except ConfigError as e:
        fail(str(e))
    _check_root()
    return p


def _quiet(verbose: bool) -> None:
    """Prefect's own console lines (task states, flow states) only at WARNING and above unless --verbose; the
    Prefect API (and so the UI) still gets every log line, physlm's plan and progress included."""
    for k, v in PREFECT_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # RoPE decodes past n_ctx by design
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # save_pretrained's own one-step bar


def _run_flow(verb: str, preset: str, sets: list[str], dry_run: bool, force: bool, verbose: bool, **extra):
    p = _check(verb, preset, sets)
    _quiet(verbose)
    before = None if verb == "sweep" else _plan_rows(verb, p, force)
    if dry_run and before is not None:
        from physlm import plan

        typer.echo(f"plan for preset {p.name} (dry run):\n{plan.table(before)}")
    elif dry_run:
        from flows.sweep import plan_text

        typer.echo(plan_text(preset, list(sets), extra["seeds"], force, extra["fan_out"]))
    if verb == "sweep":
        from flows.sweep import sweep as flow
    else:
        from flows.pipeline import FLOWS

        flow = FLOWS[verb]
    try:
        result = flow(preset=preset, overrides=list(sets), dry_run=dry_run, force=force, **extra)
    except Exception as e:  # the flow's log already has the traceback; the CLI contract is one line
        fail(f"flow {flow.name} failed: {type(e).__name__}: {' '.join(str(e).split())[:500]}", code=1)
    if not dry_run and before is not None:
        _summary(p.name, before, result)
    elif not dry_run:
        typer.echo(f"sweep table: {result}")


def _plan_rows(verb: str, p, force: bool) -> list[dict]:
    from physlm import plan
    from physlm.stages import PIPELINE

    upto = "analyze" if verb == "run" else verb
    forced = (set(PIPELINE) if verb == "run" else {verb}) if force else set()
    return plan.rows(plan.steps(p, upto), forced)


def _summary(name: str, rows: list[dict], result: dict) -> None:
    """What ran, what was cached, and where each output is: one line per step."""
    width = max(len(r["step"]) for r in rows)
    ran = sum(r["status"] == "will-run" for r in rows)
    typer.echo(f"{name}: {len(rows)} steps, {ran} ran, {len(rows) - ran} cached")
    for r in rows:
        status = "ran   " if r["status"] == "will-run" else "cached"
        typer.echo(f"  {r['stage']:<9} {r['step']:<{width}}  {status}  {result.get(r['step'], r['path'])}")
    if "report" in result:
        typer.echo(f"report: {result['report']}")


def _stage_command(verb: str):
    def command(
        preset: str = typer.Option("tiny" if verb == "run" else ..., help="Preset name (physlm/presets.py)."),
        sets: list[str] = typer.Option([], "--set", help="Override, key=value (repeatable), e.g. data.train_shards=3."),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="List each step, its hash, cached or will-run; do nothing."
        ),
        force: bool = typer.Option(False, "--force", help="Rerun steps even if they are done."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's full log on the console."),
    ) -> None:
        _run_flow(verb, preset, sets, dry_run, force, verbose)

    command.__doc__ = (
        "Run the whole study for a preset (the reproduce flow)."
        if verb == "run"
        else f"Run the {verb} stage for a preset (and every step it needs upstream)."
    )
    return command


for _verb in ("run", *PIPELINE):
    app.command(name=_verb)(_stage_command(_verb))


@app.command(name="sweep")
def sweep_command(
    preset: str = typer.Option(..., help="A grid preset: grid-tiny (CPU), grid-size1, grid-size2."),
    sets: list[str] = typer.Option([], "--set", help="Override, key=value (repeatable)."),
    seeds: list[int] = typer.Option([0, 1], "--seed", help="Training seeds per shape (repeatable; paper: 2)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List each cell's steps, cached or will-run; do nothing."),
    force: bool = typer.Option(False, "--force", help="Rerun steps even if they are done."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect's full log on the console."),
    fan_out: str = typer.Option(
        "auto",
        "--fan-out",
        help="auto (each cell its own run on the gpu pool when a server has the `cell` "
        "deployment), on, or off (every cell in this run).",
    ),
) -> None:
    """Run the depth x width sweep of a grid preset: every (shape, seed) cell trained, evaluated, probed."""
    if fan_out not in ("auto", "on", "off"):
        fail(f"--fan-out: must be auto, on or off, got {fan_out!r}")
    _run_flow("sweep", preset, sets, dry_run, force, verbose, seeds=list(seeds), fan_out=fan_out)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":
    main()
