"""GPU runbook check: train GPT2-12-12 at context 768 on online iGSM-med data (spec C.1-C.2), then evaluate and probe it.

    python benchmarks/gpu_train.py [--steps 300 --batch 64 --micro 32 --workers 8]   # on a CUDA machine
    torchrun --nproc_per_node 8 benchmarks/gpu_train.py ...                         # DDP
    python benchmarks/gpu_train.py --dry-run                                         # CPU smoke, tiny model

Runs ``physlm.train.train`` as is (bf16 autocast, torch.compile, fused AdamW, SDPA/flash attention) with
``OnlineProblems`` generating problems in DataLoader workers, and prints tokens/s and MFU (6·N·tokens/s +
attention FLOPs over the GPU's dense bf16 peak: 989 TFLOP/s on H100) from the loop's own logs, the first
logging window (compilation) excluded. Also prints whether data generation keeps up: problems per second
one worker makes, against what the GPU consumes.

Then, on the trained weights: greedy fully-correct and answer accuracy, by op, on ``--eval`` fresh test-split
problems (template hash >= 17, the training op law) and as many at op = max_op; and the nece V-probe
(``--probe-steps`` steps; trained on train-split problems, tested on test-split ones) against the same probe on
a randomly initialised model and the majority class. A short run is far from the paper's 100k steps: the
accuracies say how far this much training gets, the throughput is what to plan a real run with.
"""

from __future__ import annotations

import argparse
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
from physlm.igsm.generate import generate
from physlm.model import ModelConfig
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
    ap.add_argument("--eval", type=int, default=256, help="test problems per evaluation set (0: skip)")
    ap.add_argument("--probe-steps", type=int, default=2000, help="nece V-probe steps (0: skip the probe)")
    ap.add_argument("--dry-run", action="store_true", help="tiny model, CPU, a few steps: checks the script runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    tok = T.build_wordlevel()
    gen = GenConfig()  # iGSM-med train split, the paper's op law
    if args.dry_run:
        args.model, args.n_ctx, args.steps, args.batch, args.micro, args.workers, args.log_every = (
            "GPT2-2-2", 256, 4, 4, 2, 0, 2)
        args.eval, args.probe_steps = min(args.eval, 8), min(args.probe_steps, 4)
        gen = GenConfig(family=Family("tiny", max_op=4, max_edge=6))
    mc = ModelConfig.from_name(args.model, vocab_size=tok.vocab_size, n_ctx=args.n_ctx)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, micro_batch_size=args.micro, warmup=100,
                      ckpt_every=10 ** 9, log_every=args.log_every, loss_on="all",
                      device="cpu" if args.dry_run else "auto", weight_decay=0.05)

    # How fast one process makes problems (the generator is CPU-bound; see README §5).
    t, n = time.perf_counter(), 200
    for i in range(n):
        generate(gen, i)
    per_worker = n / (time.perf_counter() - t)

    data = OnlineProblems(gen, tok, num_workers=args.workers)
    with tempfile.TemporaryDirectory() as out:
        res = train(mc, cfg, data, out, resume=False)
        model = checkpoint.load_model(out)
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
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 evaluates and probes
    device = probe.resolve_device("cpu" if args.dry_run else "auto")
    model = model.to(device).eval()
    if args.eval:
        evaluate(model, tok, gen, args.eval, mc.n_ctx)
    if args.probe_steps:
        probe_nece(model, tok, gen, args.probe_steps, device)


def evaluate(model, tok, gen: GenConfig, n: int, n_ctx: int) -> None:
    """Greedy accuracy, by op, on fresh test-split problems: the training op law and op = max_op."""
    sets = {"test_id": gen.with_(split="test"), f"test_op{gen.family.max_op}": gen.with_(split="test",
                                                                                       op=gen.family.max_op)}
    rows = []
    t = time.perf_counter()
    for name, g in sets.items():
        problems = generate_shard(g, 1, name, 0, n).to_pylist()
        rows += evaluate_rows(model, PhyslmCodec(tok), problems, name, "gpu_train",
                              opts=EvalOptions(batch_size=64, max_new_tokens=n_ctx // 2))
    for a in accuracy_table(rows):
        if a["op"] == -1 or a["test_set"] == "test_id":
            print(f"eval {a['test_set']} op {'all' if a['op'] == -1 else a['op']}: fully correct "
                  f"{a['accuracy']:.1%} (CI {a['ci_low']:.1%}-{a['ci_high']:.1%}), answers "
                  f"{a['answer_accuracy']:.1%}, n={a['n']}")
    print(f"eval: {len(rows)} generations in {time.perf_counter() - t:.0f} s")


def probe_nece(model, tok, gen: GenConfig, steps: int, device: torch.device) -> None:
    """The nece V-probe (spec C.5) on this model and on a random-init one of the same shape."""
    train_rows = generate_shard(gen.with_(split="train"), 2, "probe_train", 0, max(64, steps // 2)).to_pylist()
    test_rows = generate_shard(gen.with_(split="test"), 2, "probe_test", 0, 128).to_pylist()
    cfg = probe.ProbeConfig(task="nece", steps=steps, batch_size=64, lr=2e-3, device=device.type)
    t = time.perf_counter()
    for name, m in (("vprobe", model), ("random_init", probe.random_init_like(model, 1))):  # run_probe moves it
        metrics = probe.run_probe(m, tok, train_rows, test_rows, cfg, "gpu_train", name)[1]
        r = next(x for x in metrics if x["slice"] == "all")
        print(f"probe nece {name}: accuracy {r['accuracy']:.1%} (majority {r['majority_accuracy']:.1%}), "
              f"MCC {r['mcc'] if r['mcc'] is not None else float('nan'):.3f}, n={r['n']}")
    print(f"probe: {time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
