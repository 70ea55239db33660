"""Evaluating an external transformers causal LM on iGSM: text prompts, the same checker."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from physlm.igsm import record
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.generate import generate
from physlm.stages.evaluate import EvalOptions, TextCodec, evaluate_rows, load_external

TINY = GenConfig(family=Family("tiny", max_op=4, max_edge=6), split="test")


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """A tiny GPT-2 and a byte-level BPE tokenizer trained here (no hub), saved as a user would have them."""
    folder = tmp_path_factory.mktemp("ext")
    texts = [
        p.problem + "\nSolution:" + p.solution + "\nAnswer: " + str(p.answer)
        for p in (generate(TINY.with_(split="all"), s) for s in range(200))
    ]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(
            vocab_size=tok.vocab_size,
            n_layer=1,
            n_head=2,
            n_embd=32,
            n_positions=1024,
            resid_pdrop=0,
            embd_pdrop=0,
            attn_pdrop=0,
        )
    ).save_pretrained(folder)
    return str(folder)


def test_external_model_is_judged_by_the_same_checker(external):
    model, codec = load_external(external)
    assert isinstance(codec, TextCodec)
    rows = [record.row(generate(TINY, s), f"x-{s}", "test_id") for s in range(4)]
    gens = evaluate_rows(model, codec, rows, "test_id", "external", opts=EvalOptions(batch_size=4, max_new_tokens=12))
    assert len(gens) == 4 and not any(g["correct"] for g in gens) and all(g["error"] for g in gens)


def test_text_codec_parses_a_correct_text_answer(external):
    _, codec = load_external(external)
    p = generate(TINY, 3)
    ids = codec.tok(p.solution + "\nAnswer: " + str(p.answer), add_special_tokens=False)["input_ids"]
    text, solution, answer = codec.parse(ids)
    assert solution.strip() == p.solution.strip() and answer == str(p.answer)


def test_not_a_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local transformers model"):
        load_external(str(tmp_path))


def test_cli_evaluate_model_needs_generated_test_sets_then_runs(external, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PHYSLM_ROOT": str(tmp_path / "root"), "HF_HUB_OFFLINE": "1"}
    sets = [
        "--set",
        "data.test_problems=2",
        "--set",
        "data.seen_problems=0",
        "--set",
        "data.train_shards=1",
        "--set",
        "data.problems_per_shard=5",
        "--set",
        "data.processes=0",
    ]
    cli = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "flows", *a],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    out = cli("evaluate-model", external, *sets)
    assert out.returncode == 2 and "not generated yet" in out.stderr and "Traceback" not in out.stderr
    from physlm.presets import resolve
    from physlm.stages import generate as datasets

    os.environ["PHYSLM_ROOT"] = env["PHYSLM_ROOT"]
    try:
        for step in datasets.plan(resolve("tiny", [s for s in sets if s != "--set"])):
            datasets.run(step)
    finally:
        del os.environ["PHYSLM_ROOT"]
    out = cli("evaluate-model", external, *sets, "--max-new-tokens", "4", "--out", str(tmp_path / "ev"))
    assert out.returncode == 0, out.stderr[-1500:]
    assert "| " + external in out.stdout and (tmp_path / "ev" / "generations.parquet").exists()


def test_physlm_model_on_a_problem_file_with_foreign_names(root, tmp_path):
    """`physlm evaluate-model TRAIN_STEP --problems FILE`: a physlm checkpoint, problems given as text (read by
    the parser alone), names outside the vocabulary spelt instead of [UNK], accuracy by op as JSON."""
    import json
    import os
    import re
    import subprocess
    import sys

    from physlm.model.tokenizer import build_wordlevel
    from physlm.presets import resolve
    from physlm.stages import generate as gen_stage
    from physlm.stages import train

    p = resolve("tiny", ["data.train_shards=1", "data.problems_per_shard=20", "data.test_problems=2",
                         "data.seen_problems=0", "data.processes=0", "train.steps=2", "train.compile=off",
                         "train.batch_size=2", "train.ckpt_every=2"])  # fmt: skip
    gen_stage.run(gen_stage.dataset_step(p, "train"))
    step_path = train.run(train.train_step(p))
    problems = [generate(TINY, s) for s in range(6)]
    names = sorted({n for q in problems for layer in q.graph.items for n in layer})
    foreign = {n: f"Zq{i}x Vale" for i, n in enumerate(names)}  # names no vocabulary of ours has
    pattern = re.compile(
        r"(?<![A-Za-z])(" + "|".join(map(re.escape, sorted(foreign, key=len, reverse=True))) + r")(?![A-Za-z])"
    )
    lines = [json.dumps({"id": f"q{q.seed}", "problem": pattern.sub(lambda m: foreign[m[1]], q.problem), "op": q.op})
             for q in problems]  # fmt: skip
    path = tmp_path / "foreign.jsonl"
    path.write_text("\n".join(lines) + "\n")
    tok = build_wordlevel()
    assert tok.tok.token_to_id("[UNK]") in tok.encode(open(path).readline())  # plain encoding would lose them
    out = subprocess.run([sys.executable, "-m", "flows", "evaluate-model", step_path, "--problems", str(path),
                          "--max-new-tokens", "8", "--format", "json", "--out", str(tmp_path / "ev")],
                         capture_output=True, text=True, timeout=300, env={**os.environ})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    acc = [json.loads(x) for x in out.stdout.splitlines()]
    pooled = next(a for a in acc if a["op"] == -1)
    assert pooled["test_set"] == "foreign" and pooled["n"] == 6
    assert {a["op"] for a in acc if a["op"] != -1} == {q.op for q in problems}
    assert "fallback:" in out.stderr and "prompt tokens" in out.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "not an iGSM problem"}\n')
    err = subprocess.run([sys.executable, "-m", "flows", "evaluate-model", step_path, "--problems", str(bad)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert err.returncode == 2 and "line 1: not an iGSM problem" in err.stderr and "Traceback" not in err.stderr
