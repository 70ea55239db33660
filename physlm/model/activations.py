"""Named activation sites of our GPT-2+RoPE model and scoped capture of them (STYLE practice 11).

Probes refer to hidden states *only* by TransformerLens-style site names:

* ``blocks.{l}.resid_post`` — the residual stream after block ``l`` (0-based), i.e. the output of
  ``gpt_neox.layers[l]``, *before* any final LayerNorm;
* ``ln_final.hook_normalized`` — the output of the final LayerNorm (what the LM head reads). Layer index
  ``-1`` names this site everywhere in physlm (``ProbeConfig.layer = -1``).

Why forward hooks and not ``output_hidden_states``: in transformers 5 the last entry of ``hidden_states``
is the *post-final-LN* state, not ``resid_post`` of the last block (checked on 5.24: ``hidden_states[-1] ==
last_hidden_state``), and the convention has changed between versions. Hooks on the modules themselves
mean exactly what the names say. They also let a probe on block ``l`` stop the forward pass right after
block ``l`` (:class:`_Stop`), so a layer-0 probe pays for one block, not twelve (:func:`end_states`, which
reads one site, calls the blocks up to it itself).

Reading position: every probe sequence ends with its ``[END]`` marker, so a batch is right-padded and the
state is gathered at each row's last real token (``end_index``). Causal attention means right padding
never changes the real tokens' states, so the mask is not needed; one site is read through :func:`end_states`,
which runs its block's MLP on the end positions only (:func:`capture` passes the mask when it reads several).

Reads nothing from disk; :func:`capture` returns ``{site: np.ndarray (n, d_model)}`` in float32.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

FINAL = "ln_final.hook_normalized"
"""Site name of the final LayerNorm's output (layer index -1)."""
_BLOCK = re.compile(r"blocks\.(\d+)\.resid_post")


def site_name(layer: int) -> str:
    """``-1`` -> ``ln_final.hook_normalized``; ``l >= 0`` -> ``blocks.{l}.resid_post``."""
    if layer == -1:
        return FINAL
    if layer < 0:
        raise ValueError(f"layer: must be -1 (final LN) or a block index >= 0, got {layer}")
    return f"blocks.{layer}.resid_post"


def layer_of(site: str) -> int:
    """Inverse of :func:`site_name`."""
    if site == FINAL:
        return -1
    m = _BLOCK.fullmatch(site)
    if not m:
        raise ValueError(f"unknown activation site {site!r}; expected 'blocks.<l>.resid_post' or {FINAL!r}")
    return int(m[1])


def all_sites(n_layer: int) -> list[str]:
    """Every site of an ``n_layer`` model, shallow to deep, the final LN last."""
    return [site_name(layer) for layer in range(n_layer)] + [FINAL]


def _parts(model):
    """(base transformer, list of blocks, final norm) of a GPTNeoX causal LM or its base model."""
    base = getattr(model, "gpt_neox", model)
    if not hasattr(base, "layers") or not hasattr(base, "final_layer_norm"):
        raise TypeError(f"{type(model).__name__}: expected a GPTNeoX model (physlm.model.build)")
    return base, base.layers, base.final_layer_norm


class _Stop(Exception):
    """Raised by the hook of the deepest requested site: nothing after it is needed."""


@contextmanager
def cache_sites(model, sites: Sequence[str], stop: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward pass of ``model`` fills the yielded dict with ``{site: (batch pos
    d_model)}`` (with grad, if enabled). ``stop=True`` aborts the pass after the deepest site (the caller
    catches :class:`_Stop`; :func:`run_with_cache` does). Hooks are removed on exit, even on error."""
    base, layers, norm = _parts(model)
    cache: dict[str, torch.Tensor] = {}
    depth = {s: (len(layers) if layer_of(s) == -1 else layer_of(s)) for s in sites}
    for s, d in depth.items():
        if d > len(layers):
            raise ValueError(f"site {s!r}: the model has only {len(layers)} blocks")
    deepest = max(depth.values()) if depth else -1

    def hook_for(site: str):
        def hook(_module, _inputs, output):
            # GPTNeoXLayer returns a tensor in transformers 5 (a tuple in 4.x): take the hidden state.
            cache[site] = output[0] if isinstance(output, tuple) else output  # (batch pos d_model)
            if stop and depth[site] == deepest:
                raise _Stop

        return hook

    handles = [(norm if layer_of(s) == -1 else layers[layer_of(s)]).register_forward_hook(hook_for(s)) for s in sites]
    try:
        yield cache
    finally:
        for h in handles:
            h.remove()


def run_with_cache(
    model,
    sites: Sequence[str],
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One forward pass of the base transformer (no LM head) -> ``{site: (batch pos d_model)}``, stopped
    after the deepest requested site. Pass ``input_ids`` or ``inputs_embeds`` (batch pos d_model)."""
    base, _, _ = _parts(model)
    with cache_sites(model, sites) as cache:
        try:
            base(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False)
        except _Stop:
            pass
    missing = [s for s in sites if s not in cache]
    assert not missing, f"sites not reached by the forward pass: {missing}"
    return dict(cache)


def end_states(
    model,
    layer: int,
    end: torch.Tensor,
    input_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The state at site ``layer`` of each row's position ``end`` -> ``(batch d_model)``: what
    ``gather_at(run_with_cache(model, [site], ...)[site], end)`` gives, for less. The blocks before the site's
    run as the model runs them (called one by one, as ``GPTNeoXModel.forward`` calls them without a mask or a
    cache); the site's block runs its attention on every position (its keys and values are every position's)
    but its MLP only on the rows the end position reads: the end itself and, per Canon layer in the MLP's path
    (C, D), ``kernel - 1`` rows before it (a V-probe step on the tiny preset: the last block's MLP was a third
    of its work). Right padding (no mask) is assumed, as everywhere here; a row too short for those rows, or a
    parallel-residual block, takes the full pass. With gradients on, a model marked by :func:`compile_blocks`
    runs its blocks compiled."""
    base, layers, norm = _parts(model)
    last = len(layers) - 1 if layer == -1 else layer
    rows = _mlp_rows(getattr(model, "config", None))
    if getattr(layers[last], "use_parallel_residual", False) or int(end.min()) < rows - 1:
        site = site_name(layer)
        return gather_at(run_with_cache(model, [site], input_ids, inputs_embeds)[site], end)
    h = base.embed_in(input_ids) if inputs_embeds is None else inputs_embeds  # (batch pos d_model)
    out = _run(base, layers[:last], layers[last], h, _tail, end, rows)
    return norm(out) if layer == -1 else out


def _run(base, blocks, last, h: torch.Tensor, tail, *args) -> torch.Tensor:
    """The embedded input ``h (batch pos d_model)`` through ``blocks`` (called one by one, as
    ``GPTNeoXModel.forward`` calls them without a mask or a cache), then block ``last`` through ``tail(last, h,
    pos, rotary, *args)`` -> its output. With gradients on, a base marked by :func:`compile_blocks` runs the compiled
    functions."""
    pos = torch.arange(h.shape[1], device=h.device)[None]  # (1 pos)
    rotary = base.rotary_emb(h, position_ids=pos)
    h = base.emb_dropout(h)
    compiled = getattr(base, COMPILED, False) and torch.is_grad_enabled()
    fns = _compiled() if compiled else {}
    with _compile_settings() if compiled else contextlib.nullcontext():
        for block in blocks:
            h = fns.get(_block, _block)(block, h, pos, rotary)
        return fns.get(tail, tail)(last, h, pos, rotary, *args)


def _block(block, h: torch.Tensor, pos: torch.Tensor, rotary) -> torch.Tensor:
    """One whole block, as the model runs it (causal attention: no mask, no cache)."""
    return block(h, attention_mask=None, position_ids=pos, position_embeddings=rotary)


def _tail(block, h: torch.Tensor, pos: torch.Tensor, rotary, end: torch.Tensor, rows: int) -> torch.Tensor:
    """The site's block: attention on every position, the residual, then the MLP on the ``rows`` rows up to
    each ``end`` -> the block's output at ``end`` ``(batch d_model)``."""
    normed = block.input_layernorm(h)
    attn, _ = block.attention(normed, attention_mask=None, position_ids=pos, position_embeddings=rotary)
    x = h + block.post_attention_dropout(attn)  # the residual after attention (batch pos d_model)
    index = end[:, None] - torch.arange(rows - 1, -1, -1, device=end.device)  # (batch rows), the end last
    x = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))  # (batch rows d_model)
    return (block.post_mlp_dropout(block.mlp(block.post_attention_layernorm(x))) + x)[:, -1]


def final_states_at(model, input_ids: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """The final LayerNorm's states at the positions ``at`` marks -> ``(n, d_model)`` in row-major order: what
    ``model.base_model(input_ids).last_hidden_state[at]`` gives, for less. A training step's sparse loss reads
    the solution's positions only (about a quarter of a packed row), so the last block runs its attention on
    every position but its MLP, and the final LayerNorm, on those positions and the ``kernel - 1`` before each
    per Canon layer on the MLP's path (:func:`_mlp_rows`), gathered to the front of their row. Gathered so, each
    marked position keeps its receptive field contiguous, and a field that reaches a row's start still begins
    at the row's position 0, so the Canon convolutions see what they see in the full pass. ``at (batch pos)``
    bool; no padding mask (training rows are packed); a parallel-residual model takes the full pass. A model
    marked by :func:`compile_blocks` runs its blocks compiled while gradients are on."""
    base, layers, norm = _parts(model)
    if getattr(layers[-1], "use_parallel_residual", False):
        return base(input_ids=input_ids, use_cache=False).last_hidden_state[at]
    keep = at.clone()  # (batch pos): the marked positions and the rows their MLP output reads
    for j in range(1, _mlp_rows(getattr(model, "config", None))):
        keep[:, :-j] |= at[:, j:]
    width = int(keep.sum(1).max())
    index = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :width]  # kept positions first (batch K)
    pick = ((keep.cumsum(1) - 1) + width * torch.arange(len(at), device=at.device)[:, None])[at]  # (n,) in batch x K
    return _run(base, layers[:-1], layers[-1], base.embed_in(input_ids), _tail_rows, index, pick, norm)


def _tail_rows(block, h: torch.Tensor, pos: torch.Tensor, rotary, index: torch.Tensor, pick: torch.Tensor, norm):
    """The last block and the final norm: attention on every position, the residual, then the MLP on the
    positions ``index (batch K)`` of each row, and the norm on ``pick`` (flat indices into batch x K) of those
    -> ``(len(pick) d_model)``."""
    normed = block.input_layernorm(h)
    attn, _ = block.attention(normed, attention_mask=None, position_ids=pos, position_embeddings=rotary)
    x = h + block.post_attention_dropout(attn)  # (batch pos d_model)
    x = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))  # (batch K d_model)
    out = block.post_mlp_dropout(block.mlp(block.post_attention_layernorm(x))) + x
    return norm(out.flatten(0, 1).index_select(0, pick))


COMPILED = "physlm_compiled_blocks"
"""Attribute of a base model that :func:`compile_blocks` marks."""


def compile_blocks(model) -> None:
    """Let :func:`end_states` and :func:`final_states_at` run ``model``'s blocks compiled (``torch.compile`` of
    :func:`_block`, :func:`_tail` and :func:`_tail_rows`, dynamic shapes) whenever gradients are on, as a V-probe's
    and a training step's are (``train.compile=body``): the blocks'
    elementwise work (LayerNorm, rotary, GELU, Canon's shifted sums) becomes fused kernels forward and backward
    (the tiny preset, one thread: a V-probe step's forward and backward 73 -> 46-50 ms against eager blocks with
    compiled Canon layers, the whole step with its batch and optimizer 64 -> 54 ms). One compiled set serves
    every block of every model of the same architecture (the parameters are inputs, not constants); the model's
    modules, state dict and checkpoints are untouched. Without gradients (predictions) the blocks run eagerly:
    one graph fewer to compile."""
    setattr(_parts(model)[0], COMPILED, True)


@functools.cache
def _compiled() -> dict:
    """``{fn: compiled fn}`` for :func:`_block`, :func:`_tail` and :func:`_tail_rows`, made once per process
    (torch.compile compiles each at its first call)."""
    return {fn: torch.compile(fn, dynamic=True) for fn in (_block, _tail, _tail_rows)}


@contextmanager
def _compile_settings():
    """Two settings of the compilation of the blocks (read when a call compiles):

    * no duck shapes: dynamic sizes that happen to be equal are not one symbol; a batch whose length equals the
      width (64 in the tiny preset) would otherwise pin the length to it and recompile at the next length;
    * floats specialized: with ``dynamic=True`` a module's float attribute (the LayerNorms' ``eps``) would be a
      symbol that inductor cannot keep, and the trace of the block would restart from scratch once (tiny
      preset, one thread: the first V-probe steps 15 -> 10 s of compilation, in every probe process and run).
    """
    from torch.fx.experimental import _config

    with _config.patch(use_duck_shape=False), torch._dynamo.config.patch(specialize_float=True):
        yield


def _mlp_rows(config) -> int:
    """Positions the MLP of a block needs to give one position's output: 1, plus ``kernel - 1`` per Canon
    layer on its path (C on its input, D inside it)."""
    canon = getattr(config, "canon", "") or ""
    return 1 + sum(site in canon for site in "CD") * (getattr(config, "canon_kernel", 1) - 1)


def pad_right(
    seqs: Sequence[Sequence[int]], pad_id: int, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad token sequences -> ``ids (batch pos)``, ``mask (batch pos)`` and ``end_index (batch,)`` =
    position of each row's last real token (where its [END] marker sits)."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    if (lens == 0).any():
        raise ValueError("pad_right: empty sequence")
    ids = torch.full((len(seqs), int(lens.max())), pad_id, dtype=torch.long)  # (batch pos)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    mask = torch.arange(ids.shape[1])[None, :] < lens[:, None]  # (batch pos) bool
    return ids.to(device), mask.long().to(device), (lens - 1).to(device)


def gather_at(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x (batch pos d_model)``, ``index (batch,)`` -> ``x[b, index[b]]`` as ``(batch d_model)``."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def capture(
    model, batches: Iterable[Sequence[Sequence[int]]], layers: Sequence[int | str], pad_id: int = 0
) -> dict[str, np.ndarray]:
    """Hidden states at the last token ([END]) of every sequence, for each site.

    Args:
        batches: an iterable of batches, each a list of token-id sequences (right-padded here).
        layers: layer indices (-1 = final LN) or site names.

    Returns ``{site: float32 array (n, d_model)}`` with rows in input order. bf16 autocast on CUDA."""
    sites = [s if isinstance(s, str) else site_name(s) for s in layers]
    dev = _device(model)
    was_training = model.training
    model.eval()
    out: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    try:
        for seqs in batches:
            ids, mask, end = pad_right(seqs, pad_id, dev)  # (batch pos), (batch pos), (batch,)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                if len(sites) == 1:  # one site: its block's MLP on the end rows only
                    states = {sites[0]: end_states(model, layer_of(sites[0]), end, input_ids=ids)}
                else:
                    cache = run_with_cache(model, sites, input_ids=ids, attention_mask=mask)
                    states = {s: gather_at(cache[s], end) for s in sites}
            for s in sites:
                out[s].append(states[s].float().cpu().numpy())  # (batch d_model)
    finally:
        model.train(was_training)
    d = model.config.hidden_size
    return {s: (np.concatenate(v) if v else np.zeros((0, d), np.float32)) for s, v in out.items()}


def batched(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of ``size`` (the last one shorter)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
