"""Probe-recipe harness: one probe task's V-probe and its random-init baseline on a finished model, several probe
seeds, under a variant of the preset's probe recipe; every result kept as a JSON line.

    python benchmarks/probe_recipe.py --root DIR --name base --seeds 0,1,2
    python benchmarks/probe_recipe.py --root DIR --name balanced --set probe.balanced=true --seeds 0,1,2
    python benchmarks/probe_recipe.py --root DIR --preset tiny-pretrained --name base --seeds 0,1
    python benchmarks/probe_recipe.py --table                  # the results as a markdown table

``DIR`` is a root where ``physlm run --preset P`` (default ``tiny``) has trained its model and generated its
data; ``--set`` takes the overrides that run was made with (if any) and the variant's ``probe.key=value`` ones,
which vary the probe recipe only (steps, lr, batch size, training problems, balanced samples, rank ...). Each
seed runs the ``--task`` V-probe (default ``nece``, layer -1: after the final LayerNorm) and the same probe on
the random-init model, in the probe stage's own pool (``physlm.stages.probe.fit``), and scores both on each of
the preset's ``probe.test_sets``. The probe seed draws the probe's samples, its init and its batch order, so
several seeds show how much of an MCC is the probe's luck rather than the model's.

Each (seed) result is appended to ``benchmarks/results/probe_recipe.jsonl``: variant, overrides, seed, the
model's checkpoint id, git SHA (and whether the tree was dirty), the machine, wall time, and MCC / accuracy /
majority accuracy / n of every (test set, baseline).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import time
from collections import defaultdict
from datetime import UTC, datetime

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from physlm import machine
from physlm.config import ConfigError
from physlm.presets import resolve
from physlm.stages import probe
from physlm.store.steps import StepNotDone

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "probe_recipe.jsonl")
PROBE_KEYS = (
    "steps",
    "lr",
    "warmup",
    "batch_size",
    "weight_decay",
    "rank",
    "train_problems",
    "test_problems",
    "balanced",
)
"""The recipe fields each result records."""


def git_state() -> tuple[str, bool]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))


def load(root: str, preset_name: str, overrides: list[str]):
    """The preset with the root's and the variant's overrides, and the probe stage's inputs on ``root`` (they must
    be finished: ``load_inputs`` refuses an unfinished or missing step)."""
    os.environ["PHYSLM_ROOT"] = root
    preset = resolve(preset_name, overrides)
    return preset, probe.load_fit_inputs(probe.probe_step(preset))


def run_seed(cfg, x, task: str, seed: int) -> tuple[dict, float]:
    """``{test_set: {baseline: metrics of the slice "all"}}`` of one probe seed, and its wall time."""
    one = dataclasses.replace(cfg, tasks=(task,), layers=(), baselines=("random_init",), seed=seed)
    t = time.perf_counter()
    _, metrics, _ = probe.fit(one, x)
    wall = time.perf_counter() - t
    out: dict = defaultdict(dict)
    for m in metrics:
        if m["slice"] == "all":
            out[m["test_set"]][m["baseline"]] = {k: m[k] for k in ("mcc", "accuracy", "majority_accuracy", "n")}
    return dict(out), wall


def record(args, preset, x, seed: int, scores: dict, wall: float) -> dict:
    sha, dirty = git_state()
    return {
        "variant": args.name,
        "preset": args.preset,
        "overrides": args.set,
        "task": args.task,
        "seed": seed,
        "checkpoint_id": x.cid,
        "probe": {k: getattr(preset.probe, k) for k in PROBE_KEYS},
        "git_sha": sha,
        "dirty": dirty,
        "machine": machine.describe(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "scores": scores,
    }


def table(path: str = RESULTS) -> str:
    """Markdown: one row per (variant, model, task, test set), MCC per seed of the V-probe and of random-init."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            for test_set, by in r["scores"].items():
                groups[(r["variant"], r["checkpoint_id"][:12], r["task"], test_set)].append(by | {"seed": r["seed"]})
    cols = ("variant", "model", "task", "test set", "seeds", "V-probe MCC per seed", "mean")
    cols += ("random-init MCC per seed", "mean margin")
    rows = ["| " + " | ".join(cols) + " |", "| " + " | ".join(["---"] * len(cols)) + " |"]
    for (variant, cid, task, test_set), runs in groups.items():
        v = [r["vprobe"]["mcc"] or 0.0 for r in runs]
        b = [r["random_init"]["mcc"] or 0.0 for r in runs]
        margin = statistics.mean(a - c for a, c in zip(v, b, strict=True))
        rows.append(
            f"| {variant} | {cid} | {task} | {test_set} | {','.join(str(r['seed']) for r in runs)} | "
            f"{' / '.join(f'{a:.3f}' for a in v)} | {statistics.mean(v):.3f} | "
            f"{' / '.join(f'{c:.3f}' for c in b)} | {margin:+.3f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="a root where `physlm run --preset PRESET` has trained its model")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--name", help="the variant's name in the results file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--task", default="nece")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--results", default=RESULTS)
    ap.add_argument("--table", action="store_true", help="print the results file as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(args.results))
        return
    if not args.root or not args.name:
        ap.error("--root and --name are needed to run a variant")
    try:
        preset, x = load(args.root, args.preset, args.set)
    except (ConfigError, StepNotDone) as e:
        raise SystemExit(f"probe_recipe: {e}") from None
    for seed in (int(s) for s in args.seeds.split(",")):
        scores, wall = run_seed(preset.probe, x, args.task, seed)
        row = record(args, preset, x, seed, scores, wall)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        summary = ", ".join(
            f"{ts}: {by['vprobe']['mcc']:.3f} vs {by['random_init']['mcc']:.3f}" for ts, by in scores.items()
        )
        print(f"{args.name} seed {seed} ({wall:.0f} s): {args.task} MCC {summary}", flush=True)


if __name__ == "__main__":
    main()
