"""The ``physlm`` command line (typer). Commands that need no orchestration live here directly:

    physlm sample --family med --count N --seed S [--op K] [--format pq|qp] [--split train|test] [--reask]
    physlm check [--input FILE|-]

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


def main() -> None:  # pragma: no cover - console entry point
    app()
