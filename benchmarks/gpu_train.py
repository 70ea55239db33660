"""GPU runbook check: a preset's study run through its own steps on one machine, with the figures a GPU run is for.

    python benchmarks/gpu_train.py --preset med-pq --set train.steps=300 --set train.batch_size=64 \
        --set train.micro_batch_size=32 --set train.data_workers=12 --upto probe --json fig.json
    python benchmarks/gpu_train.py --preset tiny --set train.steps=8000 --set train.compile=auto \
        --out physlm/pretrained/tiny-gpu                           # keep the model (whole loss compiled on CUDA)
    python benchmarks/gpu_train.py --dry-run                     # CPU smoke: the tiny preset, a few steps

No pipeline of its own: it plans the preset's steps (physlm.plan) up to ``--upto`` and runs each with its
stage's runner (physlm.stages), exactly what ``physlm run`` does without Prefect, in ``--root`` (default
./physlm-gpu; an ``s3://`` root works too). On CUDA the train stage runs bf16 autocast, torch.compile, fused
AdamW and SDPA/flash attention (physlm/model/train.py); ``train.data_workers`` DataLoader processes generate
the online problems. Then it prints what the steps recorded:

* training: median tokens/s and MFU (6·N·tokens/s + attention FLOPs over the device's dense bf16 peak, e.g.
  989 TFLOP/s on an H100/H200) of the logging windows after the first (compilation), the final loss, and
  whether data generation keeps up (problems one process makes per second against what training consumes);
* evaluation: greedy fully-correct and answer accuracy of every test set, pooled and by op;
* probes: each V-probe of the trained model against random-init and the majority class.

``--json PATH`` writes every figure (loss curve included); ``--out DIR`` writes the trained model there as a
pretrained folder (physlm/store/pretrained.py: the model folder and its card.json), which ``--set
train.pretrained=DIR`` installs as that train step's output on any machine (or ship it under
physlm/pretrained/). A short run is far from the paper's 100k steps: the
accuracies say how far this much training gets, the throughput is what to plan a real run with.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DRY = [
    "data.train_shards=1",
    "data.problems_per_shard=16",
    "data.test_problems=8",
    "data.seen_problems=0",
    "data.processes=0",
    "model.shape=GPT2-2-2",
    "model.n_ctx=256",
    "train.steps=4",
    "train.compile=off",
    "train.batch_size=4",
    "train.micro_batch_size=2",
    "train.ckpt_every=4",
    "train.log_every=2",
    "train.device=cpu",
    "evaluate.limit=8",
    "evaluate.max_new_tokens=32",
    "probe.steps=4",
    "probe.batch_size=8",
    "probe.train_problems=8",
    "probe.test_problems=8",
    "probe.tasks=nece,known",
    "probe.layers=",
    "probe.device=cpu",
    "probe.compile=off",
]
"""The dry run: the tiny preset shrunk to seconds on a CPU (later --set options win)."""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="med-pq")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--upto", default="probe", choices=("train", "evaluate", "probe", "analyze"))
    ap.add_argument("--root", default="./physlm-gpu", help="PHYSLM_ROOT of this run")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--out", default=None, help="write the trained model here as a pretrained folder (with its card)")
    ap.add_argument("--dry-run", action="store_true", help="the tiny preset, CPU, a few steps: checks the script runs")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["PHYSLM_ROOT"] = args.root

    from physlm import plan, stages
    from physlm.config import ConfigError
    from physlm.presets import resolve

    preset, sets = ("tiny", DRY + args.sets) if args.dry_run else (args.preset, args.sets)
    try:
        p = resolve(preset, sets)  # a bad key or value fails here, before any work
        stages.train.check_preset(p)
    except ConfigError as e:
        sys.exit(f"gpu_train: error: {e}")
    report: dict = {"preset": preset, "overrides": sets, "family": p.data.family.name}
    paths, seconds = {}, {}
    for name, step in plan.steps(p, args.upto):
        t = time.perf_counter()
        paths[name] = stages.get(name).run(step)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
    report["stage_seconds"] = seconds
    report.update(training(paths["train"], p))
    if "evaluate" in paths:
        report["accuracy"] = accuracy(paths["evaluate"])
    if "probe" in paths:
        report["probes"] = probes(paths["probe"])
    if args.out:
        export(p, paths, args.out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


def training(path: str, p) -> dict:
    """Throughput, MFU, loss and the data-generation budget from the train step's record."""
    from physlm.igsm.generate import generate
    from physlm.store.steps import read_info

    summary = read_info(path)["train_summary"]
    hist = summary["history"][1:] or summary["history"]
    tok_s = statistics.median(h["tokens_per_s"] for h in hist)
    mfu = [h["mfu"] for h in hist if "mfu" in h]
    dev = _device(p)
    print(
        f"{p.model.name} n_ctx {p.model.n_ctx} batch {p.train.batch_size} (micro "
        f"{p.train.micro_batch_size or p.train.batch_size}) on {dev}: {tok_s:,.0f} tokens/s"
        + (f", MFU {statistics.median(mfu):.1%}" if mfu else "")
        + f", final loss {summary['loss']:.3f}"
    )
    gen = p.data.datasets()["train"][0]
    t, n = time.perf_counter(), 100
    for i in range(n):
        generate(gen, i)
    per_worker = n / (time.perf_counter() - t)
    need = tok_s / _mean_tokens(gen)
    print(
        f"data: one process makes {per_worker:,.0f} problems/s; training consumes ~{need:,.0f}/s -> needs "
        f"~{need / per_worker:.1f} data workers (train.data_workers={p.train.data_workers})"
    )
    return {
        "device": dev,
        "tokens_per_s": tok_s,
        "mfu": statistics.median(mfu) if mfu else None,
        "loss": summary["loss"],
        "tokens_seen": summary["tokens_seen"],
        "history": summary["history"],
        "problems_per_s_per_worker": per_worker,
    }


def _device(p) -> str:
    import torch

    cuda = torch.cuda.is_available() and p.train.device != "cpu"
    return torch.cuda.get_device_name() if cuda else "cpu"


def _mean_tokens(gen, n: int = 50) -> float:
    from physlm.igsm.generate import generate
    from physlm.model.data import encode_units
    from physlm.model.tokenizer import build_wordlevel

    probs = [generate(gen, 10_000 + i) for i in range(n)]
    units = encode_units(
        build_wordlevel(), [x.problem for x in probs], [x.solution for x in probs], [x.answer for x in probs]
    )
    return sum(len(u.ids) for u in units) / n


def accuracy(path: str) -> list[dict]:
    from physlm.store import storage

    rows = storage.read_parquet(storage.join(path, "accuracy.parquet")).to_pylist()
    for a in rows:
        print(
            f"eval {a['test_set']} op {'all' if a['op'] == -1 else a['op']}: fully correct {a['accuracy']:.1%} "
            f"(CI {a['ci_low']:.1%}-{a['ci_high']:.1%}), answers {a['answer_accuracy']:.1%}, n={a['n']}"
        )
    return rows


def probes(path: str) -> list[dict]:
    from physlm.store import storage

    rows = [
        m for m in storage.read_parquet(storage.join(path, "probe_metrics.parquet")).to_pylist() if m["slice"] == "all"
    ]
    for r in rows:
        mcc = "nan" if r["mcc"] is None else f"{r['mcc']:.3f}"
        print(
            f"probe {r['task']} layer {r['layer']} {r['baseline']} on {r['test_set']}: accuracy {r['accuracy']:.1%} "
            f"(majority {r['majority_accuracy']:.1%}), MCC {mcc}, n={r['n']}"
        )
    return rows


def export(p, paths: dict, out: str) -> None:
    """The pretrained folder (physlm/store/pretrained.py): the model folder transformers and physlm load, and its
    card (train step id, the preset sections, loss curve, machine, accuracy by op)."""
    from physlm.store import pretrained

    card = pretrained.export(p, paths["train"], out, paths.get("evaluate"))
    print(f"model: {out} ({', '.join(sorted(card['files']))}, {pretrained.CARD}) = {card['train_step']}")


if __name__ == "__main__":
    main(sys.argv[1:])
