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
