"""The ``physlm`` command line (typer): the commands that need no orchestration.

    physlm sample --family med --count N --seed S [--op K] [--format pq|qp] [--split train|test] [--reask]
    physlm check [--input FILE|-]
    physlm sql "SELECT ..." | --query NAME [--format table|csv|json]            (DuckDB over PHYSLM_ROOT)
    physlm report [--out DIR]                                                   (the HTML report)
    physlm repair [PATH ...] [--preset P [--set k=v ...]] [--dry-run]            (verify + recompute damaged steps)
    physlm evaluate-model MODEL_DIR [...]                                        (any local causal LM)
    physlm export-model OUT [--preset P] [--set k=v ...]                         (a pretrained folder)

The pipeline's commands (``physlm run``, ``physlm generate|train|...|sweep``), which run Prefect flows, are
added to this same ``app`` by flows/cli.py, the console entry point: the library never imports the
orchestration layer. Bad input is a one-line message on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys

import typer

from physlm.config import ConfigError
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.config import family as named_family

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="physlm: iGSM data, training, evaluation and probing for 'Physics of LMs 2.1'.",
)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (no traceback)."""
    typer.echo(f"physlm: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def sample(
    family: str = typer.Option("med", help="Difficulty family: med, hard (or use --max-op/--max-edge)."),
    count: int = typer.Option(10, min=0, help="Number of problems."),
    seed: int = typer.Option(0, help="Base seed; problem i uses a seed derived from (seed, i)."),
    op: int | None = typer.Option(None, help="Force this op (e.g. OOD op 20..23 for med)."),
    format: str = typer.Option("pq", "--format", help="pq (question last) or qp (question first)."),
    split: str = typer.Option("train", help="train (template hash < 17), test (>= 17) or all."),
    reask: bool = typer.Option(False, help="Re-ask a new parameter of an op=--op problem."),
    max_op: int | None = typer.Option(None, help="Custom family: training op bound."),
    max_edge: int | None = typer.Option(None, help="Custom family: ip bound."),
    perm_level: int = typer.Option(5, help="Sentence order: 0..4 mild, 5 random (paper), 6 none."),
) -> None:
    """Print problems as JSON lines (id, family, format, split, op, ip, problem, solution, answer, ...)."""
    from physlm.igsm.generate import GenerationError, generate
    from physlm.store.shards import problem_seed, shard_seed

    try:
        fam = (
            named_family(family)
            if max_op is None and max_edge is None
            else Family(
                family if family not in ("med", "hard") else "custom",
                max_op=max_op or named_family("med").max_op,
                max_edge=max_edge or named_family("med").max_edge,
            )
        )
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
        out.write(
            json.dumps(
                {
                    "id": f"{fam.name}-{format}-{seed}-{i}",
                    "seed": p.seed,
                    "family": p.family,
                    "format": p.format,
                    "split": p.split(cfg.train_bins),
                    "reask": p.reask,
                    "op": p.op,
                    "base_op": p.base_op,
                    "ip": p.ip,
                    "template_hash": p.template_hash,
                    "problem": p.problem,
                    "solution": p.solution,
                    "answer": p.answer,
                }
            )
            + "\n"
        )


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


SQL_FORMATS = ("table", "markdown", "csv", "json")


@app.command()
def sql(
    statement: str | None = typer.Argument(
        None, help='One read-only SQL statement, e.g. "select * from problems limit 5".'
    ),
    query_name: str | None = typer.Option(
        None,
        "--query",
        help="Run a canned query instead (one per paper figure, physlm/sql/queries/NAME.sql), e.g. accuracy_by_op.",
    ),
    format: str = typer.Option(
        "table",
        "--format",
        help="table (floats rounded; vertical when too wide), markdown, csv or json (full precision).",
    ),
    list_: bool = typer.Option(False, "--list", help="List the views and canned queries with what each holds."),
) -> None:
    """Query every output under PHYSLM_ROOT with DuckDB (views: problems, checkpoints, generations, accuracy,
    probe_metrics, probe_predictions, sweep), or run a canned query with --query NAME."""
    if list_:
        typer.echo(_sql_listing())
        return
    if format not in SQL_FORMATS:
        fail(f"--format: must be one of {', '.join(SQL_FORMATS)}, got {format!r}")
    if (statement is None) == (query_name is None):
        fail("give either a SQL statement or --query NAME (not both)")
    sys.stdout.write(_sql_output(_sql_result(statement, query_name), format))


def _sql_result(statement: str | None, query_name: str | None):
    from physlm.sql.warehouse import QueryError, query
    from physlm.store.storage import StorageError

    try:
        if query_name is not None:
            from physlm.sql.queries import run_query

            return run_query(query_name)
        return query(statement)
    except (QueryError, StorageError) as e:
        fail(str(e))


def _sql_output(result, format: str) -> str:
    from physlm.sql import render

    if format == "json":
        return "".join(json.dumps(row, default=str) + "\n" for row in result.to_pylist())
    if format == "csv":
        import io

        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(_flat(result), sink)
        return sink.getvalue().decode()
    if format == "markdown":
        return render.markdown(result)
    import shutil

    return render.text(result, shutil.get_terminal_size().columns)


def _flat(table):
    """CSV has no nested values: list and struct columns become JSON text (full precision kept)."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_nested(field.type):
            text = [None if v is None else json.dumps(v, default=str) for v in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def _sql_listing() -> str:
    """Every view (what it holds) and canned query (the paper figure it reproduces), one line each."""
    from physlm.config import EXTRA_QUERIES, QUERIES
    from physlm.sql.queries import TITLES
    from physlm.tables import VIEWS

    width = max(len(n) for n in [*QUERIES, *EXTRA_QUERIES, *(v[0] for v in VIEWS)])
    lines = ["views:"] + [f"  {v[0]:<{width}}  {v[-1]}" for v in VIEWS]
    lines += ["canned queries (physlm sql --query NAME):"]
    lines += [f"  {q:<{width}}  {TITLES[q]}" for q in (*QUERIES, *EXTRA_QUERIES)]
    return "\n".join(lines)


@app.command()
def steps(
    format: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
) -> None:
    """List every step folder under PHYSLM_ROOT (local or s3://): name, id, state (done / damaged on a quick
    size check / unfinished), size, when it finished, the preset that made it."""
    from physlm.store import inventory
    from physlm.store.storage import StorageError

    if format not in SQL_FORMATS:
        fail(f"--format: must be one of {', '.join(SQL_FORMATS)}, got {format!r}")
    try:
        table = inventory.list_steps()
    except StorageError as e:
        fail(str(e))
    if format in ("table", "markdown"):  # for reading: the step id already says the name; bytes as "12.3 MB"
        drop = ["name", "bytes", "path"] + (["problem"] if table.column("problem").null_count == len(table) else [])
        table = table.drop_columns(drop)
    sys.stdout.write(_sql_output(table, format))


@app.command()
def report(
    out: str | None = typer.Option(
        None, "--out", help="Output folder (default {PHYSLM_ROOT}/report, or ./physlm-report when the root is on S3)."
    ),
) -> None:
    """Render the HTML report (one self-contained page, plots inline) from every result under PHYSLM_ROOT."""
    from physlm.sql.report import build_report, default_out
    from physlm.sql.warehouse import QueryError
    from physlm.store.storage import StorageError

    try:
        url = build_report(out or default_out())
    except (QueryError, StorageError) as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot write the report: {e}")
    typer.echo(url)


@app.command()
def repair(
    paths: list[str] | None = typer.Argument(
        None,
        help="Step folders to check (absolute, s3://, or relative to "
        "PHYSLM_ROOT, e.g. generate/1a2b3c4d); default: every finished step.",
    ),
    preset: str | None = typer.Option(None, help="Check only the steps of this preset (those already run)."),
    sets: list[str] = typer.Option([], "--set", help="Preset override, key=value (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report damaged steps (exit 1 if any)."),
) -> None:
    """Verify finished steps against the size and sha256 of every file in their step.json, and recompute the
    damaged ones (a forced rerun of that step alone). Exit 0 when all is intact or repaired, 1 when damage remains."""
    import os

    from physlm import repair as R
    from physlm.presets import resolve
    from physlm.store import storage

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
    except (ConfigError, R.RepairError, storage.StorageError) as e:
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
            typer.echo(
                f"repaired {f.step_id}: recomputed; {f.identical} of {f.recorded} files byte-identical to the record"
            )
        else:
            typer.echo(f"physlm: error: repair of {f.step_id} failed: {f.error}", err=True)
    raise typer.Exit(0 if all(f.repaired for f in damaged) else 1)


@app.command("evaluate-model")
def evaluate_model(
    model_dir: str = typer.Argument(
        ...,
        help="A physlm train step folder (or a model folder kept with its tokenizer), or any local "
        "transformers causal-LM folder (config.json + weights).",
    ),
    tokenizer: str | None = typer.Option(None, help="Tokenizer folder of an external model (default: the model's)."),
    problems: str | None = typer.Option(
        None,
        "--problems",
        help="A JSON-lines file of iGSM problems (e.g. the authors' generator's); default: the "
        "preset's generated test sets.",
    ),
    preset: str = typer.Option("tiny", help="Whose generated test sets to use (run `physlm generate` first)."),
    sets: list[str] = typer.Option([], "--set", help="Preset override, key=value (repeatable)."),
    limit: int = typer.Option(100, min=0, help="Problems per test set (0 = all)."),
    max_new_tokens: int = typer.Option(512, min=1),
    format: str = typer.Option("table", "--format", help="table (markdown) or json (one object per accuracy row)."),
    out: str = typer.Option("./physlm-eval-external", help="Folder for generations/accuracy Parquet + markdown."),
) -> None:
    """Evaluate a model on iGSM problems: a physlm checkpoint (its tokenizer and framing) or any local causal LM
    (text prompts), on a preset's test sets or a problem file, judged by the same checker; accuracy by op."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from physlm.model.scoring import accuracy_table
    from physlm.stages.evaluate import EvalOptions, evaluate_sets, markdown, write_results

    if format not in ("table", "json"):
        fail(f"--format: must be table or json, got {format!r}")
    sets_of_problems = _problems_to_evaluate(model_dir, problems, preset, sets, limit)
    model, codec = _model_to_evaluate(model_dir, tokenizer)
    rows = evaluate_sets(model, codec, sets_of_problems, os.path.abspath(model_dir),
                         opts=EvalOptions(max_new_tokens=max_new_tokens))  # fmt: skip
    write_results(rows, os.path.abspath(out))
    acc = accuracy_table(rows)
    if format == "json":
        sys.stdout.write("".join(json.dumps(a) + "\n" for a in acc))
    else:
        typer.echo(markdown(acc))
    if getattr(codec, "fallback", False) and codec.prompt_tokens:
        share = codec.fallback_tokens / codec.prompt_tokens
        typer.echo(f"fallback: {codec.fallback_tokens} of {codec.prompt_tokens} prompt tokens ({share:.1%}) were "
                   "words outside the model's vocabulary, read through known words or spelt", err=True)  # fmt: skip


@app.command("export-model")
def export_model(
    out: str = typer.Argument(..., help="The pretrained folder to write (replaced whole): physlm/pretrained/NAME."),
    preset: str = typer.Option("tiny", help="Whose finished train step (under PHYSLM_ROOT) to export."),
    sets: list[str] = typer.Option([], "--set", help="Preset override, key=value (repeatable)."),
    machine: str | None = typer.Option(None, help="Where the run trained, if its train step does not record it."),
) -> None:
    """Write a pretrained folder from a preset's finished train step: the model folder (weights, config, tokenizer)
    and card.json (its train step id, the preset sections it covers, the loss curve, commit, machine, and its
    evaluate step's accuracy when that is done). `--set train.pretrained=FOLDER` installs it as that train step's
    output instead of training (in any root; shipped ones: the `<name>-pretrained` presets)."""
    from physlm.presets import resolve
    from physlm.stages import evaluate, train
    from physlm.store import pretrained, storage
    from physlm.store.steps import CorruptStep, StepLoadError

    try:
        p = resolve(preset, sets)
        step, ev = train.train_step(p), evaluate.evaluate_step(p)
        if not step.done():
            fail(f"train step {step.id} of preset {preset!r} is not done under {storage.root()}: run "
                 f"`physlm train --preset {preset}` first")  # fmt: skip
        card = pretrained.export(p, step.path(), out, ev.path() if ev.done() else None, machine)
    except (ConfigError, OSError, ValueError, KeyError, CorruptStep, StepLoadError) as e:
        fail(" ".join(str(e).split())[:300])
    seen = [a for a in card["accuracy"] if a["test_set"] == "test_seen" and a["op"] > 0]
    acc = ", ".join(f"op {a['op']} {a['accuracy']:.1%}" for a in seen) or "no evaluation"
    typer.echo(f"{out}: {card['train_step']} ({card['checkpoint']['name']}, step {card['checkpoint']['step']}, "
               f"loss {card['checkpoint']['loss']:.3f}); test_seen {acc}")  # fmt: skip


def _problems_to_evaluate(model_dir: str, problems: str | None, preset: str, sets: list[str], limit: int):
    """``{test set: problem rows}`` from the problem file or the preset's generated test sets; one-line errors."""
    import os

    from physlm.presets import resolve
    from physlm.stages import generate
    from physlm.stages.evaluate import read_problem_file, read_test_sets, require_local_folder, test_sets
    from physlm.store.steps import CorruptStep, StepNotDone
    from physlm.store.storage import StorageError

    try:
        p = None if problems else resolve(preset, sets)
        require_local_folder(model_dir)  # before the problems: the folder is what the user typed
        if problems:
            rows = read_problem_file(problems)[: limit or None]
            return {os.path.splitext(os.path.basename(problems))[0]: rows}
        steps = {name: generate.dataset_step(p, name) for name in test_sets(p)}
        missing = [name for name, s in steps.items() if not s.done()]
        if missing:
            fail(f"test sets {', '.join(missing)} of preset {preset!r} are not generated yet: "
                 f"run `physlm generate --preset {preset}` first")  # fmt: skip
        return read_test_sets({name: s.path() for name, s in steps.items()}, limit)
    except (ConfigError, FileNotFoundError, ValueError, CorruptStep, StepNotDone, StorageError) as e:
        fail(" ".join(str(e).split())[:300])


def _model_to_evaluate(model_dir: str, tokenizer: str | None):
    from physlm.stages.evaluate import is_physlm_model, load_external, load_physlm

    try:
        return load_physlm(model_dir) if is_physlm_model(model_dir) else load_external(model_dir, tokenizer)
    except (FileNotFoundError, OSError, ValueError) as e:
        fail(" ".join(str(e).split())[:300])
