"""GPU runbook check: train GPT2-12-12 at context 768 on online iGSM-med data (spec C.1-C.2), evaluate and probe it.

    python benchmarks/gpu_train.py [--steps 300 --batch 64 --micro 32 --workers 8]   # on a CUDA machine
    torchrun --nproc_per_node 8 benchmarks/gpu_train.py ...                         # DDP
    python benchmarks/gpu_train.py --dry-run                                         # CPU smoke, tiny model
    python benchmarks/gpu_train.py --family tiny --model GPT2-2-2 --n-ctx 256 --loss-on solution \
        --lr 3e-3 --warmup 100 --steps 4000 --probe-tasks nece,known                # the tiny recipe, longer

Runs ``physlm.train.train`` as is (bf16 autocast, torch.compile, fused AdamW, SDPA/flash attention) with
``OnlineProblems`` generating problems in DataLoader workers, and prints tokens/s and MFU (6·N·tokens/s +
attention FLOPs over the GPU's dense bf16 peak: 989 TFLOP/s on H100) from the loop's own logs, the first
logging window (compilation) excluded. Also prints whether data generation keeps up: problems per second
one worker makes, against what the GPU consumes.

Then, on the trained weights: greedy fully-correct and answer accuracy, by op, on ``--eval`` fresh test-split
problems (template hash >= 17, the training op law), on as many fresh problems of the training templates
("test_seen") and at op = max_op; and the V-probes of ``--probe-tasks`` (``--probe-steps`` steps; trained on
train-split problems, tested on test-split ones) against the same probe on a randomly initialised model and
the majority class. ``--json PATH`` also writes every figure (loss curve included) to a JSON file. A short run
is far from the paper's 100k steps: the accuracies say how far this much training gets, the throughput is what
to plan a real run with.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from physlm import checkpoint, probe
from physlm import tokenizer as T
from physlm.data import OnlineProblems
from physlm.evaluate import EvalOptions, PhyslmCodec, evaluate_rows
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.config import family as named_family
from physlm.igsm.generate import generate
from physlm.model import ModelConfig
from physlm.presets import TINY
from physlm.scoring import accuracy_table
from physlm.shards import generate_shard
from physlm.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="GPT2-12-12")
    ap.add_argument("--n-ctx", type=int, default=768)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64, help="global sequences per step (paper: 512)")
    ap.add_argument("--micro", type=int, default=32, help="sequences per forward on one GPU")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--family", choices=("med", "hard", "tiny"), default="med", help="iGSM family trained on")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (spec C.2: 2e-3)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--loss-on", choices=("all", "solution"), default="all", help="the paper: all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe-tasks", default="nece", help="comma-separated V-probe tasks (spec C.5)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--eval", type=int, default=256, help="test problems per evaluation set (0: skip)")
    ap.add_argument("--probe-steps", type=int, default=2000,
                    help="V-probe steps per task and model (0: skip the probes)")
    ap.add_argument("--dry-run", action="store_true", help="tiny model, CPU, a few steps: checks the script runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tok = T.build_wordlevel()
    family: Family = TINY if args.family == "tiny" else named_family(args.family)
    if args.dry_run:
        args.model, args.n_ctx, args.steps, args.batch, args.micro, args.workers, args.log_every = (
            "GPT2-2-2", 256, 4, 4, 2, 0, 2)
        args.eval, args.probe_steps = min(args.eval, 8), min(args.probe_steps, 4)
        family = TINY
    gen = GenConfig(family=family)  # the train split, the paper's op law
    tasks = [t for t in args.probe_tasks.split(",") if t]
    for t in tasks:
        probe.ProbeConfig(task=t)  # an unknown task fails here, before training
    mc = ModelConfig.from_name(args.model, vocab_size=tok.vocab_size, n_ctx=args.n_ctx)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, micro_batch_size=args.micro, warmup=args.warmup,
                      ckpt_every=10 ** 9, log_every=args.log_every, loss_on=args.loss_on, lr=args.lr,
                      seed=args.seed, device="cpu" if args.dry_run else "auto", weight_decay=0.05)
    report: dict = {"args": vars(args), "family": family.name}

    # How fast one process makes problems (the generator is CPU-bound; see README §5).
    t, n = time.perf_counter(), 200
    for i in range(n):
        generate(gen, i)
    per_worker = n / (time.perf_counter() - t)

    data = OnlineProblems(gen, tok, num_workers=args.workers)
    t_train = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        res = train(mc, cfg, data, out, resume=False)
        model = checkpoint.load_model(out)
    t_train = time.perf_counter() - t_train
    hist = res["history"][1:] or res["history"]
    tok_s = statistics.median(h["tokens_per_s"] for h in hist)
    mfu = [h["mfu"] for h in hist if "mfu" in h]
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.dry_run else "cpu"
    print(f"{mc.name} n_ctx {mc.n_ctx} batch {args.batch} (micro {args.micro}) on {dev}: "
          f"{tok_s:,.0f} tokens/s" + (f", MFU {statistics.median(mfu):.1%}" if mfu else "") +
          f", final loss {res['loss']:.3f}")
    # ~ mean problem length of med in our word-level tokens is ~170 (GPT-2 BPE: ~338, spec A.8)
    need = tok_s / 170
    print(f"data: one worker makes {per_worker:,.0f} problems/s; the loop consumes ~{need:,.0f}/s "
          f"-> needs ~{need / per_worker:.1f} workers (have {args.workers})")
    report.update(device=dev, tokens_per_s=tok_s, mfu=statistics.median(mfu) if mfu else None, loss=res["loss"],
                  train_s=t_train, tokens_seen=res["tokens_seen"], problems_per_s_per_worker=per_worker,
                  history=res["history"])
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 evaluates and probes
    device = probe.resolve_device("cpu" if args.dry_run else "auto")
    model = model.to(device).eval()
    if args.eval:
        report["accuracy"] = evaluate(model, tok, gen, args.eval, mc.n_ctx)
    if args.probe_steps:
        report["probes"] = run_probes(model, tok, gen, tasks, args.probe_steps, device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


def evaluate(model, tok, gen: GenConfig, n: int, n_ctx: int) -> list[dict]:
    """Greedy accuracy, by op, on fresh problems: test-split templates ("test_id") and training templates
    ("test_seen", other seeds than training's), both under the training op law, and test-split at op = max_op."""
    top = gen.family.max_op
    sets = {"test_id": gen.with_(split="test"), "test_seen": gen.with_(split="train"),
            f"test_op{top}": gen.with_(split="test", op=top)}
    rows = []
    t = time.perf_counter()
    for name, g in sets.items():
        problems = generate_shard(g, 1, name, 0, n).to_pylist()  # seeded (1, name, 0): not a training seed
        rows += evaluate_rows(model, PhyslmCodec(tok), problems, name, "gpu_train",
                              opts=EvalOptions(batch_size=64, max_new_tokens=n_ctx // 2))
    acc = accuracy_table(rows)
    for a in acc:
        if a["op"] == -1 or a["test_set"] != f"test_op{top}":
            print(f"eval {a['test_set']} op {'all' if a['op'] == -1 else a['op']}: fully correct "
                  f"{a['accuracy']:.1%} (CI {a['ci_low']:.1%}-{a['ci_high']:.1%}), answers "
                  f"{a['answer_accuracy']:.1%}, n={a['n']}")
    print(f"eval: {len(rows)} generations in {time.perf_counter() - t:.0f} s")
    return acc


def run_probes(model, tok, gen: GenConfig, tasks: list[str], steps: int, device: torch.device) -> list[dict]:
    """The V-probe ``tasks`` (spec C.5) on this model and on a random-init one of the same shape, all on the same
    train-split and test-split problems."""
    train_rows = generate_shard(gen.with_(split="train"), 2, "probe_train", 0, max(64, steps // 2)).to_pylist()
    test_rows = generate_shard(gen.with_(split="test"), 2, "probe_test", 0, 128).to_pylist()
    models = (("vprobe", model), ("random_init", probe.random_init_like(model, 1)))  # run_probe moves them
    out = []
    for task in tasks:
        cfg = probe.ProbeConfig(task=task, steps=steps, batch_size=64, lr=2e-3, device=device.type)
        t = time.perf_counter()
        for name, m in models:
            metrics = probe.run_probe(m, tok, train_rows, test_rows, cfg, "gpu_train", name)[1]
            r = next(x for x in metrics if x["slice"] == "all")
            print(f"probe {task} {name}: accuracy {r['accuracy']:.1%} (majority {r['majority_accuracy']:.1%}), "
                  f"MCC {r['mcc'] if r['mcc'] is not None else float('nan'):.3f}, n={r['n']}")
            out += [{**x, "model": name} for x in metrics]
        print(f"probe {task}: {time.perf_counter() - t:.0f} s")
    return out


if __name__ == "__main__":
    main()
