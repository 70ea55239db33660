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

import torch

from physlm.config import ModelConfig


def hf_config(cfg: ModelConfig):
    """The transformers config that realises GPT-2 + RoPE for ``cfg``: a ``GPTNeoXConfig``, or with Canon
    layers its subclass ``physlm.model.canon.CanonConfig``."""
    from transformers import GPTNeoXConfig

    kind, extra = GPTNeoXConfig, {}
    if cfg.canon:
        from physlm.model.canon import CanonConfig

        kind, extra = (
            CanonConfig,
            dict(
                canon=cfg.canon,
                canon_kernel=cfg.canon_kernel,
                canon_residual=cfg.canon_residual,
                canon_init=cfg.canon_init,
            ),
        )
    return kind(
        **extra,
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.width,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        intermediate_size=4 * cfg.width,
        hidden_act=cfg.activation,
        max_position_embeddings=cfg.n_ctx,
        initializer_range=cfg.init_std,
        layer_norm_eps=1e-5,
        attention_dropout=cfg.dropout,
        hidden_dropout=cfg.dropout,
        attention_bias=True,
        use_parallel_residual=False,  # GPT-2's sequential residual, not NeoX's parallel attn+MLP
        rope_parameters={
            "rope_type": "default",
            "rope_theta": cfg.rope_theta,
            "partial_rotary_factor": cfg.rotary_fraction,
        },
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        use_cache=True,
    )


def build(cfg: ModelConfig, attn: str = "sdpa"):
    """A freshly initialised ``GPTNeoXForCausalLM`` (``physlm.model.canon.CanonForCausalLM`` with Canon layers), fp32,
    on CPU, for ``cfg``; ``attn`` = "sdpa" | "eager"."""
    from transformers import GPTNeoXForCausalLM

    if cfg.canon:
        from physlm.model.canon import CanonForCausalLM as cls
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
    from transformers import AutoModelForCausalLM

    import physlm.model.canon  # noqa: F401  (registers the Canon config with the Auto classes)

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn, local_files_only=True)
