"""Training batches: iGSM problems packed into fixed windows of ``n_ctx`` tokens (README §4, spec C.2).

Packing. A problem is one framed unit ``[problem] P [solution] S [answer] " a" [end]`` (physlm/model/tokenizer.py).
A window is ``[end]`` followed by whole units, so every problem is preceded by the end token exactly as in
the eval prompt; a unit that does not fit starts the next window and the rest is padded (pad = end token,
never a loss target); a unit longer than ``n_ctx - 1`` is dropped and counted. Problems are never cut.

Two sources, one iterator protocol ``batches(position, n_ctx=, batch_size=, loss_on=, seed=, rank=, world=)``
yielding :class:`Batch` — ``batch_size`` windows for this rank per optimizer step — each carrying the
``position`` to resume *after* it (a checkpoint stores it; pass it back to continue bit-for-bit):

* :class:`PackedShards` — problems of a generate step's ``shard_*.parquet``. Epoch ``e`` visits all problems
  in the order ``permutation(rng(seed, e))`` and packs them greedily; step k of the run takes the next
  ``batch_size * world`` windows (continuing into the next epoch) and rank r keeps its own block of rows.
  Position: ``{"epoch", "window"}``. Problems are tokenized once, in memory (fine up to a few million).
* :class:`OnlineProblems` — fresh problems every step, as the paper (unlimited data, spec C.2): step k on
  rank r generates problems ``problem_seed(shard_seed(seed, "online", k * world + r), j)`` for j = 0, 1, …
  until its windows are full. A pure function of (config, seed, step, rank, world): position ``{"step"}``.
  ``num_workers > 0`` generates steps in DataLoader worker processes (worker w makes steps w, w+W, …; the
  loader returns them round-robin, so the order is the same as with no workers). Its steps before
  ``recall_end`` show each problem as a recall drill instead (:func:`recall_drill`; ``train.recall_warmup``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from physlm.igsm.config import GenConfig
from physlm.igsm.generate import Problem, generate
from physlm.igsm.solution import recall
from physlm.model.tokenizer import LOSS_ON, Tokenizer
from physlm.store.shards import problem_seed, read_shards, shard_seed


class DataError(ValueError):
    """Data that cannot feed training (no problem fits the context, empty shards); names the field."""


@dataclass
class Batch:
    ids: torch.Tensor
    """(B, T) int64 token ids; window starts with the end token, pads with it."""
    mask: torch.Tensor
    """(B, T) bool: token t is a loss target (predicted from position t-1)."""
    position: dict
    """Data position after this batch: store it in the checkpoint, pass it back to resume."""
    problems: int
    """Problems packed into this batch."""
    dropped: int = 0
    """Problems met while making this batch that were longer than a window."""


@dataclass
class Unit:
    ids: np.ndarray  # (L,) int32: [P] problem [S] solution [A] answer [end]
    head: int  # length of "[P] problem [S]": the prompt part, a target only with loss_on="all"


def encode_units(tok: Tokenizer, problems, solutions, answers) -> list[Unit]:
    """Frame and tokenize problems (texts) into units (one batched tokenizer call per segment kind)."""
    p = tok.encode_batch(list(problems))
    s = tok.encode_batch(list(solutions))
    a = tok.encode_batch([f" {x}" for x in answers])
    out = []
    for pi, si, ai in zip(p, s, a):
        ids, mask = tok.frame(pi, si, ai, "solution")
        out.append(Unit(np.asarray(ids, dtype=np.int32), mask.index(True)))
    return out


def pack(lengths: list[int], n_ctx: int) -> tuple[list[list[int]], int]:
    """Greedy packing of units (in the given order) into windows of ``[end] + units``.

    Returns ``(windows, dropped)``: each window a list of indices into ``lengths``.
    """
    cap = n_ctx - 1  # the leading end token
    windows, cur, used, dropped = [], [], 0, 0
    for i, n in enumerate(lengths):
        if n > cap:
            dropped += 1
            continue
        if used + n > cap:  # does not fit: it starts the next window
            windows.append(cur)
            cur, used = [], 0
        cur.append(i)
        used += n
    if cur:
        windows.append(cur)
    return windows, dropped


def render(windows: list[list[Unit]], n_ctx: int, end: int, loss_on: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of units -> ``ids`` (B, T) int64 and ``mask`` (B, T) bool."""
    ids = np.full((len(windows), n_ctx), end, dtype=np.int64)  # pad = end token
    mask = np.zeros((len(windows), n_ctx), dtype=bool)
    for b, units in enumerate(windows):
        t = 1  # position 0 holds the leading end token (not a target: nothing precedes it)
        for u in units:
            n = len(u.ids)
            ids[b, t : t + n] = u.ids
            mask[b, t + (0 if loss_on == "all" else u.head) : t + n] = True
            t += n
    return torch.from_numpy(ids), torch.from_numpy(mask)


def _check_args(n_ctx: int, batch_size: int, loss_on: str, rank: int, world: int) -> None:
    if loss_on not in LOSS_ON:
        raise DataError(f"loss_on: must be one of {LOSS_ON}, got {loss_on!r}")
    if n_ctx < 8 or batch_size < 1:
        raise DataError(f"n_ctx / batch_size: must be >= 8 / >= 1, got {n_ctx} / {batch_size}")
    if not 0 <= rank < world:
        raise DataError(f"rank: must be in 0..world-1 = {world - 1}, got {rank}")


# ---------------------------------------------------------------------- shards
class PackedShards:
    """Packed windows over the train shards of a generate step (``shard_*.parquet``)."""

    def __init__(self, folder: str, tokenizer: Tokenizer):
        table = read_shards(folder, columns=["problem", "solution", "answer"])
        if table.num_rows == 0:
            raise DataError(f"data: no problems in shards under {folder}")
        self.folder, self.tok = folder, tokenizer
        self.units = encode_units(
            tokenizer, table["problem"].to_pylist(), table["solution"].to_pylist(), table["answer"].to_pylist()
        )
        self._epochs: dict[tuple, list[list[int]]] = {}
        self.dropped = 0

    def epoch_windows(self, epoch: int, n_ctx: int, seed: int) -> list[list[int]]:
        """The packed windows (unit indices) of one epoch; cached for the current epoch only."""
        key = (epoch, n_ctx, seed)
        if key not in self._epochs:
            order = np.random.default_rng([seed, epoch]).permutation(len(self.units))
            windows, self.dropped = pack([len(self.units[i].ids) for i in order], n_ctx)
            if not windows:
                longest = min(len(u.ids) for u in self.units)
                raise DataError(f"n_ctx: {n_ctx} is shorter than every problem (shortest unit: {longest} tokens)")
            self._epochs = {key: [[int(order[i]) for i in w] for w in windows]}
        return self._epochs[key]

    def batches(
        self,
        position: dict | None = None,
        *,
        n_ctx: int,
        batch_size: int,
        loss_on: str = "solution",
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> Iterator[Batch]:
        _check_args(n_ctx, batch_size, loss_on, rank, world)
        epoch, w = (position or {}).get("epoch", 0), (position or {}).get("window", 0)
        while True:
            rows: list[list[int]] = []  # the global batch: batch_size * world windows
            while len(rows) < batch_size * world:
                windows = self.epoch_windows(epoch, n_ctx, seed)
                take = windows[w : w + batch_size * world - len(rows)]
                rows += take
                w += len(take)
                if w >= len(windows):
                    epoch, w = epoch + 1, 0
            mine = rows[rank * batch_size : (rank + 1) * batch_size]
            ids, mask = render([[self.units[i] for i in win] for win in mine], n_ctx, self.tok.markers.end, loss_on)
            yield Batch(ids, mask, {"epoch": epoch, "window": w}, sum(map(len, mine)), 0)


# ---------------------------------------------------------------------- online
class OnlineProblems:
    """Fresh problems from ``gen`` every step, deterministic per (seed, step, rank, world); with ``late = (gen2,
    step0)``, from ``gen2`` from step0 on (an op curriculum: :func:`online`); before step ``recall_end``, every
    problem as its recall drill (:func:`recall_drill`)."""

    chunk = 4
    """Problems generated per tokenizer call. The batch is the same for any chunk (problem j is a function of j,
    packed in order), but the problems of a chunk after the one that fills the batch are wasted work: chunks of
    16 wasted about 8 problems of 40, a fifth of the step's data time."""

    def __init__(
        self,
        gen: GenConfig,
        tokenizer: Tokenizer,
        num_workers: int = 0,
        late: tuple[GenConfig, int] | None = None,
        recall_end: int = 0,
    ):
        self.gen, self.tok, self.num_workers, self.late, self.recall_end = gen, tokenizer, num_workers, late, recall_end

    def gen_at(self, step: int) -> GenConfig:
        """The generator config of the problems of optimizer step ``step``."""
        return self.late[0] if self.late is not None and step >= self.late[1] else self.gen

    def make(self, step: int, *, n_ctx: int, batch_size: int, loss_on: str, seed: int, rank: int, world: int) -> Batch:
        """The batch of one step on one rank (a pure function of its arguments)."""
        s = shard_seed(seed, "online", step * world + rank)
        cap, windows, cur, used, j, dropped, chunk = n_ctx - 1, [], [], 0, 0, 0, self.chunk
        while True:
            gen = self.gen_at(step)
            probs = [generate(gen, problem_seed(s, j + k)) for k in range(chunk)]
            j += chunk
            texts = [recall_drill(p) if step < self.recall_end else (p.problem, p.solution, p.answer) for p in probs]
            for u in encode_units(self.tok, *zip(*texts)):
                if len(u.ids) > cap:
                    dropped += 1
                    if dropped > 1000 and not windows and not cur:
                        raise DataError(f"n_ctx: {n_ctx} is shorter than every generated problem")
                    continue
                if used + len(u.ids) > cap:
                    windows.append(cur)
                    cur, used = [], 0
                    if len(windows) == batch_size:  # this unit would open window batch_size+1: stop
                        ids, mask = render(windows, n_ctx, self.tok.markers.end, loss_on)
                        return Batch(ids, mask, {"step": step + 1}, sum(map(len, windows)), dropped)
                cur.append(u)
                used += len(u.ids)

    def batches(
        self,
        position: dict | None = None,
        *,
        n_ctx: int,
        batch_size: int,
        loss_on: str = "solution",
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> Iterator[Batch]:
        _check_args(n_ctx, batch_size, loss_on, rank, world)
        start = (position or {}).get("step", 0)
        kw = dict(n_ctx=n_ctx, batch_size=batch_size, loss_on=loss_on, seed=seed, rank=rank, world=world)
        if self.num_workers == 0:
            step = start
            while True:
                yield self.make(step, **kw)
                step += 1
        stream = _Steps(self, start, self.num_workers, kw)
        yield from torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=self.num_workers, prefetch_factor=4, persistent_workers=False
        )


def recall_drill(p: Problem) -> tuple[str, str, int]:
    """``(prompt, solution, answer)`` of problem ``p`` as an associative-recall drill: its statement without the
    question, then every number it gives recalled by name in random order (a function of the problem's seed); the
    problem itself where its statement gives no number."""
    drill = recall(p.graph, random.Random(f"recall:{p.seed}"))
    return (p.problem, p.solution, p.answer) if drill is None else (p.statement, *drill)


def online(gen: GenConfig, tok: Tokenizer, cfg) -> OnlineProblems:
    """The online source of a training recipe (``cfg``: a TrainConfig): its data workers, its op curriculum
    (``cfg.late_op_dist`` from step ``cfg.late_from * cfg.steps`` on) applied to ``gen``, and its recall warm-up
    (``cfg.recall_warmup * cfg.steps`` steps)."""
    late = None
    if cfg.late_op_dist:
        late = (gen.with_(op_dist=cfg.late_op_dist), int(cfg.late_from * cfg.steps))
    recall_end = int(cfg.recall_warmup * cfg.steps)
    return OnlineProblems(gen, tok, num_workers=cfg.data_workers, late=late, recall_end=recall_end)


class _Steps(torch.utils.data.IterableDataset):
    """Worker w of W yields steps start+w, start+w+W, …; the DataLoader interleaves them back in order."""

    def __init__(self, source: OnlineProblems, start: int, workers: int, kw: dict):
        self.source, self.start, self.workers, self.kw = source, start, workers, kw

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        w = 0 if info is None else info.id
        step = self.start + w
        while True:
            yield self.source.make(step, **self.kw)
            step += self.workers
