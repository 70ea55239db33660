"""Learnability harness: train a variant of a preset for a fixed budget, measure what it solves, keep the result.

    python benchmarks/learnability.py --name canon-AC --set model.canon=AC --steps 1500 --seeds 0,1
    python benchmarks/learnability.py --name base --minutes 8           # equal wall time (calibrated first)
    python benchmarks/learnability.py --table                           # the results as a markdown table
    python benchmarks/learnability.py --readme                          # ... written into README.md

A variant is a preset (default ``tiny``) plus ``--set key=value`` overrides: every knob of the pipeline
(model shape and options, training recipe, the family and op law of the data) is one, so a variant run here
is exactly what ``physlm run --preset P --set ...`` would train. Each seed trains with the real
``physlm.model.train.train`` loop on online problems of the preset's training data, for ``--steps`` optimizer
steps, ``--tokens`` tokens, or ``--minutes`` of wall time (a short calibration run measures the step rate
first; the LR schedule then spans the steps that fit).

Then greedy decoding (batched, KV cache) on fresh problems, ``--per-op`` for each op 1..max_op, from the
training templates ("seen": template hash < train_bins, the generator's forced-op sets) and from the test
templates ("unseen"), always the same problems for every variant and seed (paired comparisons), judged by
the checker: fully correct and correct-answer counts with Wilson 95 % intervals, by op.

Every result is appended as one JSON line to ``benchmarks/results/learnability.jsonl`` (variant, overrides,
seed, git SHA and whether the tree was dirty, budget, loss curve, tokens/s, accuracies). The README's
variant table is generated from that file (``--readme``), so each claim there points at a line here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from physlm import machine, presets
from physlm.igsm import record
from physlm.igsm.config import GenConfig
from physlm.igsm.generate import generate
from physlm.model.data import encode_units, online
from physlm.model.scoring import wilson
from physlm.model.train import train
from physlm.model.weights import PositionWeights
from physlm.stages import generate as gen_stage
from physlm.stages import train as train_stage
from physlm.stages.evaluate import EvalOptions, PhyslmCodec, evaluate_rows
from physlm.store.shards import problem_seed, shard_seed

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "learnability.jsonl")
README = os.path.join(os.path.dirname(HERE), "README.md")
BEGIN, END = "<!-- learnability:begin -->", "<!-- learnability:end -->"
EVAL_SEED = 7919
"""Base seed of the evaluation problems: the same for every variant, never a training seed's stream."""


# ---------------------------------------------------------------------------------------------------------
# Train


def setup(preset_name: str, overrides: list[str]):
    """(preset, tokenizer, model config, training GenConfig) of a variant."""
    p = presets.resolve(preset_name, overrides)
    tok = train_stage.tokenizer_for(p.tokenizer)
    gen = gen_stage.dataset_step(p, "train").config.gen
    return p, tok, p.model, gen


def steps_for_minutes(p, tok, mc, gen, minutes: float, threads: int) -> tuple[int, float]:
    """Steps that fit ``minutes`` of training, from the median step time of a 40-step calibration run."""
    cfg = dataclasses.replace(p.train, steps=40, ckpt_every=40, log_every=10, progress=False, num_threads=threads)
    with tempfile.TemporaryDirectory() as out:
        hist = train(mc, cfg, online(gen, tok, cfg), out, resume=False)["history"]
    rate = statistics.median(h["tokens_per_s"] for h in hist[1:]) / (cfg.batch_size * mc.n_ctx)  # steps/s
    return max(1, int(minutes * 60 * rate)), rate


def train_variant(p, tok, mc, gen, steps: int, seed: int, threads: int):
    """Train one seed; returns (model, summary, wall seconds)."""
    from physlm.store import checkpoint

    cfg = dataclasses.replace(
        p.train,
        steps=steps,
        seed=seed,
        ckpt_every=steps,
        log_every=max(1, steps // 30),
        progress=False,
        num_threads=threads,
    )
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        summary = train(mc, cfg, online(gen, tok, cfg), out, resume=False)
        wall = time.perf_counter() - t
        model = checkpoint.load_model(out)
    return model, summary, wall


# ---------------------------------------------------------------------------------------------------------
# Evaluate


def eval_problems(gen: GenConfig, split: str, op: int, n: int) -> list[dict]:
    """``n`` fresh problems of ``op`` from the training ("seen") or test ("unseen") templates, as records."""
    cfg = gen.with_(split="train" if split == "seen" else "test", op=op, reask=False, retry_rate=0.0)
    s = shard_seed(EVAL_SEED, f"learnability-{split}-op{op}", 0)
    return [
        record.row(generate(cfg, problem_seed(s, j)), f"{split}-op{op}-{j}", split, gen.train_bins) for j in range(n)
    ]


def evaluate(model, tok, gen: GenConfig, per_op: int, max_new_tokens: int, splits=("seen", "unseen")) -> dict:
    """``{split: {op: {n, correct, answers, ci_low, ci_high}}}`` (greedy, fully correct and answer)."""
    out: dict = {}
    for split in splits:
        out[split] = {}
        for op in range(1, gen.family.max_op + 1):
            rows = eval_problems(gen, split, op, per_op)
            gens = evaluate_rows(
                model,
                PhyslmCodec(tok),
                rows,
                split,
                "harness",
                opts=EvalOptions(batch_size=64, max_new_tokens=max_new_tokens),
            )
            k = sum(g["correct"] for g in gens)
            lo, hi = wilson(k, len(gens))
            out[split][str(op)] = {
                "n": len(gens),
                "correct": k,
                "answers": sum(g["answer_correct"] for g in gens),
                "ci_low": round(lo, 4),
                "ci_high": round(hi, 4),
                "errors": _top_errors(gens),
            }
    return out


@torch.no_grad()
def arith_accuracy(model, tok, gen: GenConfig, per_op: int) -> dict:
    """Teacher-forced accuracy of the arithmetic results (physlm/model/weights.py: the number after "<n> <op> <n>
    =") in the gold solutions of the seen evaluation problems, by operator: what the mod-23 tables hold,
    apart from whether the model plans its way to the step."""
    res = PositionWeights(tok)
    ops = {int(i): c for i, c in zip(res.ops, "+-*")}
    counts = {c: [0, 0] for c in "+-*"}  # operator -> [results, right]
    for op in range(2, gen.family.max_op + 1):
        rows = eval_problems(gen, "seen", op, per_op)
        units = encode_units(
            tok, [r["problem"] for r in rows], [r["solution"] for r in rows], [r["answer"] for r in rows]
        )
        for u in units:
            ids = torch.as_tensor(u.ids, dtype=torch.long)[None]
            at = res.results(ids)[0].nonzero()[:, 0]
            if not len(at):
                continue
            pred = model(input_ids=ids).logits[0, at - 1].argmax(-1)
            for t, ok in zip(at.tolist(), (pred == ids[0, at]).tolist()):
                c = counts[ops[int(ids[0, t - 3])]]
                c[0], c[1] = c[0] + 1, c[1] + ok
    out = {c: {"n": n, "correct": k} for c, (n, k) in counts.items()}
    n, k = sum(v[0] for v in counts.values()), sum(v[1] for v in counts.values())
    return {**out, "all": {"n": n, "correct": k}}


def _top_errors(gens: list[dict], k: int = 3) -> dict:
    counts: dict[str, int] = defaultdict(int)
    for g in gens:
        if not g["correct"] and g["error"]:
            counts[g["error"]] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:k])


# ---------------------------------------------------------------------------------------------------------
# Record


def git_state() -> tuple[str, bool]:
    def run(*cmd):
        return subprocess.run(cmd, cwd=HERE, capture_output=True, text=True).stdout.strip()

    return run("git", "rev-parse", "--short", "HEAD") or "unknown", bool(
        run("git", "status", "--porcelain", "--", "physlm")
    )


def append(result: dict, path: str = RESULTS) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(result, sort_keys=True) + "\n")


def summary_line(r: dict) -> str:
    def cell(split, op):
        c = r["eval"][split][op]
        return f"{100 * c['correct'] / c['n']:.0f}%"

    ops = sorted(r["eval"]["seen"], key=int)
    seen = " ".join(f"op{op} {cell('seen', op)}" for op in ops)
    unseen = " ".join(cell("unseen", op) for op in ops)
    arith = r.get("arith", {}).get("all")
    tf = f" | arithmetic {100 * arith['correct'] / max(arith['n'], 1):.0f}% of {arith['n']}" if arith else ""
    return (
        f"{r['variant']} seed {r['seed']}: seen {seen} | unseen {unseen}{tf} | loss {r['final_loss']:.3f} | "
        f"{r['tokens_per_s']:.0f} tok/s | {r['train_wall_s']:.0f} s"
    )


# ---------------------------------------------------------------------------------------------------------
# Table


def load_results(path: str = RESULTS) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def table(results: list[dict]) -> str:
    """One row per (variant, model, overrides, budget): seeds, fully correct by op on seen templates (the seeds'
    problems pooled, with the Wilson interval of the pooled counts: it does not show the spread between seeds),
    unseen templates pooled, teacher-forced arithmetic results right (pooled), mean final loss, tokens/s and
    training minutes (compilation included)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        key = (r["variant"], r["preset"], model_label(r), tuple(recipe(r)), r["steps"], r["batch_size"])
        groups[key].append(r)
    max_op = max((len(r["eval"]["seen"]) for r in results), default=4)
    head = ["variant", "model", "overrides", "steps × batch", "seeds"] + [
        f"op {k} (seen)" for k in range(1, max_op + 1)
    ]
    head += ["unseen templates", "arithmetic (TF)", "loss", "tok/s", "train min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (variant, _preset, model, overrides, steps, batch), rs in groups.items():
        seeds = ",".join(str(r["seed"]) for r in rs)
        cells = []
        for k in range(1, max_op + 1):
            cs = [r["eval"]["seen"].get(str(k)) for r in rs]
            if any(c is None for c in cs):
                cells.append("–")
                continue
            n, ok = sum(c["n"] for c in cs), sum(c["correct"] for c in cs)
            lo, hi = wilson(ok, n)
            cells.append(f"{100 * ok / n:.0f}% ({100 * lo:.0f}–{100 * hi:.0f})")
        un_n = sum(c["n"] for r in rs for c in r["eval"]["unseen"].values())
        un_ok = sum(c["correct"] for r in rs for c in r["eval"]["unseen"].values())
        lines.append(
            "| "
            + " | ".join(
                [
                    variant,
                    model,
                    " ".join(f"`{o}`" for o in overrides) or "–",
                    f"{steps} × {batch}",
                    seeds,
                    *cells,
                    f"{100 * un_ok / max(un_n, 1):.1f}%",
                    _arith_cell(rs),
                    f"{statistics.mean(r['final_loss'] for r in rs):.3f}",
                    f"{statistics.mean(r['tokens_per_s'] for r in rs):.0f}",
                    f"{statistics.mean(r['train_wall_s'] for r in rs) / 60:.1f}",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _arith_cell(rs: list[dict]) -> str:
    """Teacher-forced arithmetic results right, the seeds pooled ("–" for runs recorded before it was measured)."""
    cs = [r["arith"]["all"] for r in rs if "arith" in r]
    if len(cs) < len(rs):
        return "–"
    return f"{100 * sum(c['correct'] for c in cs) / max(sum(c['n'] for c in cs), 1):.0f}%"


SPEED_KNOBS = ("train.compile=", "train.num_threads=")
"""Overrides that change how fast a run trains, not what it learns (float rounding aside): not in the table."""


def recipe(r: dict) -> list[str]:
    """A run's overrides without the speed knobs."""
    return [o for o in r["overrides"] if not o.startswith(SPEED_KNOBS)]


def model_label(r: dict) -> str:
    """The trained shape and its Canon sites: from the recorded model config, or (records made before it was
    kept, when no preset had Canon layers) from the run's overrides."""
    canon = r.get("model_config", {}).get("canon")
    if canon is None:
        canon = next((o.split("=", 1)[1] for o in r["overrides"] if o.startswith("model.canon=")), "")
    return r["model"] + (f" + Canon {canon}" if canon else "")


def write_readme(text: str, path: str = README) -> None:
    with open(path) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{path}: no {BEGIN} ... {END} markers to write the table between")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w") as f:
        f.write(head + BEGIN + "\n" + text + END + tail)


# ---------------------------------------------------------------------------------------------------------
# Main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", help="the variant's name in the results (default: its overrides)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimizer steps (default: the preset's train.steps)")
    budget.add_argument("--tokens", type=float, help="training tokens (steps = tokens / (batch * n_ctx))")
    budget.add_argument("--minutes", type=float, help="wall time of training (calibrated first)")
    ap.add_argument("--seeds", default="0", help="training seeds, comma separated")
    ap.add_argument("--per-op", type=int, default=100, help="evaluation problems per op and template split")
    ap.add_argument("--max-new-tokens", type=int, default=0, help="decoding cap (default: the preset's)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: every core)")
    ap.add_argument("--results", default=RESULTS)
    ap.add_argument("--keep", metavar="DIR", help="also save each seed's model and tokenizer under DIR/seed<N>")
    ap.add_argument("--no-record", action="store_true", help="print only; append nothing to the results file")
    ap.add_argument("--table", action="store_true", help="print the results file as a markdown table, then exit")
    ap.add_argument("--readme", action="store_true", help="write that table into README.md, then exit")
    args = ap.parse_args(argv)

    if args.table or args.readme:
        text = table(load_results(args.results))
        print(text) if args.table else write_readme(text)
        return
    threads = args.threads or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    p, tok, mc, gen = setup(args.preset, args.sets)
    tokens_per_step = p.train.batch_size * mc.n_ctx
    if args.minutes:
        steps, rate = steps_for_minutes(p, tok, mc, gen, args.minutes, threads)
        print(f"calibration: {rate:.2f} steps/s -> {steps} steps in {args.minutes} min", flush=True)
    else:
        steps = args.steps or (int(args.tokens // tokens_per_step) if args.tokens else p.train.steps)
    sha, dirty = git_state()
    for seed in (int(s) for s in args.seeds.split(",")):
        model, summary, wall = train_variant(p, tok, mc, gen, steps, seed, threads)
        t = time.perf_counter()
        acc = evaluate(model, tok, gen, args.per_op, args.max_new_tokens or p.evaluate.max_new_tokens)
        arith = arith_accuracy(model, tok, gen, args.per_op)
        if args.keep:
            model.save_pretrained(os.path.join(args.keep, f"seed{seed}"))
            tok.save(os.path.join(args.keep, f"seed{seed}"))
        hist = summary["history"]
        result = {
            "variant": args.name or (" ".join(args.sets) or "baseline"),
            "preset": args.preset,
            "overrides": args.sets,
            "seed": seed,
            "git_sha": sha,
            "dirty": dirty,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "budget": "minutes" if args.minutes else ("tokens" if args.tokens else "steps"),
            "minutes": args.minutes,
            "steps": steps,
            "batch_size": p.train.batch_size,
            "n_ctx": mc.n_ctx,
            "tokens": steps * tokens_per_step,
            "model": mc.name,
            "model_config": mc.to_dict(),
            "params": mc.params(),
            "threads": threads,
            "host": platform.node(),
            "cpu": machine.describe(),
            "train_wall_s": round(wall, 1),
            "eval_wall_s": round(time.perf_counter() - t, 1),
            "tokens_per_s": round(steps * tokens_per_step / wall, 1),
            "final_loss": hist[-1]["loss"],
            "loss_curve": [[h["step"], round(h["loss"], 4)] for h in hist],
            "per_op": args.per_op,
            "eval": acc,
            "arith": arith,
        }
        print(summary_line(result), flush=True)
        if not args.no_record:
            append(result, args.results)


if __name__ == "__main__":
    main(sys.argv[1:])
