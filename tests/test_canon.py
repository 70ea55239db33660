"""Model options: Canon layers (A/B/C/D, kernel, residual, init) and the rotary fraction.

Cached decoding (KV cache + Canon state, left-padded batches, beam search) must give exactly what a full
recompute gives; the options survive save_pretrained / from_pretrained; they enter the train step's id only
when set.
"""

from __future__ import annotations

import pytest
import torch

from physlm.config import ConfigError as ModelConfigError
from physlm.config import ModelConfig
from physlm.model import decode
from physlm.model.gpt import build, load, save
from physlm.store.steps import step_hash

V, END = 40, 0


def canon_model(canon="ABCD", **kw):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=2, head_dim=16, vocab_size=V, n_ctx=64, canon=canon, **kw)
    return build(cfg).eval()


def prompts(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(1, V, (int(torch.randint(3, 12, (1,), generator=g)),), generator=g).tolist() for _ in range(n)
    ]


@torch.no_grad()
def greedy_by_recompute(model, prompt, steps):
    """Greedy decoding with a full forward pass over the whole sequence at every step (no cache at all)."""
    ids = list(prompt)
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == END:
            return ids[len(prompt) :], True
        ids.append(nxt)
    return ids[len(prompt) :], False


def test_canon_changes_the_function_and_is_counted():
    m = canon_model()
    names = [n for n, _ in m.named_parameters() if "canon" in n]
    assert len(names) == 8 and m.gpt_neox.layers[0].canon_b.weight.shape == (3 * 32, 4)
    assert sum(p.numel() for p in m.parameters()) == m.config.num_hidden_layers * 4 * 32 * 9 + sum(
        p.numel() for p in canon_model("").parameters()
    )
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        with_canon = m(input_ids=x).logits
        for n, p in m.named_parameters():
            if "canon" in n:
                p.zero_()
        assert not torch.allclose(with_canon, m(input_ids=x).logits, atol=1e-4)


@pytest.mark.parametrize("canon", ["A", "AC", "ABCD"])
def test_cached_decoding_equals_full_recompute(canon):
    m = canon_model(canon)
    ps = prompts(6)
    got = decode.generate(m, ps, END, decode.Decoding(max_new_tokens=12), batch_size=4)  # left-padded, cached
    assert got == [greedy_by_recompute(m, p, 12) for p in ps]


@torch.no_grad()
def test_incremental_logits_equal_full_logits():
    m = canon_model()
    ids = torch.tensor(prompts(3, seed=1)[0] * 2).unsqueeze(0)
    full = m(input_ids=ids).logits
    out = m(input_ids=ids[:, :5], use_cache=True)
    cache, steps = out.cache if hasattr(out, "cache") else out.past_key_values, [out.logits]
    for t in range(5, ids.shape[1]):
        steps.append(m(input_ids=ids[:, t : t + 1], **{_cache_kw(): cache}, use_cache=True).logits)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    delattr(cache, "physlm_canon")  # a cache without the convolution state cannot continue
    with pytest.raises(ValueError, match="Canon state"):
        m(input_ids=ids[:, :1], **{_cache_kw(): cache}, use_cache=True)


def _cache_kw():
    from physlm.model.canon import CACHE_KW

    return CACHE_KW


def test_beam_search_with_cache_equals_without():
    m = canon_model()
    ps = prompts(4, seed=2)
    beam = decode.Decoding("beam4", beams=4, sample=False, max_new_tokens=8)
    cached = decode.generate(m, ps, END, beam, batch_size=4)
    m.generation_config.use_cache = False
    try:
        plain = [decode.generate(m, [p], END, beam, batch_size=1)[0] for p in ps]
    finally:
        m.generation_config.use_cache = True
    assert cached == plain


def test_save_load_round_trip(tmp_path):
    m = canon_model("BD", canon_kernel=3, canon_residual=False, canon_init="normal", rotary_fraction=0.5)
    save(m, str(tmp_path / "m"))
    back = load(str(tmp_path / "m"))
    assert type(back) is type(m) and back.config.canon == "BD" and back.config.canon_kernel == 3
    assert back.gpt_neox.layers[0].attention.rotary_ndims == 8
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        assert torch.equal(m(input_ids=x).logits, back.eval()(input_ids=x).logits)
    from transformers import AutoModelForCausalLM

    assert type(AutoModelForCausalLM.from_pretrained(str(tmp_path / "m"))) is type(m)


def test_inits():
    assert not canon_model("A", canon_init="zero").gpt_neox.layers[0].canon_a.weight.any()
    w = canon_model("A", canon_init="torch").gpt_neox.layers[0].canon_a.weight
    assert 0.3 < float(w.detach().abs().max()) <= 0.5  # U(-1/sqrt(4), 1/sqrt(4))
    assert float(canon_model("A", canon_init="normal").gpt_neox.layers[0].canon_a.weight.std()) < 0.05


def test_rotary_fraction_rotates_fewer_dims():
    full, part = canon_model(""), canon_model("", rotary_fraction=0.25)
    assert part.gpt_neox.layers[0].attention.rotary_ndims == 4
    part.load_state_dict(full.state_dict())
    x = torch.tensor([prompts(1)[0]])
    with torch.no_grad():
        assert not torch.allclose(full(input_ids=x).logits, part(input_ids=x).logits, atol=1e-4)


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(canon="CA"), "canon"),
        (dict(canon="E"), "canon"),
        (dict(canon_kernel=0), "canon_kernel"),
        (dict(canon_init="x"), "canon_init"),
        (dict(rotary_fraction=0.3), "rotary_fraction"),
        (dict(rotary_fraction=0.0), "rotary_fraction"),
    ],
)
def test_bad_options_name_the_field(bad, field):
    with pytest.raises(ModelConfigError, match=f"^{field}:"):
        ModelConfig(head_dim=16, **bad)


def test_options_enter_the_step_id_only_when_set():
    base = step_hash("train", ModelConfig())
    assert step_hash("train", ModelConfig(canon="", canon_kernel=4, rotary_fraction=1.0)) == base
    for change in (dict(canon="AC"), dict(rotary_fraction=0.5), dict(canon="AC", canon_kernel=3)):
        assert step_hash("train", ModelConfig(**change)) != base


def test_compiled_canon_layer_equals_eager():
    """Compiled, a Canon layer reads its taps through the opaque copy ``canon_taps`` (so that inductor's fused
    kernel can use vector loads): the same output and input and weight gradients as eager, to float rounding; the
    op passes torch.library's own checks (fake tensor, autograd registration)."""
    from physlm.model.canon import canon_taps, shifted_sum
    from physlm.model.train import can_compile

    torch.library.opcheck(canon_taps, (torch.randn(6, 4, requires_grad=True),))
    if not can_compile(torch.device("cpu")):
        pytest.skip("no C++ compiler: torch.compile cannot run here")

    def layer(x, weight):
        return torch.nn.functional.gelu(shifted_sum(x, torch.nn.functional.pad(x, (0, 0, 3, 0)), weight, True))

    x, weight = torch.randn(3, 11, 40), torch.randn(40, 4)
    runs = []
    for fn in (layer, torch.compile(layer, dynamic=True)):
        xs, ws = x.clone().requires_grad_(), weight.clone().requires_grad_()
        y = fn(xs, ws)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        runs.append((y.detach(), xs.grad, ws.grad))
    for eager, compiled in zip(*runs):
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-4)


def test_shifted_sum_without_autograd_is_bit_identical():
    """The in-place sum of inference (no autograd) gives the very bits of the autograd path, with and without the
    residual, for a prefill (t > 1, contiguous taps) and a decoding step (t = 1)."""
    import torch.nn.functional as F

    from physlm.model.canon import shifted_sum

    g = torch.Generator().manual_seed(0)
    for t in (7, 1):
        x = torch.randn(3, t, 16, generator=g)
        xp = F.pad(x, (0, 0, 3, 0))
        w = torch.randn(16, 4, generator=g, requires_grad=True)
        for residual in (True, False):
            with_grad = shifted_sum(x, xp, w, residual)
            with torch.no_grad():
                without = shifted_sum(x, xp, w, residual)
            assert with_grad.requires_grad and not without.requires_grad
            assert torch.equal(with_grad.detach(), without)
