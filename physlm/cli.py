"""The ``physlm`` command line (typer). Commands that need no orchestration live here directly:

    physlm sample --family med --count N --seed S [--op K] [--format pq|qp] [--split train|test] [--reask]
    physlm check [--input FILE|-]

and the orchestrated ones (README §6), each running its Prefect flow:

    physlm run [--preset tiny] [--set key=value ...] [--dry-run] [--force]      (the reproduce flow)
    physlm generate|train|evaluate|probe|analyze|sweep --preset P [--set k=v ...] [--dry-run] [--force]
    physlm sql "SELECT ..." | --query NAME [--format table|csv|json]            (DuckDB over PHYSLM_ROOT)
    physlm report [--out DIR]                                                   (the HTML report)
    physlm repair [PATH ...] [--preset P [--set k=v ...]] [--dry-run]            (verify + recompute damaged steps)

Bad input is a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from physlm.igsm.config import ConfigError, Family, GenConfig, family as named_family

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="physlm: iGSM data, training, evaluation and probing for 'Physics of LMs 2.1'.")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (no traceback)."""
    typer.echo(f"physlm: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def sample(
    family: str = typer.Option("med", help="Difficulty family: med, hard (or use --max-op/--max-edge)."),
    count: int = typer.Option(10, min=0, help="Number of problems."),
    seed: int = typer.Option(0, help="Base seed; problem i uses a seed derived from (seed, i)."),
    op: Optional[int] = typer.Option(None, help="Force this op (e.g. OOD op 20..23 for med)."),
    format: str = typer.Option("pq", "--format", help="pq (question last) or qp (question first)."),
    split: str = typer.Option("train", help="train (template hash < 17), test (>= 17) or all."),
    reask: bool = typer.Option(False, help="Re-ask a new parameter of an op=--op problem."),
    max_op: Optional[int] = typer.Option(None, help="Custom family: training op bound."),
    max_edge: Optional[int] = typer.Option(None, help="Custom family: ip bound."),
    perm_level: int = typer.Option(5, help="Sentence order: 0..4 mild, 5 random (paper), 6 none."),
) -> None:
    """Print problems as JSON lines (id, family, format, split, op, ip, problem, solution, answer, ...)."""
    from physlm.igsm.generate import GenerationError, generate
    from physlm.shards import problem_seed, shard_seed

    try:
        fam = named_family(family) if max_op is None and max_edge is None else Family(
            family if family not in ("med", "hard") else "custom",
            max_op=max_op or named_family("med").max_op, max_edge=max_edge or named_family("med").max_edge)
        cfg = GenConfig(family=fam, format=format, split=split, op=op, reask=reask, perm_level=perm_level)
    except ConfigError as e:
        fail(str(e))
    base = shard_seed(seed, "sample", 0)
    out = sys.stdout
    for i in range(count):
        try:
            p = generate(cfg, problem_seed(base, i))
        except GenerationError as e:
            fail(str(e))
        out.write(json.dumps({
            "id": f"{fam.name}-{format}-{seed}-{i}", "seed": p.seed, "family": p.family, "format": p.format,
            "split": p.split(cfg.train_bins), "reask": p.reask, "op": p.op, "base_op": p.base_op, "ip": p.ip,
            "template_hash": p.template_hash, "problem": p.problem, "solution": p.solution,
            "answer": p.answer}) + "\n")


@app.command()
def check(input: str = typer.Option("-", "--input", help="JSON lines file, or - for stdin.")) -> None:
    """Judge solutions: JSON lines {problem, solution[, answer]} in, one verdict per line out."""
    from physlm.igsm.judge import judge_line

    try:
        fh = sys.stdin if input == "-" else open(input, encoding="utf-8", errors="replace")
    except OSError as e:
        fail(f"cannot read {input}: {e.strerror}")
    with fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                sys.stdout.write(json.dumps(judge_line(line, n)) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Orchestrated commands: each runs its Prefect flow (so runs show in the Prefect UI), on Prefect's embedded
# ephemeral API unless PREFECT_API_URL points at a server. The CLI is the one place in physlm/ that reaches
# up to the orchestration layer (flows/), and only lazily, inside the commands: it is an entry point, not
# library code. Preset and overrides are validated before Prefect is even imported.

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a cold ephemeral server on 2 cores is slow
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline machines: no telemetry attempts
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "physlm",  # training progress (loss, tokens/s) in the flow's log
}
STAGES = {"generate": "generate", "train": "train", "evaluate": "evaluate", "probe": "probe",
          "analyze": "analyze", "sweep": "sweep", "run": "reproduce"}


def _check_root() -> None:
    """Fail with one line, before any work, when PHYSLM_ROOT cannot be reached (S3 endpoint down, no credentials)."""
    from physlm import storage

    try:
        storage.listdir(storage.root())
    except storage.StorageError as e:
        fail(str(e))


def _run_flow(module: str, preset: str, sets: list[str], dry_run: bool, force: bool, **extra) -> None:
    import importlib
    import os

    from physlm.presets import PresetError, resolve

    try:
        p = resolve(preset, sets)
        if module != "generate":  # everything downstream trains on windows of model.n_ctx tokens
            from physlm.stages import check_context
            check_context(p)
    except ConfigError as e:  # PresetError included
        fail(str(e))
    _check_root()
    for k, v in PREFECT_DEFAULTS.items():
        os.environ.setdefault(k, v)
    flow = getattr(importlib.import_module(f"flows.{module}"), module)
    try:
        flow(preset=preset, overrides=list(sets), dry_run=dry_run, force=force, **extra)
    except Exception as e:  # the flow's log already has the traceback; the CLI contract is one line
        fail(f"flow {module} failed: {type(e).__name__}: {' '.join(str(e).split())[:500]}", code=1)


def _stage_command(name: str, module: str, default_preset: Optional[str]):
    def command(
        preset: str = typer.Option(default_preset or ..., help="Preset name (physlm/presets.py)."),
        sets: list[str] = typer.Option([], "--set", help="Override, key=value (repeatable), e.g. data.train_shards=3."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List each step, its hash, cached or will-run; do nothing."),
        force: bool = typer.Option(False, "--force", help="Rerun steps even if they are done."),
    ) -> None:
        _run_flow(module, preset, sets, dry_run, force)

    command.__doc__ = ("Run the whole study for a preset (the reproduce flow)." if name == "run"
                       else f"Run the {module} flow for a preset (and what it needs upstream).")
    return command


for _name, _module in STAGES.items():
    if _name != "sweep":
        app.command(name=_name)(_stage_command(_name, _module, "tiny" if _name == "run" else None))


@app.command(name="sweep")
def sweep_command(
    preset: str = typer.Option(..., help="A grid preset: grid-tiny (CPU), grid-size1, grid-size2."),
    sets: list[str] = typer.Option([], "--set", help="Override, key=value (repeatable)."),
    seeds: list[int] = typer.Option([0, 1], "--seed", help="Training seeds per shape (repeatable; paper: 2)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List each cell's steps, cached or will-run; do nothing."),
    force: bool = typer.Option(False, "--force", help="Rerun steps even if they are done."),
) -> None:
    """Run the depth x width sweep of a grid preset: every (shape, seed) cell trained, evaluated, probed."""
    _run_flow("sweep", preset, sets, dry_run, force, seeds=list(seeds))


@app.command()
def sql(
    statement: Optional[str] = typer.Argument(None, help="One read-only SQL statement, e.g. "
                                              "\"select * from problems limit 5\"."),
    query_name: Optional[str] = typer.Option(None, "--query", help="Run a canned query instead (one per paper "
                                             "figure, physlm/queries/NAME.sql), e.g. accuracy_by_op."),
    format: str = typer.Option("table", "--format", help="table, csv or json (one JSON object per line)."),
) -> None:
    """Query every output under PHYSLM_ROOT with DuckDB (views: problems, checkpoints, generations, accuracy,
    probe_metrics, probe_predictions, sweep), or run a canned query with --query NAME."""
    from physlm.storage import StorageError
    from physlm.warehouse import QueryError, query

    if format not in ("table", "csv", "json"):
        fail(f"--format: must be table, csv or json, got {format!r}")
    if (statement is None) == (query_name is None):
        fail("give either a SQL statement or --query NAME (not both)")
    try:
        if query_name is not None:
            from physlm.analysis import run_query

            result = run_query(query_name)
        else:
            result = query(statement)
    except (QueryError, StorageError) as e:
        fail(str(e))
    if format == "json":
        for row in result.to_pylist():
            sys.stdout.write(json.dumps(row, default=str) + "\n")
    elif format == "csv":
        import pyarrow.csv as pacsv

        sink = __import__("io").BytesIO()
        pacsv.write_csv(result, sink)
        sys.stdout.write(sink.getvalue().decode())
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(*result.column_names)
        for row in result.to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        Console().print(t)
        typer.echo(f"({result.num_rows} rows)", err=True)


@app.command()
def report(
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (default {PHYSLM_ROOT}/report, or "
                                      "./physlm-report when the root is on S3)."),
) -> None:
    """Render the HTML report (one self-contained page, plots inline) from every result under PHYSLM_ROOT."""
    from physlm.report import build_report, default_out
    from physlm.storage import StorageError
    from physlm.warehouse import QueryError

    try:
        url = build_report(out or default_out())
    except (QueryError, StorageError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the report: {e}")
    typer.echo(url)


@app.command()
def repair(
    paths: Optional[list[str]] = typer.Argument(None, help="Step folders to check (absolute, s3://, or relative to "
                                                "PHYSLM_ROOT, e.g. generate/1a2b3c4d); default: every finished step."),
    preset: Optional[str] = typer.Option(None, help="Check only the steps of this preset (those already run)."),
    sets: list[str] = typer.Option([], "--set", help="Preset override, key=value (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report damaged steps (exit 1 if any)."),
) -> None:
    """Verify finished steps against the size and sha256 of every file in their step.json, and recompute the
    damaged ones (a forced rerun of that step alone). Exit 0 when all is intact or repaired, 1 when damage remains."""
    import os

    from physlm import repair as R, storage
    from physlm.presets import PresetError, resolve

    if paths and preset:
        fail("give step folders or --preset, not both")
    if sets and not preset:
        fail("--set needs --preset")
    try:
        if preset:
            folders = R.preset_steps(resolve(preset, sets))
        elif paths:
            folders = [R.resolve_path(x) for x in paths]
        else:
            folders = R.finished_steps()
        findings = R.scan(folders)
    except (PresetError, R.RepairError, storage.StorageError) as e:
        fail(str(e))
    damaged = [f for f in findings if f.damage]
    typer.echo(f"checked {len(findings)} finished steps under {storage.root()}: {len(damaged)} damaged")
    for f in damaged:
        typer.echo(R.describe(f))
    if dry_run or not damaged:
        raise typer.Exit(1 if damaged else 0)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for f in damaged:
        R.repair(f)
        if f.repaired:
            typer.echo(f"repaired {f.step_id}: recomputed; {f.identical} of {f.recorded} files byte-identical to "
                       "the record")
        else:
            typer.echo(f"physlm: error: repair of {f.step_id} failed: {f.error}", err=True)
    raise typer.Exit(0 if all(f.repaired for f in damaged) else 1)


def main() -> None:  # pragma: no cover - console entry point
    app()


@app.command("evaluate-model")
def evaluate_model(
    model_dir: str = typer.Argument(..., help="A local transformers causal-LM folder (config.json + weights)."),
    tokenizer: Optional[str] = typer.Option(None, help="Tokenizer folder (default: the model folder)."),
    preset: str = typer.Option("tiny", help="Whose generated test sets to use (run `physlm generate` first)."),
    sets: list[str] = typer.Option([], "--set", help="Preset override, key=value (repeatable)."),
    limit: int = typer.Option(100, min=0, help="Problems per test set (0 = all)."),
    max_new_tokens: int = typer.Option(512, min=1),
    out: str = typer.Option("./physlm-eval-external", help="Folder for generations/accuracy Parquet + markdown."),
) -> None:
    """Evaluate any local causal LM on a preset's iGSM test sets (text prompts, the same checker)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from physlm import datasets
    from physlm.evaluate import EvalOptions, evaluate_rows, load_external, markdown, require_local_folder, \
        write_results
    from physlm.presets import PresetError, resolve

    try:
        p = resolve(preset, sets)
        require_local_folder(model_dir)  # before the test sets: the folder is what the user typed
    except (PresetError, FileNotFoundError) as e:
        fail(str(e))
    from physlm.steps import CorruptStep, StepNotDone
    from physlm.storage import StorageError

    steps = {name: datasets.step_for(p, name) for name in p.data.datasets() if name != "train"}
    try:
        missing = [name for name, s in steps.items() if not s.done()]
    except StorageError as e:
        fail(str(e))
    if missing:
        fail(f"test sets {', '.join(missing)} of preset {preset!r} are not generated yet: "
             f"run `physlm generate --preset {preset}` first")
    from physlm.scoring import accuracy_table
    from physlm.shards import read_shards

    try:
        model, codec = load_external(model_dir, tokenizer)
    except (FileNotFoundError, OSError, ValueError) as e:
        fail(" ".join(str(e).split())[:300])
    rows = []
    for name, step in steps.items():
        try:
            problems = read_shards(step.path()).to_pylist()
        except (CorruptStep, StepNotDone, StorageError) as e:
            fail(str(e))
        rows += evaluate_rows(model, codec, problems[: limit or None], name, os.path.abspath(model_dir),
                              opts=EvalOptions(max_new_tokens=max_new_tokens))
    write_results(rows, os.path.abspath(out))
    typer.echo(markdown(accuracy_table(rows)))
