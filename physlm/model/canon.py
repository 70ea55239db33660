"""Canon layers (Physics of LMs Part 4.1) on our GPT-2+RoPE model: short causal depthwise convolutions.

A Canon layer mixes each position with the ``k - 1`` before it, channel by channel:
``y_t = x_t + sum_j w[:, j] * x_{t-k+1+j}`` (the residual is on by default, as the paper recommends for
Transformers). Placed at up to four sites of every block (``ModelConfig.canon``, a subset of "ABCD"):

* A — the attention's input, after ``input_layernorm``              (width d)
* B — the fused q/k/v projection's output, before RoPE              (width 3d)
* C — the MLP's input, after ``post_attention_layernorm``            (width d)
* D — inside the MLP, the ``dense_h_to_4h`` output before the GELU  (width 4d)

Each sits on an existing module as a forward hook, so the GPT-NeoX block's own code (and its state-dict
names) are untouched: a model without Canon is exactly physlm.model's, and a Canon model's checkpoint is
the plain one plus ``gpt_neox.layers.{l}.canon_{a,b,c,d}.weight`` tensors of shape ``(channels, k)``.

Why it can matter for iGSM: the lookup "X's Y equals 5" needs the two names and the value at one position.
Without Canon a 2-layer model must spend attention on gathering them; a kernel of 4 puts ``X 's Y equals``
in one position's input for free, and two Canon sites stacked reach the value token too.

Decoding. A convolution has state: the last ``k - 1`` inputs of each site. With a KV cache (HF ``generate``)
the state lives on the cache object (``cache.physlm_canon``, a dict per site), is fresh when the cache is
empty, and is reordered with the cache in beam search (``_reorder_cache``); so cached decoding gives what a
full recompute gives (tests/test_canon.py). Left padding: positions whose attention mask is 0 are zeroed
before the convolution, so a padded row computes what it would alone (the causal conv's own zero padding).
The context (mask, state) reaches the hooks through one :class:`Context` shared by every Canon of a model,
set by :meth:`CanonModel.forward` and cleared after it.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, GPTNeoXConfig
from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXForCausalLM, GPTNeoXModel, GPTNeoXPreTrainedModel

STATE_ATTR = "physlm_canon"
"""Attribute of the KV cache object that holds the Canon states ``{site: (batch k-1 channels)}``."""


def _cache_kw() -> str:
    """The cache keyword of GPTNeoXModel.forward: "cache" in transformers >= 5.x, "past_key_values" before."""
    params = inspect.signature(GPTNeoXModel.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


CACHE_KW = _cache_kw()


class CanonConfig(GPTNeoXConfig):
    """GPT-NeoX config + the Canon fields; ``model_type`` "physlm_canon" (registered with the Auto classes)."""

    model_type = "physlm_canon"

    def __init__(
        self, canon: str = "AC", canon_kernel: int = 4, canon_residual: bool = True, canon_init: str = "torch", **kwargs
    ):
        self.canon, self.canon_kernel = canon, canon_kernel
        self.canon_residual, self.canon_init = canon_residual, canon_init
        super().__init__(**kwargs)


class Context:
    """What the Canon hooks of one forward pass need besides their input: which positions are real, and the
    decoding state dict (None: no cache, nothing kept)."""

    def __init__(self):
        self.valid: torch.Tensor | None = None  # (batch pos) 1 = a real token, 0 = left padding
        self.state: dict[str, torch.Tensor] | None = None


class Canon(nn.Module):
    """``x (batch pos channels)`` -> ``x + causal_depthwise_conv_k(x)`` (or the conv alone without residual)."""

    def __init__(self, channels: int, kernel: int, residual: bool, init: str, std: float, key: str, ctx: Context):
        super().__init__()
        self.kernel, self.residual, self.key, self.ctx = kernel, residual, key, ctx
        self.weight = nn.Parameter(torch.empty(channels, kernel))  # (channels k); w[:, k-1] weighs the current token
        self.init, self.std = init, std
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.init == "torch":
                bound = 1 / math.sqrt(self.kernel)
                self.weight.uniform_(-bound, bound)
            elif self.init == "normal":
                self.weight.normal_(0.0, self.std)
            else:
                self.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx, k, t = self.ctx, self.kernel, x.shape[1]
        if ctx.valid is not None:
            x = x * ctx.valid[:, -t:, None].to(x.dtype)  # left padding contributes nothing
        prev = ctx.state.get(self.key) if ctx.state is not None else None  # (batch k-1 channels)
        xp = F.pad(x, (0, 0, k - 1, 0)) if prev is None else torch.cat([prev.to(x.dtype), x], dim=1)
        if ctx.state is not None:
            ctx.state[self.key] = xp[:, xp.shape[1] - (k - 1) :].detach()
        return shifted_sum(x, xp, self.weight, self.residual)


def shifted_sum(x: torch.Tensor, xp: torch.Tensor, weight: torch.Tensor, residual: bool) -> torch.Tensor:
    """``x (batch t c)``, ``xp`` = x after the k - 1 previous inputs -> ``[x +] sum_j weight[:, j] * xp[:, j:j+t]``.

    Eager code reads the taps as one contiguous ``(k channels)`` copy when ``t > 1``: a broadcast operand of
    stride k keeps the multiplication scalar (a decoding step, ``t = 1``, skips the copy). Without autograd the
    sum is accumulated in place: the same products and sums in the same order, bit for bit, without a fresh
    activation-sized tensor per operation (on a CPU a fresh tensor costs about as much as the operation that
    fills it). The tiny preset's site D (64 x 100 x 256, one thread): 30 -> 15 ms without autograd."""
    t = x.shape[1]
    if torch.compiler.is_compiling():
        taps, in_place = canon_taps(weight), False  # (k channels): taps[j] = weight[:, j]
    else:
        taps = weight.t().contiguous() if t > 1 else weight.t()
        in_place = not (torch.is_grad_enabled() and (xp.requires_grad or weight.requires_grad))
    y = xp[:, 0:t] * taps[0]  # (batch pos channels)
    for j in range(1, taps.shape[0]):
        term = xp[:, j : j + t] * taps[j]
        y = y.add_(term) if in_place else y + term
    if not residual:
        return y
    return y.add_(x) if in_place else x + y


@torch.library.custom_op("physlm::canon_taps", mutates_args=())
def canon_taps(weight: torch.Tensor) -> torch.Tensor:
    """``weight (channels k)`` -> its taps ``(k channels)``, a contiguous copy. An opaque op, so that torch.compile
    keeps the copy a buffer of its own: read through ``weight[:, j]`` (stride k), the fused kernel of a Canon
    layer (and of what inductor fuses with it: the GELU after site D, the LayerNorms) cannot use vector loads and
    runs scalar on a CPU — a Canon layer with its GELU, forward and backward, 91 ms compiled against 40 ms eager
    and 14-17 ms with this copy (16 x 256 x 256, one thread); in the tiny preset's compiled training step the
    blocks' fused kernels 70 -> 43 ms. Used while compiling only: eager code makes the same copy without a custom-op
    dispatch (:func:`shifted_sum`)."""
    return weight.t().contiguous()


@canon_taps.register_fake
def _(weight: torch.Tensor) -> torch.Tensor:
    return weight.new_empty(weight.shape[1], weight.shape[0])


def _taps_backward(_ctx, grad: torch.Tensor) -> torch.Tensor:
    return grad.t()


canon_taps.register_autograd(_taps_backward)


def _after(canon: Canon):
    """A forward hook that passes a module's output through ``canon``."""

    def hook(_module, _inputs, output):
        return canon(output)

    return hook


class CanonModel(GPTNeoXModel):
    """GPTNeoXModel with Canon layers hooked into every block (module docstring)."""

    def __init__(self, config: CanonConfig):
        super().__init__(config)
        self.canon_ctx = Context()
        d, k = config.hidden_size, config.canon_kernel
        sites = {
            "A": ("input_layernorm", d),
            "B": ("attention.query_key_value", 3 * d),
            "C": ("post_attention_layernorm", d),
            "D": ("mlp.dense_h_to_4h", config.intermediate_size),
        }
        for i, layer in enumerate(self.layers):
            for p in config.canon:
                target, width = sites[p]
                canon = Canon(
                    width,
                    k,
                    config.canon_residual,
                    config.canon_init,
                    config.initializer_range,
                    f"{i}.{p}",
                    self.canon_ctx,
                )
                layer.add_module(f"canon_{p.lower()}", canon)
                layer.get_submodule(target).register_forward_hook(_after(canon))

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        ctx = self.canon_ctx
        use_cache = kwargs.get("use_cache")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        cache = kwargs.get(CACHE_KW)
        if cache is None and use_cache:  # made here, not inside, so that the Canon state can live on it
            cache = kwargs[CACHE_KW] = DynamicCache(config=self.config)
        if cache is not None:
            state = getattr(cache, STATE_ATTR, None)
            if cache.get_seq_length() == 0:
                state = {}
                setattr(cache, STATE_ATTR, state)
            elif state is None:
                raise ValueError("a KV cache filled without its Canon state: decode with the same model")
            ctx.state = state
        ctx.valid = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
        try:
            return super().forward(input_ids, attention_mask=attention_mask, **kwargs)
        finally:
            ctx.valid, ctx.state = None, None


class CanonForCausalLM(GPTNeoXForCausalLM):
    """GPTNeoXForCausalLM over a :class:`CanonModel`; ``generate`` and beam search carry the Canon state."""

    config_class = CanonConfig

    def __init__(self, config: CanonConfig):
        GPTNeoXPreTrainedModel.__init__(self, config)
        self.gpt_neox = CanonModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, Canon):
            module.reset_parameters()
        else:
            super()._init_weights(module)

    def _reorder_cache(self, cache, beam_idx: torch.Tensor):
        cache.reorder_cache(beam_idx)
        state = getattr(cache, STATE_ATTR, None) or {}
        for key, value in state.items():
            state[key] = value.index_select(0, beam_idx.to(value.device))
        return cache


AutoConfig.register(CanonConfig.model_type, CanonConfig)
AutoModelForCausalLM.register(CanonConfig, CanonForCausalLM)
