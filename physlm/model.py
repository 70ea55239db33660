"""The paper's model: GPT-2 blocks with rotary position embeddings (igsm-spec.md C.1), built from transformers.

``GPT2-ℓ-h`` = ℓ layers, h heads of 64 dims (width 64·h). We do not write our own module: a transformers
``GPTNeoXForCausalLM`` with ``use_parallel_residual=False`` (sequential residual: x + attn(ln1(x)), then
+ mlp(ln2(.))), full rotary (``partial_rotary_factor=1``), biases, a 4x GELU MLP and a final LayerNorm IS the
GPT-2 block with its learned absolute positions replaced by RoPE — and HF tooling (``generate``, SDPA
attention, ``save_pretrained``) comes for free. tests/test_model.py pins this against a hand-written
GPT-2+RoPE forward pass. Choices the paper leaves open (spec C.2 "unspecified"):

* GELU: the tanh approximation ("gelu_pytorch_tanh"), i.e. GPT-2's ``gelu_new`` computed by one fused op;
* RoPE base 10,000, NeoX "rotate half" pairing (dims i and i + hd/2), no dropout, init std 0.02;
* tied input/output embeddings, as GPT-2 (a config switch).

Parameter counts: a block holds 12d² + 13d parameters (qkv 3d²+3d, out d²+d, MLP 8d²+5d, two LayerNorms
4d), the table of spec C.1; embeddings (and an untied LM head) are counted apart.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import torch

from physlm.steps import HASH_IF_SET


CANON_PLACEMENTS = "ABCD"
"""Canon sites of a block (physlm/canon.py): A attention input, B q/k/v, C MLP input, D inside the MLP."""
CANON_INITS = ("torch", "normal", "zero")
"""Canon weight inits: Conv1d's default U(+-1/sqrt(k)) as the Part 4.1 code, N(0, init_std), or zero."""


class ModelConfigError(ValueError):
    """A model configuration that cannot be built; the message names the field."""


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int = 12
    """Transformer blocks (ℓ in GPT2-ℓ-h)."""
    n_head: int = 12
    """Attention heads (h in GPT2-ℓ-h)."""
    head_dim: int = 64
    """Dims per head; width = head_dim * n_head (64·h in the paper's grid)."""
    vocab_size: int = 50257
    """Embedding rows: the tokenizer's vocab size (50257 for GPT-2 BPE)."""
    n_ctx: int = 768
    """Training context (spec C.2: 768 med, 1024 hard); RoPE itself extrapolates past it."""
    rope_theta: float = 10000.0
    """RoPE base (unspecified in the paper; the common default)."""
    dropout: float = 0.0
    """Attention and residual dropout; 0 as nothing is repeated in unlimited data (and 2x faster on CPU)."""
    tie_embeddings: bool = True
    """Share the token embedding with the LM head, as GPT-2 does."""
    activation: str = "gelu_pytorch_tanh"
    """MLP activation (a transformers ACT2FN name); GPT-2's tanh-GELU by default."""
    init_std: float = 0.02
    """Normal init std of every Linear/Embedding (GPT-2's)."""
    # Options added after the paper's model (HASH_IF_SET: at their defaults they enter no step id).
    rotary_fraction: float = field(default=1.0, metadata=HASH_IF_SET)
    """Share of each head's dims that RoPE rotates (1 = full, the paper's; GPT-NeoX's own default is 0.25)."""
    canon: str = field(default="", metadata=HASH_IF_SET)
    """Canon layer sites, a subset of "ABCD" in that order (physlm/canon.py); "" = none (the paper's model)."""
    canon_kernel: int = field(default=4, metadata=HASH_IF_SET)
    """Canon convolution width: the current token and the k-1 before it."""
    canon_residual: bool = field(default=True, metadata=HASH_IF_SET)
    """Canon output = input + conv(input) (recommended for Transformers) or conv(input) alone."""
    canon_init: str = field(default="torch", metadata=HASH_IF_SET)
    """Canon weight init: "torch" (Conv1d's default, as the Part 4.1 code), "normal" (init_std) or "zero"."""

    def __post_init__(self) -> None:
        for f in ("n_layer", "n_head", "head_dim", "vocab_size", "n_ctx"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 1:
                raise ModelConfigError(f"{f}: must be a positive integer, got {getattr(self, f)!r}")
        if self.head_dim % 2:
            raise ModelConfigError(f"head_dim: must be even for rotary embeddings, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.rope_theta <= 0:
            raise ModelConfigError(f"rope_theta: must be > 0, got {self.rope_theta}")
        rot = self.head_dim * self.rotary_fraction
        if not 0 < self.rotary_fraction <= 1 or rot != int(rot) or int(rot) % 2:
            raise ModelConfigError(f"rotary_fraction: must be in (0, 1] and rotate an even number of the "
                                   f"{self.head_dim} head dims, got {self.rotary_fraction}")
        if self.canon and (any(p not in CANON_PLACEMENTS for p in self.canon)
                           or list(self.canon) != sorted(set(self.canon))):
            raise ModelConfigError(f"canon: a subset of {CANON_PLACEMENTS!r} in that order, e.g. 'AC', got {self.canon!r}")
        if not 1 <= self.canon_kernel <= 16:
            raise ModelConfigError(f"canon_kernel: must be in 1..16, got {self.canon_kernel}")
        if self.canon_init not in CANON_INITS:
            raise ModelConfigError(f"canon_init: must be one of {CANON_INITS}, got {self.canon_init!r}")

    @property
    def width(self) -> int:
        return self.head_dim * self.n_head

    @property
    def name(self) -> str:
        """``GPT2-ℓ-h`` (with the head dim appended when it is not the paper's 64)."""
        return f"GPT2-{self.n_layer}-{self.n_head}" + ("" if self.head_dim == 64 else f"-hd{self.head_dim}")

    @classmethod
    def from_name(cls, name: str, **overrides) -> "ModelConfig":
        """``ModelConfig.from_name("GPT2-12-12", vocab_size=1730)``; optional ``-hdK`` suffix for head dim K."""
        m = re.fullmatch(r"GPT2-(\d+)-(\d+)(?:-hd(\d+))?", name)
        if not m:
            raise ModelConfigError(f"name: expected 'GPT2-<layers>-<heads>', got {name!r}")
        sizes = {"n_layer": int(m[1]), "n_head": int(m[2])}
        if m[3]:
            sizes["head_dim"] = int(m[3])
        return cls(**{**sizes, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)

    # -------------------------------------------------------------- sizes
    def canon_params(self) -> int:
        """Canon weights: k per channel at each site of each block (A: d, B: 3d, C: d, D: 4d channels)."""
        widths = {"A": 1, "B": 3, "C": 1, "D": 4}
        return self.n_layer * self.canon_kernel * self.width * sum(widths[p] for p in self.canon)

    def non_embedding_params(self) -> int:
        """12d² + 13d per block (spec C.1 table) + the final LayerNorm's 2d (+ Canon weights, if any)."""
        d = self.width
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d + self.canon_params()

    def params(self) -> int:
        """All trainable parameters: blocks + token embedding (+ the LM head when untied)."""
        emb = self.vocab_size * self.width
        return self.non_embedding_params() + emb * (1 if self.tie_embeddings else 2)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (fwd + bwd = 3x fwd): 6·(block params + LM-head matmul) + the attention
        scores/values 12·ℓ·d·T (PaLM appendix B; nanoGPT's ``estimate_mfu``)."""
        t = self.n_ctx if seq_len is None else seq_len
        return 6 * (self.non_embedding_params() + self.vocab_size * self.width) + 12 * self.n_layer * self.width * t


def hf_config(cfg: ModelConfig):
    """The transformers config that realises GPT-2 + RoPE for ``cfg``: a ``GPTNeoXConfig``, or with Canon
    layers its subclass ``physlm.canon.CanonConfig``."""
    from transformers import GPTNeoXConfig

    kind, extra = GPTNeoXConfig, {}
    if cfg.canon:
        from physlm.canon import CanonConfig

        kind, extra = CanonConfig, dict(canon=cfg.canon, canon_kernel=cfg.canon_kernel,
                                        canon_residual=cfg.canon_residual, canon_init=cfg.canon_init)
    return kind(**extra,
        vocab_size=cfg.vocab_size, hidden_size=cfg.width, num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head, intermediate_size=4 * cfg.width, hidden_act=cfg.activation,
        max_position_embeddings=cfg.n_ctx, initializer_range=cfg.init_std, layer_norm_eps=1e-5,
        attention_dropout=cfg.dropout, hidden_dropout=cfg.dropout, attention_bias=True,
        use_parallel_residual=False,  # GPT-2's sequential residual, not NeoX's parallel attn+MLP
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta, "partial_rotary_factor": cfg.rotary_fraction},
        tie_word_embeddings=cfg.tie_embeddings, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        use_cache=True)


def build(cfg: ModelConfig, attn: str = "sdpa"):
    """A freshly initialised ``GPTNeoXForCausalLM`` (``physlm.canon.CanonForCausalLM`` with Canon layers), fp32,
    on CPU, for ``cfg``; ``attn`` = "sdpa" | "eager"."""
    from transformers import GPTNeoXForCausalLM

    if cfg.canon:
        from physlm.canon import CanonForCausalLM as cls
    else:
        cls = GPTNeoXForCausalLM
    model = cls._from_config(hf_config(cfg), attn_implementation=attn)
    got = sum(p.numel() for p in model.parameters())
    assert got == cfg.params(), f"built {got} params, ModelConfig.params() says {cfg.params()}"
    return model


def count_params(model: torch.nn.Module) -> dict:
    """``{"params", "non_embedding_params"}`` of a built model (shared tensors counted once)."""
    seen, total, emb = set(), 0, 0
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if name.endswith(("embed_in.weight", "lm_head.weight")):
            emb += p.numel()
    return {"params": total, "non_embedding_params": total - emb}


def save(model, folder: str) -> None:
    """``save_pretrained`` (config.json + model.safetensors) to a local folder."""
    model.save_pretrained(folder, safe_serialization=True)


def load(folder: str, attn: str = "sdpa"):
    """Reload a model written by :func:`save` (or any local GPTNeoX folder; Canon models included)."""
    import physlm.canon  # noqa: F401  (registers the Canon config with the Auto classes)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn, local_files_only=True)
