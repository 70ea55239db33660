"""Training throughput of physlm.model.train's step against a plain transformers GPT-2 loop, same shapes, same process.

    python benchmarks/train.py [--layers 4 --heads 4 --n-ctx 256 --batch 8 --steps 30 --threads 1 --loss-on all]

Ours: one ``physlm.model.train.train_step`` per step (GPT2-ℓ-h + RoPE, masked loss, AdamW with decay groups,
clipping) fed by ``OnlineProblems`` — the batch is generated, tokenized and packed inside the timed region.
Baseline: ``GPT2LMHeadModel`` (dropout 0 everywhere, SDPA) + ``torch.optim.AdamW`` + clipping on random ids
of the same (batch, n_ctx) and vocabulary, ``labels=ids``. Both fp32 on CPU. The two alternate step by
step; each side's median (and best) step time is reported, in wall and in process-CPU seconds: a shared
2-core machine has noisy neighbours, and alternating exposes both loops to the same noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from physlm.config import ModelConfig, TrainConfig
from physlm.igsm.config import Family, GenConfig
from physlm.model import tokenizer as T
from physlm.model.data import OnlineProblems
from physlm.model.gpt import build
from physlm.model.train import NextTokenLoss, make_optimizer, train_step


def ours(mc: ModelConfig, batch: int, loss_on: str = "all"):
    """A closure running one of our training steps (data included)."""
    tok = T.build_wordlevel()
    cfg = TrainConfig(batch_size=batch, loss_on=loss_on)
    model = build(mc).train()
    opt = make_optimizer(model, cfg, fused=False)
    data = OnlineProblems(GenConfig(family=Family("bench", max_op=6, max_edge=8)), tok)
    batches = data.batches(None, n_ctx=mc.n_ctx, batch_size=batch, loss_on=loss_on)
    cpu, loss = torch.device("cpu"), NextTokenLoss(model, sparse=True)
    return lambda: train_step(loss, model, opt, next(batches), cfg.lr, cfg.grad_clip, batch, 1, cpu)


def hf_gpt2(mc: ModelConfig, batch: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=mc.vocab_size,
        n_positions=mc.n_ctx,
        n_embd=mc.width,
        n_layer=mc.n_layer,
        n_head=mc.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa").train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.98), weight_decay=0.05)
    ids = torch.randint(0, mc.vocab_size, (batch, mc.n_ctx))

    def step():
        model(input_ids=ids, labels=ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument(
        "--loss-on",
        choices=("all", "solution"),
        default="all",
        help="our loss targets: every token (the paper), or the solution only (the tiny preset; our LM "
        "head then runs on those positions only, while the HF loop computes every logit as it must "
        "for labels masked with -100)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    mc = ModelConfig(
        n_layer=args.layers, n_head=args.heads, vocab_size=T.build_wordlevel().vocab_size, n_ctx=args.n_ctx
    )
    print(
        f"{mc.name} width {mc.width} vocab {mc.vocab_size} n_ctx {mc.n_ctx} batch {args.batch} "
        f"threads {torch.get_num_threads()} loss on {args.loss_on} torch {torch.__version__}"
    )
    a_step, b_step = ours(mc, args.batch, args.loss_on), hf_gpt2(mc, args.batch)
    for _ in range(2):  # warm-up: allocator, oneDNN kernels
        a_step(), b_step()
    a, b = [], []
    for _ in range(args.steps):
        a.append(timed(a_step))
        b.append(timed(b_step))
    tokens = args.batch * mc.n_ctx
    for i, kind in enumerate(("wall", "cpu")):
        ma, mb = statistics.median(x[i] for x in a), statistics.median(x[i] for x in b)
        ba, bb = min(x[i] for x in a), min(x[i] for x in b)
        print(
            f"{kind:4s} ours {tokens / ma:7.0f} tok/s (median {ma * 1e3:.0f} ms, best {ba * 1e3:.0f} ms) | "
            f"HF GPT-2 {tokens / mb:7.0f} tok/s (median {mb * 1e3:.0f} ms, best {bb * 1e3:.0f} ms) | "
            f"ratio {mb / ma:.2f} (best-vs-best {bb / ba:.2f})"
        )


if __name__ == "__main__":
    main()
