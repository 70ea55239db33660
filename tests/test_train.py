"""Packing, data determinism/resume, the training loop (loss falls; kill-and-resume is bitwise identical on
CPU), checkpoints and the registry — on a 2-layer, 2-head (width 128) model with n_ctx 256 and a few dozen
problems of a tiny family."""

import os
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from physlm.config import ConfigError as TrainConfigError
from physlm.config import ModelConfig, TrainConfig
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.generate import generate
from physlm.model import activations as act
from physlm.model.data import DataError, OnlineProblems, PackedShards, online, pack
from physlm.model.gpt import build
from physlm.model.letters import FreshLetters
from physlm.model.train import NextTokenLoss, can_compile, lr_at, train
from physlm.model.weights import PositionWeights
from physlm.presets import resolve
from physlm.store import checkpoint, registry
from physlm.store.shards import generate_shard, write_shard

GEN = GenConfig(family=Family("tiny", max_op=4, max_edge=6))
N_CTX = 256


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("shards"))
    for i in range(2):
        write_shard(generate_shard(GEN, 7, "train", i, 24), folder, i)
    return folder


@pytest.fixture(scope="module")
def source(shards, tok):
    return PackedShards(shards, tok)


def model_cfg(tok):
    return ModelConfig.from_name("GPT2-2-2", vocab_size=tok.vocab_size, n_ctx=N_CTX)


def take(it, n):
    return [next(it) for _ in range(n)]


# ---------------------------------------------------------------------- data
def test_pack_rules():
    windows, dropped = pack([100, 100, 60, 300, 200, 30], n_ctx=256)  # capacity 255 after the end token
    assert windows == [[0, 1], [2], [4, 5]] and dropped == 1


def test_packed_windows(source, tok):
    b = next(source.batches(None, n_ctx=N_CTX, batch_size=4, loss_on="solution", seed=3))
    m = tok.markers
    assert b.ids.shape == b.mask.shape == (4, N_CTX) and b.ids.dtype == torch.long
    for row, mask in zip(b.ids.tolist(), b.mask.tolist()):
        assert row[0] == m.end and not mask[0]
        starts = [t for t, x in enumerate(row) if x == m.problem]
        assert all(row[t - 1] == m.end for t in starts)  # every problem preceded by the end token
        for t in starts:  # prompt part masked, output part (solution .. end) targeted
            s = row.index(m.solution, t)
            e = row.index(m.end, s)
            assert not any(mask[t : s + 1]) and all(mask[s + 1 : e + 1])
        last_end = max(t for t, x in enumerate(row) if x == m.end and mask[t]) if any(mask) else 0
        assert not any(mask[last_end + 1 :])  # padding is never a target
    assert b.problems == sum(row.count(m.problem) for row in b.ids.tolist())


def test_packed_deterministic_rank_split_and_resume(source):
    kw = dict(n_ctx=N_CTX, batch_size=2, loss_on="all", seed=5)
    a = take(source.batches(None, **kw), 6)
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(a, take(source.batches(None, **kw), 6)))
    other = next(source.batches(None, **{**kw, "seed": 6}))
    assert not torch.equal(a[0].ids, other.ids)
    resumed = take(source.batches(a[2].position, **kw), 3)  # continues right after batch 2, across epochs
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(a[3:], resumed))
    r0 = next(source.batches(None, **kw, rank=0, world=2))
    r1 = next(source.batches(None, **kw, rank=1, world=2))
    assert torch.equal(torch.cat([r0.ids, r1.ids]), torch.cat([a[0].ids, a[1].ids]))  # global batch, split


def test_online_batch_does_not_depend_on_the_generation_chunk(tok):
    """The problems per tokenizer call (a speed knob) leave every batch as it was: the same ids, targets,
    problem and dropped counts, with chunks of 1, 4 and 16."""
    kw = dict(n_ctx=N_CTX, batch_size=3, loss_on="solution", seed=5, rank=0, world=1)
    made = []
    for chunk in (1, 4, 16):
        src = OnlineProblems(GEN, tok)
        src.chunk = chunk
        made.append([src.make(step, **kw) for step in (0, 7)])
    for other in made[1:]:
        for a, b in zip(made[0], other):
            assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
            assert (a.problems, a.dropped, a.position) == (b.problems, b.dropped, b.position)


def test_online_deterministic_and_resumable(tok):
    src = OnlineProblems(GEN, tok)
    kw = dict(n_ctx=N_CTX, batch_size=2, loss_on="solution", seed=1)
    a = take(src.batches(None, **kw), 3)
    assert [x.position for x in a] == [{"step": 1}, {"step": 2}, {"step": 3}]
    again = next(src.batches({"step": 2}, **kw))
    assert torch.equal(again.ids, a[2].ids) and torch.equal(again.mask, a[2].mask)
    assert not torch.equal(a[0].ids, a[1].ids)
    r1 = next(src.batches(None, **kw, rank=1, world=2))
    assert not torch.equal(r1.ids, a[0].ids)


def test_op_curriculum_switches_the_op_law_at_its_step(tok):
    """train.late_op_dist: the steps before late_from * steps are the plain source's batches, bit for bit; from
    there on the problems come from the late op law (uniform: more long problems), resumable the same way."""
    cfg = TrainConfig(steps=10, late_op_dist="uniform", late_from=0.4)
    src, plain = online(GEN, tok, cfg), OnlineProblems(GEN, tok)
    assert src.gen_at(3) == GEN and src.gen_at(4) == GEN.with_(op_dist="uniform")
    kw = dict(n_ctx=N_CTX, batch_size=2, loss_on="solution", seed=1)
    early, late = take(src.batches(None, **kw), 4), next(src.batches({"step": 4}, **kw))
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(early, take(plain.batches(None, **kw), 4)))
    assert not torch.equal(late.ids, next(plain.batches({"step": 4}, **kw)).ids)
    ops = Counter(generate(src.gen_at(9), s).op for s in range(300))
    assert ops[4] > 45  # uniform over 1..4 (the light law gives op 4 one problem in 16)
    with pytest.raises(TrainConfigError, match="late_op_dist"):
        TrainConfig(late_op_dist="steep")
    with pytest.raises(TrainConfigError, match="late_op_dist"):
        resolve("tiny", ["train.late_op_dist=uniform", "data.online=false"])


def test_recall_warmup_drills_first_then_the_plain_batches(tok):
    """train.recall_warmup: the steps from recall_warmup * steps on are the plain source's batches, bit for bit;
    the steps before show the same problems' statements without their questions, each followed by its recall
    drill (every given number recalled by name) as the loss-bearing part; resumable the same way."""
    cfg = TrainConfig(steps=10, recall_warmup=0.3)
    src, plain = online(GEN, tok, cfg), OnlineProblems(GEN, tok)
    kw = dict(n_ctx=N_CTX, batch_size=2, loss_on="solution", seed=1)
    early, late = take(src.batches(None, **kw), 4), take(src.batches({"step": 3}, **kw), 2)
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(late, take(plain.batches({"step": 3}, **kw), 2)))
    drill = tok.decode(early[0].ids[0].tolist())
    assert "Define" in drill and "How many" not in drill and "How many" in tok.decode(late[0].ids[0].tolist())
    assert torch.equal(early[1].ids, next(src.batches({"step": 1}, **kw)).ids) and early[3].problems > 0
    for x, y in zip(early[:3], take(plain.batches(None, **kw), 3)):
        assert not torch.equal(x.ids, y.ids)
    with pytest.raises(TrainConfigError, match="recall_warmup"):
        TrainConfig(recall_warmup=1.0)
    with pytest.raises(TrainConfigError, match="recall_warmup"):
        resolve("tiny", ["train.recall_warmup=0.1", "data.online=false"])


def test_context_too_short_names_field(source):
    with pytest.raises(DataError, match="n_ctx"):
        next(source.batches(None, n_ctx=20, batch_size=1))


# ---------------------------------------------------------------------- training
def test_config_validation():
    with pytest.raises(TrainConfigError, match="micro_batch_size"):
        TrainConfig(batch_size=8, micro_batch_size=3)
    with pytest.raises(TrainConfigError, match="loss_on"):
        TrainConfig(loss_on="answer")
    with pytest.raises(TrainConfigError, match="mtp"):
        TrainConfig(mtp=0.5, compile="on")  # the whole loss compiled: dense, no final states to give the head
    for bad in (-1, float("nan")):
        with pytest.raises(TrainConfigError, match="mtp"):
            TrainConfig(mtp=bad, compile="off")
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.01)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(99, cfg) == pytest.approx(0.01, abs=1e-3) and lr_at(55, cfg) == pytest.approx(0.505)


@pytest.mark.parametrize(("expected_letters", "arith_weight"), [(False, 1.0), (True, 1.0), (False, 4.0), (True, 4.0)])
def test_sparse_head_loss_equals_dense(source, tok, expected_letters, arith_weight):
    """The LM head on target positions only gives the dense loss and gradients (up to float rounding), with the
    plain targets, with the fresh letters' expected loss (train.letter_targets=expected) and with the arithmetic
    results and plan choices weighted (train.arith_weight, train.plan_weight)."""
    torch.manual_seed(0)
    model = build(model_cfg(tok))
    data = OnlineProblems(GEN, tok) if expected_letters or arith_weight != 1 else source
    batch = next(data.batches(None, n_ctx=N_CTX, batch_size=3, loss_on="solution"))
    assert 0 < batch.mask.float().mean() < 0.9  # prompt tokens are skipped: the sparse path has work to skip
    letters = FreshLetters(tok) if expected_letters else None
    assert letters is None or letters.marks(batch.ids)[0].sum() > 10  # fresh letters in the batch
    weights = PositionWeights(tok, arith=arith_weight, plan=arith_weight) if arith_weight != 1 else None
    assert weights is None or weights.results(batch.ids).sum() >= 3  # arithmetic results in the batch
    grads = []
    for sparse in (False, True):
        model.zero_grad()
        loss = NextTokenLoss(model, sparse, letters=letters, weights=weights)(batch.ids, batch.mask)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (dense, g_dense), (sparse, g_sparse) = grads
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-4)
    for a, b in zip(g_sparse, g_dense):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("canon", ["", "ABCD"])
def test_final_states_at_equals_the_full_pass(tok, canon):
    """act.final_states_at, the sparse loss's states (the last block's MLP and the final norm on the marked positions
    and their Canon receptive field only, gathered to the front of their row), gives the full pass's final states
    and parameter gradients: eager, and with the blocks compiled (train.compile=body). Marked spans at a row's start
    and end, single positions, and spans closer together than the Canon kernel."""
    cfg = ModelConfig.from_name("GPT2-4-2-hd32", vocab_size=tok.vocab_size, n_ctx=N_CTX, canon=canon)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = build(cfg)
        ids = torch.randint(0, tok.vocab_size, (3, 40))
    at = torch.zeros(3, 40, dtype=torch.bool)
    at[0, 5:12] = at[0, 14:16] = at[0, 30:40] = at[1, 0:3] = at[1, 38] = at[2, 20] = True
    full = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[at]  # (n d_model)
    weights = torch.randn_like(full)
    (full * weights).sum().backward()
    want = [p.grad.clone() for p in model.parameters()]
    for compiled in (False, True):
        if compiled:
            if not can_compile(torch.device("cpu")):
                pytest.skip("no C++ compiler: torch.compile cannot run here")
            act.compile_blocks(model)
        model.zero_grad()
        got = act.final_states_at(model, ids, at)
        torch.testing.assert_close(got, full.detach(), atol=1e-5, rtol=1e-4)
        (got * weights).sum().backward()
        for (name, p), w in zip(model.named_parameters(), want):
            torch.testing.assert_close(p.grad, w, atol=1e-4, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")


def test_loss_falls_and_registers(source, tok, tmp_path):
    root = str(tmp_path / "root")
    out = str(tmp_path / "run")
    cfg = TrainConfig(
        steps=24,
        batch_size=4,
        micro_batch_size=2,
        lr=3e-3,
        warmup=4,
        ckpt_every=12,
        log_every=4,
        loss_on="solution",
        seed=0,
        num_threads=1,
    )
    rows = []
    res = train(
        model_cfg(tok),
        cfg,
        source,
        out,
        on_checkpoint=lambda meta: rows.append(
            registry.register(registry.row_from_meta(meta, data_hash="d" * 8, train_hash="t" * 8), root)
        ),
    )
    losses = [h["loss"] for h in res["history"]]
    assert losses[-1] < 0.6 * losses[0], losses
    assert res["step"] == 24 and res["tokens_seen"] == 24 * 4 * N_CTX
    assert checkpoint.steps(out) == [12, 24] and res["checkpoint"].endswith("meta_000024.json")
    table = registry.list_checkpoints(root)
    assert table.num_rows == 2 and table["step"].to_pylist() == [12, 24]
    best = registry.latest("t" * 8, root)
    assert best["step"] == 24 and best["final"] and best["model"] == "GPT2-2-2" and best["width"] == 128
    assert best["non_embedding_params"] == model_cfg(tok).non_embedding_params()
    assert registry.latest("nope", root) is None
    # The reloaded checkpoint is a working model: greedy generation from an eval prompt.
    model = checkpoint.load_model(out)
    prompt = torch.tensor([tok.encode_prompt(" The number of each Zoo's Bone equals 3. How many Bone does Zoo have?")])
    gen = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=tok.markers.end)
    assert gen.shape[1] > prompt.shape[1]
    # Resuming a finished run is a no-op that points at the final checkpoint.
    again = train(model_cfg(tok), cfg, source, out)
    assert again["step"] == 24 and again["resumed_from"] == 24 and again["checkpoint"] == res["checkpoint"]


class Crash(Exception):
    pass


class CrashingSource:
    """Wraps a data source; raises (as a kill would stop the process) when asked for batch ``after + 1``."""

    def __init__(self, inner, after):
        self.inner, self.after = inner, after

    def batches(self, position=None, **kw):
        for i, b in enumerate(self.inner.batches(position, **kw)):
            if i == self.after:
                raise Crash
            yield b


@pytest.mark.parametrize(("online", "mtp"), [(False, 0.0), (True, 0.0), (True, 0.5)])
def test_kill_and_resume_is_bitwise_identical(source, tok, tmp_path, online, mtp):
    """... with train.mtp's head too: its weights are in the training state and resume with it."""
    data = OnlineProblems(GEN, tok) if online else source
    cfg = TrainConfig(
        mtp=mtp,
        compile="off",
        steps=10,
        batch_size=4,
        micro_batch_size=2,
        lr=3e-3,
        warmup=3,
        ckpt_every=4,
        log_every=2,
        loss_on="all",
        seed=11,
        num_threads=1,
    )
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(model_cfg(tok), cfg, data, a)
    with pytest.raises(Crash):  # killed during step 7: last checkpoint is step 4
        train(model_cfg(tok), cfg, CrashingSource(data, after=6), b)
    assert checkpoint.steps(b) == [4]
    res = train(model_cfg(tok), cfg, data, b)  # a fresh call resumes from step 4
    assert res["resumed_from"] == 4 and checkpoint.steps(b) == [4, 8, 10]
    wa, wb = load_file(f"{a}/model_000010.safetensors"), load_file(f"{b}/model_000010.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = checkpoint.load_state(a, 10), checkpoint.load_state(b, 10)
    assert sa["position"] == sb["position"] and sa["tokens_seen"] == sb["tokens_seen"]
    for k, st in sa["optimizer"]["state"].items():
        assert all(torch.equal(st[n], sb["optimizer"]["state"][k][n]) for n in st)
    assert ("mtp_head" in sa) == (mtp > 0)
    if mtp:
        assert all(torch.equal(v, sb["mtp_head"][k]) for k, v in sa["mtp_head"].items())
        assert not any(k.startswith(("ln.", "up.", "down.")) for k in wa)  # the head is not in the model
        checkpoint.load_model(a)  # and the model loads as a plain one


def test_mtp_adds_the_weighted_loss_of_the_token_after_next(tok):
    """train.mtp: the sparse loss plus w x the cross-entropy of token t+2 from the head on the final state at t,
    over the positions whose next two tokens are targets; against a dense reference over every position."""
    from physlm.model.mtp import NextNextHead

    torch.manual_seed(0)
    model = build(model_cfg(tok))
    head = NextNextHead(model.config.hidden_size, 0.02)
    batch = next(OnlineProblems(GEN, tok).batches(None, n_ctx=N_CTX, batch_size=3, loss_on="solution"))
    ids, mask = batch.ids, batch.mask
    plain = NextTokenLoss(model, sparse=True)(ids, mask)
    runner = NextTokenLoss(model, sparse=True, mtp=(head, 0.3))
    got = runner(ids, mask)
    torch.testing.assert_close(runner.aux, (got - plain).detach())  # what train_step leaves out of the logged loss
    states = model.gpt_neox(input_ids=ids).last_hidden_state  # (b, T, d), after the final LayerNorm
    ref = 0.0
    for r in range(ids.shape[0]):
        for t in range(ids.shape[1] - 2):
            if mask[r, t + 1] and mask[r, t + 2]:
                logits = model.get_output_embeddings()(head(states[r, t][None]))
                ref = ref + torch.nn.functional.cross_entropy(logits, ids[r, t + 2][None], reduction="sum")
    assert ref > 0
    torch.testing.assert_close(got - plain, 0.3 * ref, rtol=1e-4, atol=1e-3)
    got.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    with pytest.raises(TrainConfigError, match="mtp"):
        NextTokenLoss(model, sparse=False, mtp=(head, 0.3))


def test_compiled_body_trains_like_eager(source, tok, tmp_path):
    """compile="body" compiles the transformer blocks in place: the same losses as eager (to float rounding), the
    same checkpoint tensors by name, and the model reloads without any compiled wrapper."""
    cfg = dict(steps=4, batch_size=2, warmup=1, ckpt_every=4, log_every=1, loss_on="all", seed=5, num_threads=1)
    eager = train(model_cfg(tok), TrainConfig(compile="off", **cfg), source, str(tmp_path / "eager"))
    body = train(model_cfg(tok), TrainConfig(compile="body", **cfg), source, str(tmp_path / "body"))
    le, lb = [h["loss"] for h in eager["history"]], [h["loss"] for h in body["history"]]
    assert lb == pytest.approx(le, rel=1e-3), (le, lb)
    we, wb = (
        load_file(f"{tmp_path}/eager/model_000004.safetensors"),
        load_file(f"{tmp_path}/body/model_000004.safetensors"),
    )
    assert we.keys() == wb.keys() and all(torch.allclose(we[k], wb[k], atol=1e-4) for k in we)
    assert not any("_orig_mod" in n for n, _ in checkpoint.load_model(str(tmp_path / "body")).named_parameters())


def test_compile_without_a_cpp_compiler_trains_eagerly(source, tok, tmp_path, monkeypatch, caplog):
    """On a CPU without a C++ compiler, compile="body" falls back to eager with one warning: the very losses and
    weights of compile="off" (torch.compile would otherwise fail at the first step)."""
    cfg = dict(steps=2, batch_size=2, warmup=1, ckpt_every=2, log_every=1, seed=5, num_threads=1)
    eager = train(model_cfg(tok), TrainConfig(compile="off", **cfg), source, str(tmp_path / "eager"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-compilers"))
    monkeypatch.delenv("CXX", raising=False)
    with caplog.at_level("WARNING", logger="physlm"):
        body = train(model_cfg(tok), TrainConfig(compile="body", **cfg), source, str(tmp_path / "body"))
    assert [h["loss"] for h in body["history"]] == [h["loss"] for h in eager["history"]]
    assert "no C++ compiler" in caplog.text
    we, wb = (load_file(f"{tmp_path}/{d}/model_000002.safetensors") for d in ("eager", "body"))
    assert all(torch.equal(we[k], wb[k]) for k in we)


def test_checkpoints_and_registry_on_s3(s3_root, source, tok):
    out = f"{s3_root}/train-x/run"
    cfg = TrainConfig(steps=3, batch_size=2, warmup=1, ckpt_every=2, log_every=1, seed=2, num_threads=1)
    first = train(model_cfg(tok), cfg, source, out, until_step=2)  # a time slice: stops with a checkpoint
    assert first["step"] == 2 and checkpoint.steps(out) == [2]
    done = train(
        model_cfg(tok), cfg, source, out, on_checkpoint=lambda m: registry.register(registry.row_from_meta(m, "d", "t"))
    )
    assert done["resumed_from"] == 2 and checkpoint.steps(out) == [2, 3]
    assert registry.latest("t")["path"] == f"{out}/meta_000003.json"
    assert checkpoint.load_model(out).config.use_parallel_residual is False
