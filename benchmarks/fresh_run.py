"""Fresh-run harness: `physlm run` on a fresh root, timed from outside, and the figures of the finished root kept
as one JSON line, so that every fresh run the README quotes is a record in the repo, not a hand-typed row.

    python benchmarks/fresh_run.py --name run-11                  # fresh root, fresh caches, `physlm run --preset tiny`
    python benchmarks/fresh_run.py --name run-11 --root DIR       # the same, into DIR (it must not hold a study yet)
    python benchmarks/fresh_run.py --name run-11 --record DIR [--wall SECONDS]   # a root a run has finished
    python benchmarks/fresh_run.py --table                        # the results as the README's markdown table

A fresh run starts from nothing a previous run left: a new root (``--root``, default a new folder under the
system's temporary directory), a new ``PREFECT_HOME`` (Prefect's ephemeral server and its migrations, unless
``PREFECT_API_URL`` names a server) and an empty ``TORCHINDUCTOR_CACHE_DIR`` (torch's compiled kernels;
``--warm-compile-cache`` keeps the user's). Its wall time is the whole command's, Prefect's start-up included.
``--record`` reads a root a run has finished (by hand, or by this script) without running anything; its wall time
is then the given ``--wall`` (unknown without).

Each run appends to ``benchmarks/results/fresh_runs.jsonl``: name, preset, overrides, git SHA of the checkout and
of the model's train step (and whether the tree was dirty), the machine, wall time and seconds per stage (from
the steps' step.json times), the model's training (steps, tokens, final loss, median tokens/s), fully-correct accuracy
of every test set pooled and by op with Wilson 95 % intervals (greedy), the MCC of every probe (V-probe and each
baseline, per test set and layer, on all examples), and E8 (the ``can_next`` probe saying "not ready" before the
first wrong step of wrong solutions).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from probe_recipe import git_state

from physlm import machine, plan
from physlm.config import ConfigError
from physlm.presets import resolve
from physlm.store import storage
from physlm.store.steps import StepNotDone, read_info, require_done

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "fresh_runs.jsonl")
QUIET_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1",
             "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # fmt: skip


class HarnessError(Exception):
    """One line for the user: what is wrong with the arguments or the root."""


def fresh_env(root: str, scratch: str, warm_cache: bool) -> dict:
    """The environment of a fresh run into ``root``: its own Prefect home and, unless kept warm, compile cache,
    both under ``scratch``."""
    env = {**os.environ, **QUIET_ENV, "PHYSLM_ROOT": root}
    if not env.get("PREFECT_API_URL"):
        env["PREFECT_HOME"] = os.path.join(scratch, "prefect")
    if not warm_cache:
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(scratch, "inductor")
    return env


def run_study(root: str, preset: str, overrides: list[str], warm_cache: bool) -> float:
    """`physlm run` (the flows' command line) into ``root``; its wall seconds. Its output goes to the terminal."""
    if os.path.exists(root) and os.listdir(root):
        raise HarnessError(f"--root {root} is not empty: a fresh run starts from an empty root (--record reads one)")
    sets = [x for kv in overrides for x in ("--set", kv)]
    cmd = [sys.executable, "-m", "flows", "run", "--preset", preset, *sets]
    with tempfile.TemporaryDirectory(prefix="physlm-fresh-run-") as scratch:
        t = time.perf_counter()
        done = subprocess.run(cmd, env=fresh_env(root, scratch, warm_cache), cwd=os.path.dirname(HERE))
        wall = time.perf_counter() - t
    if done.returncode != 0:
        raise HarnessError(f"`physlm run` exited with {done.returncode} after {wall:.0f} s; nothing recorded")
    return wall


def finished_steps(root: str, preset: str, overrides: list[str]) -> list[tuple[str, str, dict]]:
    """``(stage, step path, step.json)`` of every step of the study on ``root``; all must be finished."""
    os.environ["PHYSLM_ROOT"] = root
    steps = plan.steps(resolve(preset, overrides))
    return [(stage, step.path(), read_info(step.path())) for stage, step in steps]


def _parquet_rows(step_path: str, name: str) -> list[dict]:
    return storage.read_parquet(storage.join(require_done(step_path), name)).to_pylist()


def accuracy(evaluate_path: str) -> dict:
    """``{test_set: {"all": cell, "by_op": {op: cell}}}`` of greedy decoding; cell = n, correct, accuracy, CI."""
    out: dict = defaultdict(lambda: {"by_op": {}})
    for r in _parquet_rows(evaluate_path, "accuracy.parquet"):
        if r["decoding"] != "greedy":
            continue
        cell = {k: r[k] for k in ("n", "correct", "accuracy", "ci_low", "ci_high")}
        if r["op"] == -1:
            out[r["test_set"]]["all"] = cell
        else:
            out[r["test_set"]]["by_op"][str(r["op"])] = cell
    return dict(out)


def probes(probe_path: str) -> list[dict]:
    """Every probe's MCC and accuracy on all its test examples: task, test set, layer, baseline."""
    keys = ("task", "test_set", "layer", "baseline", "n", "mcc", "accuracy", "majority_accuracy")
    rows = [{k: r.get(k) for k in keys} for r in _parquet_rows(probe_path, "probe_metrics.parquet")
            if r["slice"] == "all"]  # fmt: skip
    return sorted(rows, key=lambda r: (r["task"], r["test_set"] or "", r["layer"], r["baseline"]))


def not_ready(analyze_path: str) -> dict | None:
    """E8 pooled over the test sets for the ``can_next`` probe: matched first-wrong steps and the share it calls
    not ready, with its Wilson interval; None where the query found no wrong step."""
    keys = ("n_wrong", "n_matched", "share_probe_false", "ci_low", "ci_high")
    for r in _parquet_rows(analyze_path, "error_not_ready.parquet"):
        if r["task"] == "can_next" and r["test_set"] == "all":
            return {k: r[k] for k in keys}
    return None


def stage_seconds(steps: list[tuple[str, str, dict]], wall: float | None) -> dict:
    """Seconds of each stage in the run's timeline: from the end of the stage before (its last step) to the end of
    its own last step, as `physlm run` runs them one after the other (a step's own step.json "seconds" covers only
    its final assembly where it is written in parts: shards, training). The first stage's time holds the run's
    start-up (Prefect, imports) too, and is known only from the wall time (None without)."""
    ends: dict[str, datetime] = {}
    for stage, _, info in steps:
        ended = datetime.fromisoformat(info["ended_at"])
        ends[stage] = max(ends.get(stage, ended), ended)
    order = list(ends)
    out = {b: (ends[b] - ends[a]).total_seconds() for a, b in zip(order, order[1:])}
    out[order[0]] = round(wall - (ends[order[-1]] - ends[order[0]]).total_seconds(), 1) if wall is not None else None
    return {k: out[k] for k in order}


def record(name: str, root: str, preset: str, overrides: list[str], wall: float | None) -> dict:
    """The JSON line of a finished study on ``root``."""
    steps = finished_steps(root, preset, overrides)
    stage_s = stage_seconds(steps, wall)
    path = {stage: p for stage, p, _ in steps}  # one step per stage after generate
    info = {stage: i for stage, _, i in steps}
    summary = info["train"].get("train_summary", {})
    tok_s = [h["tokens_per_s"] for h in summary.get("history", [])[1:]]  # the first window pays compilation
    sha, dirty = git_state()
    return {
        "name": name,
        "preset": preset,
        "overrides": overrides,
        "git_sha": sha,
        "dirty": dirty,
        "train_git_sha": info["train"]["code"]["git_sha"][:7],
        "machine": summary.get("machine") or machine.describe(),
        "host": info["train"]["host"],
        "date": min(i["started_at"] for _, _, i in steps),
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1) if wall is not None else None,
        "stage_s": stage_s,
        "train": {
            "step": summary.get("step"),
            "tokens": summary.get("tokens_seen"),
            "final_loss": summary.get("loss"),
            "tokens_per_s": round(statistics.median(tok_s)) if tok_s else None,
            "installed": "pretrained" in summary,
        },
        "accuracy": accuracy(path["evaluate"]),
        "probes": probes(path["probe"]),
        "e8_can_next": not_ready(path["analyze"]),
    }


def append(row: dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def _pct(cell: dict | None, ci: bool = False) -> str:
    if not cell or not cell["n"]:
        return "–"
    text = f"{100 * cell['accuracy']:.1f} %"
    return f"{text} ({100 * cell['ci_low']:.1f}–{100 * cell['ci_high']:.1f})" if ci else text


def _minutes(s: float | None) -> str:
    return "–" if s is None else f"{int(s // 60)} min {round(s % 60):02d} s"


def _nece(r: dict, test_set: str) -> str:
    mcc = {p["baseline"]: p["mcc"] for p in r["probes"]
           if p["task"] == "nece" and p["test_set"] == test_set and p["layer"] == -1}  # fmt: skip
    if "vprobe" not in mcc:
        return "–"
    base = mcc.get("random_init")
    return f"{mcc['vprobe'] or 0:.3f} vs {base or 0:.3f}" if base is not None else f"{mcc['vprobe'] or 0:.3f}"


def table(path: str = RESULTS) -> str:
    """Markdown: one row per fresh run."""
    cols = ("run", "commit, machine", "wall (train / evaluate / probe)", "`test_seen`", "op 1 / 2 / 3 / 4")
    cols += ("`test_reask_seen`", "`test_id`", "`nece` MCC `test_id`", "`nece` MCC `test_seen`", "E8 `can_next`")
    rows = ["| " + " | ".join(cols) + " |", "| " + " | ".join(["---"] * len(cols)) + " |"]
    with open(path) as f:
        rows += [table_row(json.loads(line)) for line in f]
    return "\n".join(rows)


def table_row(r: dict) -> str:
    """The table's line of one recorded run."""
    acc, s = r["accuracy"], r["stage_s"]
    seen = acc.get("test_seen", {})
    ops = " / ".join(_pct(seen.get("by_op", {}).get(str(k))) for k in (1, 2, 3, 4))
    stages = " / ".join(_minutes(s.get(k)) for k in ("train", "evaluate", "probe"))
    e8 = r["e8_can_next"]
    e8_text = f"{100 * e8['share_probe_false']:.1f} % of {e8['n_matched']}" if e8 and e8["n_matched"] else "–"
    return (
        f"| {r['name']} | {r['train_git_sha']}{'+' if r['dirty'] else ''}, {r['machine']} | "
        f"{_minutes(r['wall_s'])} ({stages}) | {_pct(seen.get('all'), ci=True)} | {ops} | "
        f"{_pct(acc.get('test_reask_seen', {}).get('all'))} | {_pct(acc.get('test_id', {}).get('all'))} | "
        f"{_nece(r, 'test_id')} | {_nece(r, 'test_seen')} | {e8_text} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", help="the run's name in the results file")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--root", help="where the fresh run writes (default: a new temporary folder)")
    ap.add_argument("--record", metavar="ROOT", help="record a root a run has finished; run nothing")
    ap.add_argument("--wall", type=float, help="with --record: the run's measured wall seconds")
    ap.add_argument("--warm-compile-cache", action="store_true", help="keep torch's compile cache (not fresh)")
    ap.add_argument("--results", default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the results file as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(args.results))
        return
    if not args.name:
        ap.error("--name is needed to run or record")
    try:
        if args.record:
            root, wall = os.path.abspath(args.record), args.wall
        else:
            root = os.path.abspath(args.root or tempfile.mkdtemp(prefix="physlm-fresh-root-"))
            resolve(args.preset, args.set)  # a bad override fails here, in one line, before any work
            wall = run_study(root, args.preset, args.set, args.warm_compile_cache)
        row = record(args.name, root, args.preset, args.set, wall)
    except (ConfigError, StepNotDone, HarnessError) as e:
        raise SystemExit(f"fresh_run: {e}") from None
    append(row, args.results)
    print(f"recorded {row['name']} (root {root}) in {args.results}:\n{table_row(row)}")


if __name__ == "__main__":
    main()
