"""V-probe, linear probe, activation sites, probe inputs and metrics (physlm/model/probe.py, activations.py).

Tiny on purpose: a random-init GPT2-2-2 (width 128) and short sequences. The planted-signal tests use
sequences over a small token alphabet (40 ids): like iGSM text, tokens recur, so the rank-8 embedding update
cannot just memorise each sequence by its own tokens (with 1,700 distinct random ids it does).
"""

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import torch

from physlm import tables
from physlm.config import ConfigError, ModelConfig, ProbeConfig
from physlm.igsm import labels as L
from physlm.igsm import record
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.generate import generate
from physlm.model import activations as act
from physlm.model import probe as P
from physlm.model.gpt import build
from physlm.model.train import can_compile

TINY = Family("tiny", max_op=4, max_edge=6)
END_ID = 6  # [END] in the word-level vocabulary (asserted below)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module: these ops are tiny, and on a shared 2-core box two OpenMP
    threads competing with other processes made each step 5-10x slower than one (measured: 0.02 s vs
    0.18 s per V-probe step at load 4.5); alone, two threads gain only ~1.4x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_cfg(tok):
    return ModelConfig.from_name("GPT2-2-2", vocab_size=tok.vocab_size, n_ctx=256)


@pytest.fixture(scope="module")
def model(model_cfg):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(model_cfg).eval()


@pytest.fixture(scope="module")
def rows():
    """16 tiny problems, alternating pq / qp."""
    return [
        record.row(generate(GenConfig(family=TINY, format="pq" if i % 2 else "qp"), i), f"p{i:03d}", "train")
        for i in range(16)
    ]


def _seqs(rng, n):
    return [tuple(rng.integers(7, 47, size=int(rng.integers(6, 13))).tolist()) + (END_ID,) for _ in range(n)]


@pytest.fixture(scope="module")
def planted(model):
    """Per layer: (train seqs, train labels, test seqs, test labels) with label = [direction · (h - mean) >
    median] for h the frozen model's state at [END] on that layer; a random direction in the span of the 4
    top principal components (a signal the states really carry), examples within 0.3 std of the threshold
    dropped (a margin, so that "recovered" is not decided by examples on the boundary)."""
    rng = np.random.default_rng(0)
    tr, te = _seqs(rng, 900), _seqs(rng, 600)
    out = {}
    for layer in (0, -1):
        site = act.site_name(layer)
        x_tr = act.capture(model, act.batched(tr, 128), [layer])[site]
        x_te = act.capture(model, act.batched(te, 128), [layer])[site]
        mu = x_tr.mean(0)
        _, _, vt = np.linalg.svd(x_tr - mu, full_matrices=False)
        w = rng.standard_normal(4) @ vt[:4]
        p_tr, p_te = (x_tr - mu) @ w, (x_te - mu) @ w
        thr, sd = np.median(p_tr), p_tr.std()
        k_tr, k_te = np.abs(p_tr - thr) > 0.3 * sd, np.abs(p_te - thr) > 0.3 * sd
        out[layer] = (
            [s for s, k in zip(tr, k_tr) if k],
            (p_tr[k_tr] > thr).astype(int),
            [s for s, k in zip(te, k_te) if k],
            (p_te[k_te] > thr).astype(int),
            x_tr[k_tr],
            x_te[k_te],
        )
    return out


def _cfg(steps=150, **kw):
    return ProbeConfig(steps=steps, batch_size=64, seed=0, device="cpu", **kw)


# ------------------------------------------------------------------------------------------------ (a), (b)
@pytest.mark.parametrize("layer", [0, -1])
def test_vprobe_recovers_planted_linear_signal(model, planted, layer):
    tr, y_tr, te, y_te, _, _ = planted[layer]
    probe, losses = P.fit_vprobe(model, tr, y_tr, 2, _cfg(), layer)
    pred = P.predict_vprobe(probe, te, 128).argmax(1)
    assert losses[-1] < losses[0]
    assert P.mcc(y_te, pred) > 0.8


@pytest.mark.parametrize("layer", [0, -1])
def test_linear_probe_recovers_planted_linear_signal(planted, layer):
    _, y_tr, _, y_te, x_tr, x_te = planted[layer]
    pred = P.fit_linear(x_tr, y_tr, 2).predict_proba(x_te).argmax(1)
    assert P.mcc(y_te, pred) > 0.9


def test_shuffled_labels_give_chance(model, planted):
    tr, y_tr, te, y_te, x_tr, x_te = planted[0]
    shuffled = np.random.default_rng(1).permutation(y_tr)
    majority = (y_te == P.majority_class(shuffled)).mean()
    probe, _ = P.fit_vprobe(model, tr, shuffled, 2, _cfg(), 0)
    pred = P.predict_vprobe(probe, te, 128).argmax(1)
    assert abs(P.mcc(y_te, pred)) < 0.2
    assert (pred == y_te).mean() < majority + 0.1
    pred = P.fit_linear(x_tr, shuffled, 2).predict_proba(x_te).argmax(1)
    assert abs(P.mcc(y_te, pred)) < 0.2


# ------------------------------------------------------------------------------------------------ (c)
def test_frozen_model_bit_identical_and_probe_starts_from_model(model):
    before = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}  # params and buffers
    seqs = _seqs(np.random.default_rng(2), 64)
    labels = np.random.default_rng(3).integers(0, 2, size=len(seqs))
    # At init B = 0: the probe's embeddings and states are the model's own.
    fresh = P.VProbe(model, 2, layer=0, rank=8, seed=0)
    ids, _, _ = act.pad_right(seqs[:4], 0)
    assert torch.equal(fresh.embed(ids), model.get_input_embeddings()(ids))
    probe, _ = P.fit_vprobe(model, seqs, labels, 2, _cfg(steps=10), 0)
    assert probe.lora_b.abs().sum() > 0  # the update did train
    assert all(not p.requires_grad for p in model.parameters())
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_vprobe_deterministic_given_seed(model):
    seqs = _seqs(np.random.default_rng(4), 48)
    labels = np.random.default_rng(5).integers(0, 2, size=len(seqs))
    cfg = ProbeConfig(steps=6, batch_size=16, seed=7, device="cpu")
    a, la = P.fit_vprobe(model, seqs, labels, 2, cfg)
    b, lb = P.fit_vprobe(model, seqs, labels, 2, cfg)
    assert la == lb
    for k, v in a.trainable().items():
        assert torch.equal(v, b.trainable()[k]), k


# ------------------------------------------------------------------------------------------------ sites
def test_sites_match_hf_forward(model):
    assert act.all_sites(2) == ["blocks.0.resid_post", "blocks.1.resid_post", "ln_final.hook_normalized"]
    assert [act.layer_of(s) for s in act.all_sites(2)] == [0, 1, -1]
    ids = torch.randint(7, 100, (3, 9))
    with torch.no_grad():
        ref = model.gpt_neox(input_ids=ids, output_hidden_states=True)  # installs transformers' own hooks
        hooks = {n: list(m._forward_hooks) for n, m in model.named_modules()}
        cache = act.run_with_cache(model, act.all_sites(2), input_ids=ids)
        early = act.run_with_cache(model, ["blocks.0.resid_post"], input_ids=ids)  # stops after block 0
    assert torch.equal(cache["blocks.0.resid_post"], ref.hidden_states[1])
    assert torch.equal(early["blocks.0.resid_post"], ref.hidden_states[1])
    assert torch.equal(cache["ln_final.hook_normalized"], ref.last_hidden_state)
    final_ln = model.gpt_neox.final_layer_norm
    assert torch.allclose(final_ln(cache["blocks.1.resid_post"]), ref.last_hidden_state)
    assert hooks == {n: list(m._forward_hooks) for n, m in model.named_modules()}  # ours removed
    got = act.capture(model, [[[7, 8, 9], [7, 8, 9, 10, 11]]], [0, -1])
    assert {k: v.shape for k, v in got.items()} == {
        "blocks.0.resid_post": (2, 128),
        "ln_final.hook_normalized": (2, 128),
    }
    # Right padding leaves the real tokens alone: a short row read alone equals it read in a padded batch.
    alone = act.capture(model, [[[7, 8, 9]]], [-1])["ln_final.hook_normalized"]
    np.testing.assert_allclose(alone[0], got["ln_final.hook_normalized"][0], atol=1e-5)


def test_random_init_like(model, model_cfg):
    state = torch.random.get_rng_state()
    a, b = P.random_init_like(model, 11), P.random_init_like(model_cfg, 11)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (k, va), (_, vb), (_, vm) in zip(a.state_dict().items(), b.state_dict().items(), model.state_dict().items()):
        assert torch.equal(va, vb), k  # same seed, same init, whether from the model or its config
        assert va.shape == vm.shape
    assert not torch.equal(a.get_input_embeddings().weight, model.get_input_embeddings().weight)


# ------------------------------------------------------------------------------------------------ (d)
def test_probe_markers(tok):
    assert P.probe_markers(tok) == (4, 5, END_ID)


@pytest.mark.parametrize("task", L.TASKS)
def test_probe_inputs(tok, rows, task):
    start, mid, end = P.probe_markers(tok)
    examples = P.build_examples(tok, rows, task, k=6, seed=3)
    assert examples and examples == P.build_examples(tok, rows, task, k=6, seed=3)
    by_id = {r["id"]: r for r in rows}
    for e in examples:
        row = by_id[e.problem_id]
        prompt = tok.encode_prompt(row["problem"])
        ids = list(e.ids)
        # the suffix: [START] " A" ([MID] " B") [END], the [END] last
        k = len(ids) - 1 - ids[::-1].index(start)
        assert ids[-1] == end and end not in ids[:-1]
        assert tok.decode(ids[k:]) == "[START] " + "[MID] ".join(e.names) + "[END]"
        prefix = ids[:k]
        if task == "nece" or (task == "dep" and row["format"] == "qp"):
            assert prefix == prompt
        elif task == "dep":  # pq: the statement only, no question, no [solution] marker
            statement = row["problem"][: -len(row["question"])]
            assert prefix[:2] == prompt[:2] and tok.decode(prefix[2:]) == statement
            assert "How many" not in tok.decode(prefix) and prefix == prompt[: len(prefix)]
        else:
            cut = L.sentence_boundaries(row["solution"])[e.state]
            assert prefix[: len(prompt)] == prompt
            assert tok.decode(prefix[len(prompt) :]) == row["solution"][:cut]
            assert prefix[len(prompt) :] == tok.encode(row["solution"])[: len(prefix) - len(prompt)]
        g = record.graph_of(row)
        assert e.names == tuple(g.name(p) for p in e.params)
        assert e.distance == L.distance_to_query(g)[e.params[0]] and e.necessary == (e.distance >= 0)
    # the batch's end_index points at every row's [END]
    batch = [e.ids for e in examples[:8]]
    ids, mask, end_index = act.pad_right(batch, tok.markers.end)
    assert ids.shape == (len(batch), max(map(len, batch)))
    assert (ids[torch.arange(len(batch)), end_index] == end).all()
    assert (mask.sum(1) == end_index + 1).all()


def test_make_example_matches_sampled_and_takes_generated_prefix(tok, rows):
    row = rows[1]
    for e in P.build_examples(tok, [row], "can_next", k=4, seed=0):
        assert P.make_example(tok, row, "can_next", e.params, e.label, e.state) == e
    cut = L.sentence_boundaries(row["solution"])[1]
    gen = P.make_example(tok, row, "can_next", (0,), 1, state=1, solution_prefix=row["solution"][:cut])
    assert gen.ids == P.make_example(tok, row, "can_next", (0,), 1, state=1).ids


def test_vprobe_init_leaves_global_rng(model):
    state = torch.random.get_rng_state()
    P.VProbe(model, 24, layer=1, rank=8, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------------------------------------------------------------ (e)
def test_mcc_known_cases():
    assert P.mcc([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / np.sqrt(12))  # TP1 TN2 FP0 FN1
    assert P.mcc([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert P.mcc([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert P.mcc([1, 0, 1, 0], [1, 1, 1, 1]) == 0.0  # constant prediction: sklearn's convention
    assert P.mcc([1, 1, 1], [1, 0, 1]) is None  # one true class: undefined
    # Gorodkin R_K by hand: c = 4, s = 6, t = p = (2, 2, 2): (24 - 12) / (36 - 12) = 0.5
    assert P.mcc([0, 1, 2, 0, 1, 2], [0, 1, 1, 0, 2, 2], 24) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    tp, tn = ((y == 1) & (p == 1)).sum(), ((y == 0) & (p == 0)).sum()
    fp, fn = ((y == 0) & (p == 1)).sum(), ((y == 1) & (p == 0)).sum()
    binary = (tp * tn - fp * fn) / np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    assert P.mcc(y, p) == pytest.approx(binary)
    assert P.majority_class([0, 1, 1, 2]) == 1 and P.majority_class([1, 0]) == 0


def _pred_row(label, prediction, distance, task="nece"):
    return {
        "checkpoint_id": "c",
        "test_set": "test_seen",
        "task": task,
        "layer": 3,
        "baseline": "vprobe",
        "problem_id": "p",
        "state": 0,
        "param_a": "A",
        "param_b": None,
        "param_a_necessary": distance >= 0,
        "distance": distance,
        "label": label,
        "prediction": prediction,
        "probability": 0.5,
        "source": "probe_test",
    }


def test_metric_slices():
    rows = [_pred_row(1, 1, 1), _pred_row(1, 0, 2), _pred_row(1, 1, 2), _pred_row(0, 0, -1), _pred_row(0, 1, -1)]
    m = {r["slice"]: r for r in P.metric_rows(rows, majority=1)}
    assert set(m) == {"all", "positive", "negative", "unnecessary", "t=1", "t=2"}
    assert (m["all"]["n"], m["all"]["accuracy"], m["all"]["majority_accuracy"]) == (5, 0.6, 0.6)
    assert (m["positive"]["accuracy"], m["negative"]["accuracy"], m["t=2"]["accuracy"]) == (2 / 3, 0.5, 0.5)
    assert m["positive"]["mcc"] is None and m["all"]["mcc"] == pytest.approx(P.mcc([1, 1, 1, 0, 0], [1, 0, 1, 0, 1]))
    assert all(r["layer"] == 3 and r["baseline"] == "vprobe" and r["test_set"] == "test_seen" for r in m.values())
    value = [_pred_row(23, 23, -1, "value"), _pred_row(5, 5, 1, "value"), _pred_row(7, 23, 2, "value")]
    mv = {r["slice"]: r for r in P.metric_rows(value, majority=23)}
    assert set(mv) == {"all", "positive", "negative", "unnecessary"}  # t-slices are nece's (E10)
    assert (mv["positive"]["n"], mv["positive"]["accuracy"], mv["negative"]["majority_accuracy"]) == (2, 0.5, 1.0)
    table = tables.table(P.metric_rows(rows, 1), tables.PROBE_METRICS)
    assert table.schema == tables.PROBE_METRICS and table.num_rows == 6
    assert tables.table(rows, tables.PROBE_PREDICTIONS).column("param_b").null_count == 5


# ------------------------------------------------------------------------------------------------ run_probe
def test_run_probe_end_to_end(model, tok, rows):
    train, test = rows[:12], rows[12:]
    cfg = ProbeConfig(steps=3, batch_size=8, samples_per_problem=3, balanced=True, device="cpu")
    out = {}
    for name, m in (("vprobe", model), ("random_init", P.random_init_like(model, 5)), ("linear", model)):
        preds, metrics = P.run_probe(m, tok, train, test, cfg, "dep", "ckpt-1", baseline_name=name, layer=1)
        assert 0 < tables.table(preds, tables.PROBE_PREDICTIONS).num_rows == len(preds) <= 12
        assert tables.table(metrics, tables.PROBE_METRICS).num_rows == len(metrics)
        assert {r["slice"] for r in metrics} >= {"all", "positive", "negative"}
        assert all(r["baseline"] == name and r["layer"] == 1 and r["param_b"] for r in preds)
        assert {r["test_set"] for r in preds} == {r["test_set"] for r in metrics} == {"test_id"}  # the default
        assert all(0.0 <= r["probability"] <= 1.0 and r["prediction"] in (0, 1) for r in preds)
        out[name] = [(r["problem_id"], r["param_a"], r["param_b"], r["label"]) for r in preds]
    assert out["vprobe"] == out["random_init"] == out["linear"]  # the same test pairs: paired baselines
    preds, metrics = P.run_probe(
        model,
        tok,
        train,
        test,
        ProbeConfig(steps=1, samples_per_problem=4, device="cpu"),
        "value",
        "ckpt-1",
        baseline_name="linear",
        test_set="test_seen",
    )
    assert all(0 <= r["prediction"] <= 23 and 0 <= r["label"] <= 23 for r in preds)
    assert {r["test_set"] for r in preds} == {r["test_set"] for r in metrics} == {"test_seen"}
    with pytest.raises(ValueError):
        P.run_probe(model, tok, train, test, cfg, "dep", "c", baseline_name="majority")


def test_config_validation():
    with pytest.raises(ConfigError, match="^tasks"):
        ProbeConfig(tasks=("nope",))
    for bad in ((), ("test_reask",), ("test_id", "test_id")):
        with pytest.raises(ConfigError, match="^test_sets"):
            ProbeConfig(test_sets=bad)
    with pytest.raises(ConfigError, match="^layers"):
        ProbeConfig(layers=(-2,))
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="^warmup"):
            ProbeConfig(warmup=bad)
    assert P.n_classes("value") == 24 and P.n_classes("nece") == 2
    assert pa.types.is_int8(tables.PROBE_PREDICTIONS.field("prediction").type)


def test_probe_lr_warms_up_then_decays():
    """No warm-up: spec C.5's linear decay, exactly as before the option existed; with one: a linear ramp to the
    decay line, then the decay line to 0."""
    plain = ProbeConfig(steps=300, lr=2e-2)
    assert [P.probe_lr(plain, s) for s in (0, 150, 299)] == [2e-2 * (1 - s / 300) for s in (0, 150, 299)]
    warm = dataclasses.replace(plain, warmup=0.1)
    lrs = [P.probe_lr(warm, s) for s in range(300)]
    top = lrs.index(max(lrs))
    assert lrs[0] == pytest.approx(2e-2 / 30) and 20 < top < 30 and max(lrs) < 2e-2
    assert all(a < b for a, b in zip(lrs[:top], lrs[1 : top + 1])) and all(
        a > b for a, b in zip(lrs[top:], lrs[top + 1 :])
    )
    assert lrs[30:] == [P.probe_lr(plain, s) for s in range(30, 300)]


@pytest.mark.parametrize("canon", ["", "ABCD"])
def test_vprobe_reads_a_padded_batch_as_each_row_alone(tok, canon):
    # VProbe.forward drops the padding mask (right padding cannot reach [END] in a causal model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = build(ModelConfig.from_name("GPT2-2-2", vocab_size=tok.vocab_size, n_ctx=64, canon=canon)).eval()
    vp = P.VProbe(model, 3, seed=2).eval()
    with torch.no_grad():
        vp.lora_b.normal_()  # a non-zero embedding update
        seqs = [[7, 8, 9, END_ID], [7, 8, 9, 10, 11, 12, 13, END_ID], [20, END_ID]]
        batch = vp(*act.pad_right(seqs, 0))
        alone = torch.cat([vp(*act.pad_right([s], 0)) for s in seqs])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("canon", ["", "ABCD"])
@pytest.mark.parametrize("layer", [-1, 0])
def test_end_states_equal_the_full_pass_and_its_gradient(tok, canon, layer):
    # act.end_states runs the site's MLP on the end rows only (plus the Canon C/D receptive field); a row
    # too short for that field (the 5-token one with Canon: it needs 7) sends the batch through the full pass
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = build(ModelConfig.from_name("GPT2-2-2", vocab_size=tok.vocab_size, n_ctx=64, canon=canon)).eval()
    site = act.site_name(layer)
    for seqs in ([list(range(7, 19)), list(range(30, 39)), list(range(40, 60))], [list(range(7, 12)), [8] * 20]):
        ids, _, end = act.pad_right(seqs, 0)
        emb = model.get_input_embeddings()(ids).detach()
        a, b = emb.clone().requires_grad_(), emb.clone().requires_grad_()
        fast = act.end_states(model, layer, end, inputs_embeds=a)
        full = act.gather_at(act.run_with_cache(model, [site], inputs_embeds=b)[site], end)
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
        weights = torch.randn_like(full)
        (fast * weights).sum().backward()
        (full * weights).sum().backward()
        torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-3)  # summation order only


def test_compiled_blocks_give_the_eager_states_and_gradients(tok):
    # activations.compile_blocks (probe.compile=auto): with gradients on, end_states runs the blocks compiled.
    # The tiny preset's block shape, so that the probe-stage test's compilation is this one's. Lengths 64 (the
    # width: dynamic sizes must not be merged with it) then 9 and 20, layers -1 and 1; a model marked for
    # compilation gives the eager states and input gradients up to float rounding, and eager ones under no_grad.
    if not can_compile(torch.device("cpu")):
        pytest.skip("no C++ compiler: torch.compile cannot run here")
    cfg = ModelConfig.from_name("GPT2-4-2-hd32", vocab_size=tok.vocab_size, n_ctx=128, canon="ABCD")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        eager, fast = build(cfg).eval(), build(cfg).eval()
    fast.load_state_dict(eager.state_dict())
    act.compile_blocks(fast)
    torch._dynamo.reset()  # whatever ran before in this process, the count below starts from nothing compiled
    calls = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for layer, seqs in ((-1, [list(range(7, 71))] * 2), (-1, [list(range(7, 16)), [8] * 20]), (1, [[9] * 12] * 3)):
        ids, _, end = act.pad_right(seqs, 0)
        emb = eager.get_input_embeddings()(ids).detach()
        a, b = emb.clone().requires_grad_(), emb.clone().requires_grad_()
        want = act.end_states(eager, layer, end, inputs_embeds=a)
        got = act.end_states(fast, layer, end, inputs_embeds=b)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        weights = torch.randn_like(want)
        (want * weights).sum().backward()
        (got * weights).sum().backward()
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=1e-3)
        with torch.no_grad():
            assert torch.equal(act.end_states(fast, layer, end, inputs_embeds=emb), want.detach())
    # one graph for the blocks, one for the site's block: no recompilation for a length, a layer or no_grad
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - calls == 2
