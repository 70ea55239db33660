"""Train a GPT2-ℓ-h (+RoPE) on packed iGSM windows: plain PyTorch, one loop, resumable bit-for-bit.

``train(model_cfg, train_cfg, data, out_dir)`` builds the model (physlm/model/gpt.py), draws batches from a
data source (physlm/model/data.py), and writes checkpoints (physlm/store/checkpoint.py) every ``ckpt_every`` steps and
at the end. With ``resume=True`` it first loads the newest checkpoint in ``out_dir`` — weights, AdamW
state, data position, RNG states — so a run killed at any point and restarted reaches exactly the weights
an uninterrupted run would have (bitwise on CPU; tests/test_train.py). That works because every input of
step k is a pure function of what the checkpoint holds: the LR schedule is a function of k (no scheduler
object to save), the batch a function of the data position, and dropout (if any) of the RNG state.

Spec C.2 defaults: AdamW β=(0.9, 0.98), peak LR 2e-3, linear warm-up then cosine decay to 1% of peak,
weight decay on matrices/embeddings only (not biases, LayerNorms). The loss is the mean cross-entropy over
the target tokens of the whole global batch (``loss_on="solution"``: solution + answer part; ``"all"``: the
whole sequence, the paper's setting), accumulated over micro-batches and ranks. On CUDA: bf16 autocast,
``torch.compile``, fused AdamW, TF32, MFU in the logs; on CPU plain fp32. Under ``torchrun`` (WORLD_SIZE > 1)
the model is wrapped in DDP; each rank takes its own rows of every global batch and rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from physlm import machine
from physlm.config import ConfigError, ModelConfig, TrainConfig
from physlm.model import activations as act
from physlm.model import mtp as multi
from physlm.model.gpt import build
from physlm.model.letters import FreshLetters
from physlm.model.weights import PositionWeights
from physlm.store import checkpoint

log = logging.getLogger(__name__)

PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}
"""Dense bf16 peak FLOP/s by GPU name substring, for MFU."""


def lr_at(step: int, cfg: TrainConfig) -> float:
    """LR of optimizer step ``step`` (0-based): linear warm-up to ``lr``, cosine to ``lr * min_lr_ratio``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    decay = cfg.steps - cfg.warmup
    frac = 1.0 if decay <= 0 else min(1.0, (step - cfg.warmup) / decay)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def shifted_targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T)``: at position t the token t+1 where it is a target, else -100 (also at the last position)."""
    # Shift the targets, not the logits: position t predicts token t+1, the last position predicts nothing.
    # (Slicing logits[:, :-1] would copy the (B, T, V) tensor forward and backward.)
    return F.pad(ids[:, 1:].masked_fill(~mask[:, 1:], -100), (0, 1), value=-100)


class NextTokenLoss(torch.nn.Module):
    """``forward(ids, mask)`` -> the sum of next-token cross-entropies over the target tokens of ``model``.

    ``sparse``: run the LM head on the target positions only, and the last block's MLP and the final LayerNorm
    on them and their Canon receptive field (``activations.final_states_at``). With ``loss_on="solution"`` about
    3/4 of the tokens are prompt, so this skips most of the head's FLOPs (the largest matmul of a small model
    with a 1.7k vocabulary) and most of the last MLP's (the tiny preset's step: 8-9 % less time). Dense (every
    position, static shapes) is what ``torch.compile`` wants; both give the same loss up to float rounding
    (tests/test_train.py). DDP and compile wrap this module, not the model, so the loss is part of the forward
    they see.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        sparse: bool,
        letters: FreshLetters | None = None,
        weights: PositionWeights | None = None,
        mtp: tuple[multi.NextNextHead, float] | None = None,
    ):
        super().__init__()
        # weights: arithmetic results and plan choices weighted (physlm/model/weights.py); None: the plain loss
        self.model, self.sparse, self.letters, self.weights = model, sparse, letters, weights
        # mtp: (head, weight) of the token-after-next loss (physlm/model/mtp.py; sparse only); None: none
        self.head, self.mtp_weight = mtp if mtp is not None else (None, 0.0)
        self.aux: torch.Tensor | None = None  # the last forward's weighted MTP sum (detached), left out of the log
        if self.head is not None and not sparse:
            raise ConfigError("train.mtp: needs the sparse loss (compile 'off' or 'body'), not the whole loss compiled")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        extra = None  # train.mtp's weighted term
        if self.sparse:
            sel = mask[:, 1:]  # hidden state t predicts token t+1
            predicts = torch.cat([sel, torch.zeros_like(sel[:, :1])], 1)  # (b, T): positions that predict a target
            hidden = act.final_states_at(self.model, ids, predicts)  # (n_targets, d), after the final LayerNorm
            unembed = self.model.get_output_embeddings()
            logits = unembed(hidden)  # (n_targets, V)

            def at(x: torch.Tensor) -> torch.Tensor:  # a mark of token t+1, at each target position t
                return x[:, 1:][sel]

            targets = at(ids)
            if self.head is not None:
                extra = multi.loss_sum(self.head, unembed, hidden, ids, mask, predicts) * self.mtp_weight
                self.aux = extra.detach()
        else:
            logits = self.model(input_ids=ids, use_cache=False).logits.flatten(0, 1)
            targets = shifted_targets(ids, mask).flatten()  # -100 where t+1 is not a target

            def at(x: torch.Tensor) -> torch.Tensor:
                return F.pad(x[:, 1:], (0, 0) * (x.dim() - 2) + (0, 1)).flatten(0, 1)

        loss = self._sum(logits.float(), targets, ids, at)
        return loss if extra is None else loss + extra

    def _sum(self, logits: torch.Tensor, targets: torch.Tensor, ids: torch.Tensor, at) -> torch.Tensor:
        """The loss sum of ``logits (n, V)`` against ``targets (n,)`` (-100: none); ``at`` maps a per-token mark
        of ``ids`` to those n positions."""
        weight = None if self.weights is None else at(self.weights(ids)).to(logits.dtype)
        if self.letters is not None:
            fresh, unused = self.letters.marks(ids)
            return self.letters.loss_sum(logits, targets, at(fresh), at(unused), weight)
        if weight is None:
            return F.cross_entropy(logits, targets, ignore_index=-100, reduction="sum")
        return (F.cross_entropy(logits, targets, ignore_index=-100, reduction="none") * weight).sum()


def train_step(
    runner, model, opt, batch, lr: float, grad_clip: float, micro: int, world: int, device: torch.device, amp_dtype=None
) -> torch.Tensor:
    """One optimizer step on this rank's rows of a global batch; returns this rank's share of the loss (the
    next-token loss: train.mtp's term is optimized, not reported).

    ``runner`` computes the loss sum (a :class:`NextTokenLoss`, or its DDP/compiled wrapper); ``model`` owns the
    parameters.
    The batch holds ``accum = B / micro`` micro-batches; gradients accumulate over them (DDP syncs on the last).
    """
    for group in opt.param_groups:
        group["lr"] = lr
    # Normaliser: target tokens of the *global* batch, so the loss is one mean over all of them.
    n_targets = batch.mask[:, 1:].sum().to(device=device, dtype=torch.float32)
    if world > 1:
        torch.distributed.all_reduce(n_targets)
    n_targets = n_targets.clamp(min=1)
    ids_all = batch.ids.to(device, non_blocking=True)  # (B, T)
    mask_all = batch.mask.to(device, non_blocking=True)  # (B, T)
    accum = ids_all.shape[0] // micro
    step_loss = torch.zeros((), device=device)
    for k in range(accum):
        ids, mask = ids_all[k * micro : (k + 1) * micro], mask_all[k * micro : (k + 1) * micro]  # (b, T)
        sync = world == 1 or k == accum - 1  # DDP: all-reduce gradients on the last micro-batch only
        with (
            contextlib.nullcontext() if sync else runner.no_sync(),
            torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
        ):
            loss = runner(ids, mask) / n_targets
        # DDP averages gradients over ranks; x world turns that average back into the global sum.
        (loss * world).backward()
        aux = getattr(getattr(runner, "module", runner), "aux", None)  # DDP wraps the loss module as .module
        step_loss += loss.detach() if aux is None else loss.detach() - aux / n_targets
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return step_loss


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters (with train.mtp, a ModuleList of the model and its head)."""
    # Decay matrices and embeddings (dim >= 2); biases and LayerNorm gains stay free (nanoGPT's rule).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused or None)


def _distributed() -> tuple[int, int, int]:
    """(rank, world, local_rank); initialises the process group under torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


@dataclass
class _Run:
    """What the loop needs besides the model: where it runs and how a step is cut into micro-batches."""

    rank: int
    world: int
    device: torch.device
    amp_dtype: torch.dtype | None
    micro: int
    accum: int


def _setup(cfg: TrainConfig, n_ctx: int) -> _Run:
    """Processes, device, threads, autocast dtype and the micro-batch split of a run."""
    rank, world, local_rank = _distributed()
    dev_name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(f"cuda:{local_rank}" if dev_name == "cuda" and world > 1 else dev_name)
    cuda = device.type == "cuda"
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if cuda:
        if device.index is None:  # torch >= 2.11's set_device wants an index: "cuda" = the current device
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = torch.bfloat16 if (cfg.dtype == "bf16" or (cfg.dtype == "auto" and cuda)) else None
    micro = cfg.micro_batch_size or cfg.batch_size // world
    if cfg.batch_size % (micro * world):
        raise ConfigError(
            f"batch_size: {cfg.batch_size} is not a multiple of micro_batch_size * world = {micro} * {world}"
        )
    if rank == 0:
        log.info("training on %s", machine.describe(device.type))
    return _Run(rank, world, device, amp_dtype, micro, cfg.batch_size // (micro * world))


def _build(model_cfg: ModelConfig, cfg: TrainConfig, run: _Run, out_dir: str, resume: bool):
    """The model and optimizer, seeded, and resumed from the newest checkpoint of ``out_dir`` if any; returns
    ``(model, head, opt, state)`` with ``head`` train.mtp's head (None without) and ``state`` = step, data
    position, tokens seen, resumed-from step, meta URL."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build(model_cfg).to(run.device)
    head = multi.NextNextHead(model_cfg.width, model_cfg.init_std).to(run.device) if cfg.mtp else None
    # Fused on CUDA only: on a CPU the fused kernel saves ~3 ms of a tiny step (2 %) but rounds differently; the
    # tiny preset's one fresh run with it scored test_seen 53.0 %, two without it 59.5 and 57.0 % (the CPU runs
    # are not bitwise reproducible): no harm shown, no gain worth a change of numerics either.
    opt = make_optimizer(_trained(model, head), cfg, fused=run.device.type == "cuda")
    state = {"step": 0, "position": None, "tokens_seen": 0, "resumed_from": None, "checkpoint": None}
    last = checkpoint.latest(out_dir) if resume else None
    if last is not None and not checkpoint.resumable(out_dir, last):
        raise ConfigError(f"{out_dir}: checkpoint {last} was installed from shipped weights (train.pretrained) and "
                          "holds no optimizer state to resume from; train with --force to start over")  # fmt: skip
    if last is not None:
        # Weights, optimizer moments, data position and RNG streams: everything step `last` depends on.
        checkpoint.load_weights(out_dir, last, model)
        saved = checkpoint.load_state(out_dir, last)
        opt.load_state_dict(saved["optimizer"])
        if head is not None:
            head.load_state_dict(saved["mtp_head"])
        checkpoint.set_rng_state(saved["rng"])
        state.update(
            step=last,
            position=saved["position"],
            tokens_seen=saved["tokens_seen"],
            resumed_from=last,
            checkpoint=checkpoint.meta_url(out_dir, last),
        )
        log.info("resumed from %s step %d", out_dir, last)
    return model, head, opt, state


def _trained(model: torch.nn.Module, head: torch.nn.Module | None) -> torch.nn.Module:
    """What the optimizer and the gradient clipping see: the model, then train.mtp's head if any."""
    return model if head is None else torch.nn.ModuleList([model, head])


def can_compile(device: torch.device) -> bool:
    """torch.compile on a CPU compiles C++ kernels: without a compiler it would fail at the first step."""
    if device.type != "cpu":
        return True
    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c)


def _letters(cfg: TrainConfig, data) -> FreshLetters | None:
    """The fresh letters of the data's tokenizer for ``letter_targets="expected"``, else None."""
    if cfg.letter_targets == "sampled":
        return None
    tok = getattr(data, "tok", None)
    if tok is None:
        raise ConfigError("train.letter_targets: 'expected' needs a data source with a tokenizer (iGSM problems)")
    return FreshLetters(tok)


def _weights(cfg: TrainConfig, data) -> PositionWeights | None:
    """The loss weights of the data's tokenizer when ``arith_weight`` or ``plan_weight`` is not 1, else None."""
    if cfg.arith_weight == 1 and cfg.plan_weight == 1:
        return None
    tok = getattr(data, "tok", None)
    if tok is None:
        raise ConfigError("train.arith_weight/plan_weight: needs a data source with a tokenizer (iGSM problems)")
    return PositionWeights(tok, cfg.arith_weight, cfg.plan_weight)


def _runner(
    model,
    cfg: TrainConfig,
    run: _Run,
    letters: FreshLetters | None = None,
    weights: PositionWeights | None = None,
    head: multi.NextNextHead | None = None,
):
    """The loss module the loop calls: sparse LM head in eager mode, dense when compiled whole; with "body" the
    transformer blocks are compiled and the head stays sparse; DDP-wrapped."""
    compiled = cfg.compile == "on" or (cfg.compile == "auto" and run.device.type == "cuda")
    body = cfg.compile == "body"
    if (compiled or body) and not can_compile(run.device):
        log.warning("train.compile=%s: no C++ compiler here (torch.compile builds CPU kernels with one); "
                    "training eagerly", cfg.compile)  # fmt: skip
        compiled = body = False
    if body:  # the blocks compiled; the parameters, state dict and checkpoints stay the model's own
        act.compile_blocks(model)
    mtp = None if head is None else (head, cfg.mtp)
    runner = NextTokenLoss(model, sparse=not compiled, letters=letters, weights=weights, mtp=mtp)
    if run.world > 1:
        cuda = run.device.type == "cuda"
        runner = torch.nn.parallel.DistributedDataParallel(runner, device_ids=[run.device.index] if cuda else None)
    return torch.compile(runner) if compiled else runner


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    data,
    out_dir: str,
    resume: bool = True,
    until_step: int | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
) -> dict:
    """Train (or resume) into ``out_dir``; returns a summary (step, tokens_seen, loss, history, checkpoint).

    ``data``: a physlm.model.data source (``PackedShards`` / ``OnlineProblems``). ``until_step``: stop after
    that many steps with a checkpoint (time-slicing; the schedule still spans ``cfg.steps``). ``on_checkpoint``
    gets each checkpoint's meta dict (plus ``path``) on rank 0, e.g. to register it.
    """
    run = _setup(cfg, model_cfg.n_ctx)
    model, head, opt, state = _build(model_cfg, cfg, run, out_dir, resume)
    runner = _runner(model, cfg, run, _letters(cfg, data), _weights(cfg, data), head)
    trained = _trained(model, head)
    tokens_per_step = cfg.batch_size * model_cfg.n_ctx
    peak, flops_per_token = _peak_flops(run.device), model_cfg.flops_per_token()
    kw = dict(n_ctx=model_cfg.n_ctx, batch_size=run.micro * run.accum, loss_on=cfg.loss_on, seed=cfg.seed)
    batches = data.batches(state["position"], **kw, rank=run.rank, world=run.world)
    step, stop = state["step"], cfg.steps if until_step is None else min(cfg.steps, until_step)
    history, dropped, tokens_seen = [], 0, state["tokens_seen"]
    loss_acc, n_acc, t_log = torch.zeros((), device=run.device), 0, time.perf_counter()
    # A checkpoint records the mean loss since the previous checkpoint: a resume starts exactly there, so a
    # resumed run records the same losses as an uninterrupted one (the log window would not: it restarts).
    ckpt_acc, ckpt_n = torch.zeros((), device=run.device), 0
    bar = _progress(cfg, run, stop, step)

    # ------------------------------------------------------------------ the loop
    model.train()
    while step < stop:
        batch = next(batches)  # (micro * accum, T) rows of this rank, and the position after them
        dropped += batch.dropped
        lr = lr_at(step, cfg)
        step_loss = train_step(runner, trained, opt, batch, lr, cfg.grad_clip, run.micro, run.world, run.device,
                               run.amp_dtype)  # fmt: skip
        step += 1
        state["position"], tokens_seen = batch.position, tokens_seen + tokens_per_step
        if run.world > 1:
            torch.distributed.all_reduce(step_loss)  # sum of rank shares = global mean loss
        loss_acc += step_loss
        ckpt_acc += step_loss
        n_acc, ckpt_n = n_acc + 1, ckpt_n + 1
        if bar is not None:
            bar.update(1)

        # -------------------------------------------------------------- logging
        if step % cfg.log_every == 0 or step == stop:
            tok_s = n_acc * tokens_per_step / (time.perf_counter() - t_log)
            rec = {"step": step, "loss": float(loss_acc) / n_acc, "lr": lr, "tokens_per_s": tok_s,
                   "tokens_seen": tokens_seen}  # fmt: skip
            if peak:
                rec["mfu"] = flops_per_token * tok_s / (peak * run.world)
            history.append(rec)
            _log(rec, run, bar)
            loss_acc.zero_()
            n_acc, t_log = 0, time.perf_counter()

        # -------------------------------------------------------------- checkpoint
        if step % cfg.ckpt_every == 0 or step == stop:
            if run.rank == 0:
                done = {"step": step, "tokens_seen": tokens_seen, "loss": float(ckpt_acc) / ckpt_n}
                state["checkpoint"] = _checkpoint(out_dir, model, head, opt, model_cfg, cfg, run, done, state,
                                                  on_checkpoint)  # fmt: skip
            ckpt_acc.zero_()
            ckpt_n = 0
            if run.world > 1:
                torch.distributed.barrier()
            t_log = time.perf_counter()  # do not charge checkpoint I/O to throughput

    if bar is not None:
        bar.close()
    last = history[-1]["loss"] if history else None
    return {"step": step, "tokens_seen": tokens_seen, "loss": last, "history": history, "dropped": dropped,
            "checkpoint": state["checkpoint"], "resumed_from": state["resumed_from"], "params": model_cfg.params(),
            "non_embedding_params": model_cfg.non_embedding_params(),
            "machine": machine.describe(str(run.device))}  # fmt: skip


def _checkpoint(out_dir, model, head, opt, model_cfg, cfg, run: _Run, done: dict, state: dict, on_checkpoint) -> str:
    """Save checkpoint ``done["step"]`` (weights, optimizer, data position, RNG, train.mtp's head; its meta last)
    and report it; returns the meta file's URL."""
    meta = {"model_config": model_cfg.to_dict(), "train_config": cfg.to_dict(), "name": model_cfg.name,
            "tokens_seen": done["tokens_seen"], "loss": done["loss"], "position": state["position"],
            "world": run.world}  # fmt: skip
    extra = {"position": state["position"], "tokens_seen": done["tokens_seen"]}
    if head is not None:
        extra["mtp_head"] = head.state_dict()
    url = checkpoint.save(out_dir, done["step"], model, opt, meta, extra)
    if on_checkpoint is not None:
        on_checkpoint({**meta, "step": done["step"], "path": url})
    return url


def _progress(cfg: TrainConfig, run: _Run, stop: int, step: int):
    """A tqdm bar on rank 0 when asked for and stderr is a terminal, else None (the log lines remain: a file or
    a worker's log gets no carriage-return redraws)."""
    if not (cfg.progress and run.rank == 0 and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=stop, initial=step, desc="train", unit="step")


def _log(rec: dict, run: _Run, bar) -> None:
    if run.rank != 0:
        return
    log.info(
        "step %d loss %.4f lr %.2e tok/s %.0f%s",
        rec["step"],
        rec["loss"],
        rec["lr"],
        rec["tokens_per_s"],
        f" mfu {rec['mfu']:.1%}" if "mfu" in rec else "",
    )
    if bar is not None:
        bar.set_postfix(loss=f"{rec['loss']:.3f}")
