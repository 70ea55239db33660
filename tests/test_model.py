"""The model is GPT-2 + RoPE: its forward pass equals a hand-written reference; sizes match spec C.1;
RoPE survives save/load; bad configs fail naming the field."""

import math
import os

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from physlm.config import ConfigError as ModelConfigError
from physlm.config import ModelConfig
from physlm.model.gpt import build, count_params, load, save


def reference_forward(sd: dict, cfg: ModelConfig, ids: torch.Tensor) -> torch.Tensor:
    """GPT-2 with rotary embeddings, written from the papers, reading weights by their HF GPTNeoX names.

    x = wte[ids]; per block: x += W_o·attn(rope(q), rope(k), v) on LN1(x); x += W_2·gelu(W_1·LN2(x));
    logits = LN_f(x)·wte^T (or the untied head). RoPE pairs dim i with i + hd/2 (NeoX's "rotate half").
    """
    B, T = ids.shape
    d, nh, hd = cfg.width, cfg.n_head, cfg.head_dim
    x = sd["gpt_neox.embed_in.weight"][ids]  # (B, T, d)
    inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)  # (hd/2,)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None]  # (T, hd/2)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)  # (T, hd)

    def rope(t):  # (B, nh, T, hd)
        t1, t2 = t[..., : hd // 2], t[..., hd // 2 :]
        return t * cos + torch.cat([-t2, t1], -1) * sin

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for layer in range(cfg.n_layer):
        p = lambda n, layer=layer: sd[f"gpt_neox.layers.{layer}.{n}"]  # noqa: E731
        h = F.layer_norm(x, (d,), p("input_layernorm.weight"), p("input_layernorm.bias"), 1e-5)
        qkv = h @ p("attention.query_key_value.weight").T + p("attention.query_key_value.bias")  # (B, T, 3d)
        qkv = qkv.view(B, T, nh, 3, hd)  # NeoX stores [q|k|v] per head
        q, k, v = (qkv[:, :, :, i].transpose(1, 2) for i in range(3))  # (B, nh, T, hd)
        q, k = rope(q), rope(k)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # (B, nh, T, T)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, d)
        x = x + y @ p("attention.dense.weight").T + p("attention.dense.bias")
        h = F.layer_norm(x, (d,), p("post_attention_layernorm.weight"), p("post_attention_layernorm.bias"), 1e-5)
        h = F.gelu(h @ p("mlp.dense_h_to_4h.weight").T + p("mlp.dense_h_to_4h.bias"), approximate="tanh")
        x = x + h @ p("mlp.dense_4h_to_h.weight").T + p("mlp.dense_4h_to_h.bias")
    x = F.layer_norm(x, (d,), sd["gpt_neox.final_layer_norm.weight"], sd["gpt_neox.final_layer_norm.bias"], 1e-5)
    head = sd["gpt_neox.embed_in.weight"] if cfg.tie_embeddings else sd["lm_head.weight"]
    return x @ head.T  # (B, T, V)


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_forward_equals_reference(tie, attn):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, head_dim=16, vocab_size=50, n_ctx=16, tie_embeddings=tie)
    model = build(cfg, attn=attn).eval()
    with torch.no_grad():  # non-trivial LayerNorm/bias values so every weight is exercised
        for n, p in model.named_parameters():
            if n.endswith("bias") or "layernorm" in n or "layer_norm" in n:
                p.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(0, 50, (3, 16))
    with torch.no_grad():
        got = model(input_ids=ids).logits
        want = reference_forward(dict(model.state_dict()), cfg, ids)
    assert got.shape == (3, 16, 50)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert model.config.use_parallel_residual is False


def test_save_load_keeps_rope_and_outputs(tmp_path):
    torch.manual_seed(1)
    cfg = ModelConfig(n_layer=2, n_head=2, head_dim=16, vocab_size=40, n_ctx=32, rope_theta=500.0)
    model = build(cfg).eval()
    save(model, str(tmp_path))
    again = load(str(tmp_path)).eval()
    ids = torch.randint(0, 40, (2, 32))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, again(input_ids=ids).logits)
    f0 = model.gpt_neox.rotary_emb.inv_freq
    torch.testing.assert_close(again.gpt_neox.rotary_emb.inv_freq, f0)
    torch.testing.assert_close(f0, 1.0 / 500.0 ** (torch.arange(0, 16, 2).float() / 16))
    assert again.config.use_parallel_residual is False and again.lm_head.weight is again.gpt_neox.embed_in.weight


@pytest.mark.parametrize(
    "name,width,non_emb_m",
    [
        ("GPT2-4-21", 1344, 87),
        ("GPT2-8-15", 960, 89),
        ("GPT2-12-12", 768, 85),
        ("GPT2-16-10", 640, 79),
        ("GPT2-20-9", 576, 80),
        ("GPT2-4-30", 1920, 177),
        ("GPT2-8-21", 1344, 174),
        ("GPT2-12-17", 1088, 171),
        ("GPT2-16-15", 960, 177),
        ("GPT2-20-13", 832, 166),
    ],
)
def test_grid_sizes_match_spec_c1(name, width, non_emb_m):
    cfg = ModelConfig.from_name(name)
    assert cfg.width == width and cfg.name == name
    assert round(cfg.non_embedding_params() / 1e6) == non_emb_m


def test_built_counts_match_config():
    for tie in (True, False):
        cfg = ModelConfig.from_name("GPT2-2-2", vocab_size=97, n_ctx=64, tie_embeddings=tie)
        counts = count_params(build(cfg))
        assert counts == {"params": cfg.params(), "non_embedding_params": cfg.non_embedding_params()}
        d = cfg.width
        assert cfg.non_embedding_params() == 2 * (12 * d * d + 13 * d) + 2 * d


def test_bad_configs_name_the_field():
    with pytest.raises(ModelConfigError, match="shape"):
        ModelConfig.from_name("GPT2-12")
    with pytest.raises(ModelConfigError, match="head_dim"):
        ModelConfig(head_dim=15)
    with pytest.raises(ModelConfigError, match="n_head"):
        ModelConfig(n_head=0)
