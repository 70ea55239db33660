"""Training throughput of physlm's training step against a plain transformers GPT-2 loop, same shapes, same process.

    python benchmarks/train.py                       # the tiny preset (Canon ABCD), 2 threads then 1
    python benchmarks/train.py --set model.canon=    # its shape without Canon: HF's very architecture
    python benchmarks/train.py --preset tiny --set model.shape=GPT2-4-4 --set train.loss_on=all

Ours: the preset's model and recipe through ``physlm.model.train`` (``train_step``: masked loss with the LM head
on the target positions only, AdamW with decay groups, clipping), fed by the preset's ``OnlineProblems`` — the
batch is generated, tokenized and packed inside the timed region — in eager mode and with ``train.compile=body``
(the transformer blocks compiled by inductor; its compilation time is reported apart, not timed). Baseline:
``GPT2LMHeadModel`` of the same width, depth, heads, context and vocabulary (dropout 0, SDPA) +
``torch.optim.AdamW`` + clipping on random ids, ``labels=ids`` (what a plain HF loop does). All fp32 on CPU.
For each thread count the loops alternate step by step; each side's median step time is reported, wall
clock: a shared machine has noisy neighbours, and alternating exposes every loop to the same noise. Also
reported: how long our step waits for its batch (online generation in the training thread); both loops
again under bf16 autocast (``train.dtype=bf16``: on a CPU with AVX512-BF16 its matmuls run natively), each
against the other's precision as well as its own; and the step fed by a data-worker process.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from physlm import machine
from physlm.model import activations as act
from physlm.model.data import OnlineProblems
from physlm.model.gpt import build
from physlm.model.train import NextTokenLoss, make_optimizer, train_step
from physlm.presets import resolve
from physlm.stages import generate as gen_stage
from physlm.stages import train as train_stage


class Ours:
    """One of our training steps per call (data included), the preset's model, recipe and data."""

    def __init__(self, p, compile_mode: str, data_workers: int = 0, amp: torch.dtype | None = None):
        cfg = dataclasses.replace(p.train, compile=compile_mode)
        self.amp = amp  # autocast dtype (train.dtype=bf16), None: fp32
        self.model = build(p.model).train()
        self.opt = make_optimizer(self.model, cfg, fused=False)  # as physlm.model.train on a CPU
        if compile_mode == "body":
            act.compile_blocks(self.model)
        self.loss = NextTokenLoss(self.model, sparse=True)
        gen = gen_stage.dataset_step(p, "train").config.gen
        data = OnlineProblems(gen, train_stage.tokenizer_for(p.tokenizer), num_workers=data_workers)
        self.batches = data.batches(None, n_ctx=p.model.n_ctx, batch_size=cfg.batch_size, loss_on=cfg.loss_on)
        self.cfg, self.waits = cfg, []

    def __call__(self) -> None:
        t = time.perf_counter()
        batch = next(self.batches)
        self.waits.append(time.perf_counter() - t)
        train_step(self.loss, self.model, self.opt, batch, self.cfg.lr, self.cfg.grad_clip, self.cfg.batch_size, 1,
                   torch.device("cpu"), self.amp)  # fmt: skip


def hf_gpt2(p, amp: torch.dtype | None = None):
    from transformers import GPT2Config, GPT2LMHeadModel

    mc = p.model
    cfg = GPT2Config(vocab_size=mc.vocab_size, n_positions=mc.n_ctx, n_embd=mc.width, n_layer=mc.n_layer,
                     n_head=mc.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                     eos_token_id=None)  # fmt: skip
    model = GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa").train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.98), weight_decay=0.05)
    ids = torch.randint(0, mc.vocab_size, (p.train.batch_size, mc.n_ctx))

    def step():
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(p, threads: int, steps: int, bf16: bool) -> dict:
    """Median step seconds of each loop at ``threads`` torch threads, alternating step by step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    loops = {"HF GPT-2": hf_gpt2(p), "ours": Ours(p, "off")}
    t = time.perf_counter()
    loops["ours, compile=body"] = Ours(p, "body")
    loops["ours, compile=body"]()  # compiles
    compile_s = time.perf_counter() - t
    if bf16:  # bf16 autocast (train.dtype=bf16; AVX512-BF16 CPUs run its matmuls natively), ours and plain
        loops["HF GPT-2, bf16"] = hf_gpt2(p, torch.bfloat16)
        loops["ours, compile=body, bf16"] = Ours(p, "body", amp=torch.bfloat16)
    for fn in loops.values():  # warm-up: allocator, oneDNN kernels
        fn(), fn()
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(steps):
        for k, fn in loops.items():
            times[k].append(timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    waits = {k: statistics.median(fn.waits) for k, fn in loops.items() if isinstance(fn, Ours)}
    return {"median": med, "compile_s": compile_s, "waits": waits, "worker": worker_blocks(p, steps, loops)}


def worker_blocks(p, steps: int, loops: dict) -> dict:
    """The compiled step fed in process vs by one data-worker process (``train.data_workers=1``: generation
    overlaps the step). A worker works ahead while the other loops run, so here the two loops run in
    alternating blocks of consecutive steps, and the first steps of each block (the worker's prefetched
    batches) are not counted."""
    body = loops["ours, compile=body"]
    fed = Ours(p, "body", data_workers=1)
    fed.model.load_state_dict(body.model.state_dict())
    fed()  # compiles (the same graphs: cached), starts the worker
    times: dict[str, list[float]] = {"in process": [], "1 data worker": []}
    for _ in range(max(steps // 10, 2)):
        for name, fn in (("in process", body), ("1 data worker", fed)):
            block = [timed(fn) for _ in range(15)]
            times[name] += block[5:]
    return {k: statistics.median(v) for k, v in times.items()} | {"waits": statistics.median(fed.waits[-20:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", default="2,1", help="thread counts to measure, comma separated")
    ap.add_argument(
        "--bf16",
        choices=("auto", "on", "off"),
        default="auto",
        help="also time both loops under bf16 autocast (auto: where the CPU has AVX512-BF16; elsewhere it is emulated)",
    )
    args = ap.parse_args()
    bf16 = args.bf16 == "on" or (args.bf16 == "auto" and "avx512_bf16" in machine.cpu_flags())
    p = resolve(args.preset, args.sets)
    tokens = p.train.batch_size * p.model.n_ctx
    m = p.model
    print(f"{m.name} width {m.width} canon {m.canon or '-'} vocab {m.vocab_size} n_ctx {m.n_ctx} batch "
          f"{p.train.batch_size} loss on {p.train.loss_on}; {machine.describe()}")  # fmt: skip
    for threads in (int(t) for t in args.threads.split(",")):
        r = measure(p, threads, args.steps, bf16)
        base = r["median"]["HF GPT-2"]
        for name, s in r["median"].items():
            wait = r["waits"].get(name)
            extra = f", batch wait {wait * 1e3:.0f} ms" if wait is not None else ""
            print(f"threads {threads}  {name:26s} {tokens / s:7.0f} tok/s  {s * 1e3:5.0f} ms/step  "
                  f"ratio {base / s:.2f}{extra}")  # fmt: skip
        print(f"threads {threads}  compilation of the blocks: {r['compile_s']:.0f} s (once per run)")
        w = r["worker"]
        for name in ("in process", "1 data worker"):
            print(f"threads {threads}  compile=body, data {name:14s} {w[name] * 1e3:5.0f} ms/step (blocks of steps)"
                  + (f", batch wait {w['waits'] * 1e3:.1f} ms" if name != "in process" else ""))  # fmt: skip


if __name__ == "__main__":
    main()
