"""Tokenizer contracts: exact round-trips on generated text, closed vocabulary (no [UNK]), names as single
tokens, A.8 framing and masks, save/load through transformers, and the GPT-2 BPE option with the paper's
marker ids (on a synthetic byte-level vocabulary: no GPT-2 files on this machine)."""

import json
import os
import random
import re

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from physlm.igsm.config import Family, GenConfig
from physlm.igsm.generate import generate
from physlm.model import tokenizer as T

TINY = Family("tiny", max_op=4, max_edge=6)
CONFIGS = [
    GenConfig(),
    GenConfig(format="qp"),
    GenConfig(retry_rate=0.3),
    GenConfig(family=TINY),
    GenConfig(op=5, reask=True, split="test"),
]


@pytest.fixture(scope="module")
def problems():
    return [generate(cfg, seed) for cfg in CONFIGS for seed in range(25)]


@pytest.mark.parametrize("names", ["whole", "words"])
def test_roundtrip_exact_and_closed(names, problems):
    tok = T.build_wordlevel(names)
    unk = tok.tok.token_to_id("[UNK]")
    for p in problems:
        for text in (p.problem, p.solution, f" {p.answer}"):
            ids = tok.encode(text)
            assert unk not in ids, text
            assert tok.decode(ids) == text


def test_names_are_single_tokens(tok):
    ids = tok.encode(" Define Index Cards's Harbor Point as Z; so Z = 9.")
    pieces = [tok.tok.id_to_token(i) for i in ids]
    assert pieces == [" Define", " Index Cards", "'s", " Harbor Point", " as", " Z", ";", " so", " Z", " =", " 9", "."]
    words = T.build_wordlevel("words")
    assert [words.tok.id_to_token(i) for i in words.encode(" Harbor Point's")] == [" Harbor", " Point", "'s"]
    assert tok.decode(tok.encode(" Bayview? Zz!")).startswith(" Bayview?")  # unknown text -> [UNK], no crash


def library_ids(tok, text):
    return tok.tok.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("names", ["whole", "words"])
def test_fast_encoding_equals_the_library(names, problems, tmp_path):
    """Our Python encoder gives the tokenizers library's ids: on every problem, solution and answer text of
    each family and format, on texts built to trip it (names at word boundaries, prefixes of names, numbers
    glued to words, odd spaces and characters, unknown words) and on random strings of those pieces; and a
    tokenizer saved and loaded again still takes it."""
    tok = T.build_wordlevel(names)
    assert tok._fast is not None
    texts = [t for p in problems for t in (p.problem, p.solution, f" {p.answer}")]
    texts += [
        " Harbor Point's Harbor Pointy Harbor Point7 Harbor  Point Harbor Point",
        "Harbor Point", " Index Cards's Index", " Harbor Point² Harbor Point,7 Harbor Point 7", "  double  spaces ",
        "", " ", "'s's", "'", "''s",
        " Bayview? Zz! 12ab ab12 007 -3 + 4 * 5 = x;y,z.", "tab\tnew\nline", " Ünïcode Harbor PointÜ é",
        " The number of each Harbor Point's Index Cards equals 3.",
    ]  # fmt: skip
    pieces = [" Harbor", " Point", "Harbor", "Point", " Index", " Cards", "'s", " ", "  ", "7", " 12", "a", "?", "Ü",
              ".", " The", " Bay", "view", "-", "\n", " Coral", " Cove", " Aquarium", " Reef", "Coral", " Main",
              " Street", " Market", "\u00b2"]  # fmt: skip
    rng = random.Random(0)
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for text in texts:
        assert tok.encode(text) == library_ids(tok, text), repr(text)
    assert tok.encode_batch(texts[:50]) == [library_ids(tok, t) for t in texts[:50]]
    special = " The<|endoftext|> [START] Harbor Point [END]"
    assert not tok._fast.handles(special) and tok.encode(special) == library_ids(tok, special)
    tok.save(str(tmp_path))
    assert T.load(str(tmp_path))._fast is not None


def test_fast_encoding_backs_off_to_a_shorter_name():
    """Names that are word-prefixes of longer ones (none in our vocabulary): where the longer name fails its word
    boundary, the regex falls back to the shorter name; so does the piece matcher (against Python's ``re`` on the
    same alternation, which tries alternatives in order as the library's Onig does)."""
    names = ["Harbor Point", "Harbor Point Bay", "Point Bay"]
    pieces = [" Harbor", " Point", " Bay", "Harbor", "7", " 7", "'s", " ", "x", "."]
    vocab = {t: i for i, t in enumerate(pieces + [lead + n for n in names for lead in ("", " ")])}
    fast = T._FastWordLevel(vocab, names, unk=-1, specials=[])
    regex = re.compile(T._pattern(names))
    rng = random.Random(1)
    texts = [" Harbor Point Bay7 Harbor Point Bay. Harbor Point Bay's Point Bay7", "Harbor Point Bay x Harbor Point7"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 10))) for _ in range(3000)]
    for text in texts:
        assert fast.encode(text) == [vocab.get(m, -1) for m in regex.findall(text)], repr(text)


def test_build_is_deterministic(tok):
    assert T.build_wordlevel().tok.to_str() == tok.tok.to_str()
    assert T.wordlevel_vocab()[:8] == list(T.SPECIALS)
    assert tok.markers == T.Markers(end=0, problem=1, solution=2, answer=3)


def test_framing_and_masks(tok, problems):
    p = problems[0]
    ids, mask = tok.encode_unit(p.problem, p.solution, p.answer, loss_on="solution")
    m = tok.markers
    assert ids[0] == m.problem and ids[-1] == m.end and ids.count(m.solution) == 1 and ids.count(m.answer) == 1
    s, a = ids.index(m.solution), ids.index(m.answer)
    assert not any(mask[: s + 1]) and all(mask[s + 1 :])  # targets: solution, [answer], answer, [end]
    assert tok.decode(ids[a + 1 : -1]) == f" {p.answer}"
    _, mask_all = tok.encode_unit(p.problem, p.solution, p.answer, loss_on="all")
    assert all(mask_all)
    prompt = tok.encode_prompt(p.problem)
    assert prompt[:2] == [m.end, m.problem] and prompt[-1] == m.solution
    assert prompt[1:] == ids[: s + 1]  # the eval prompt is the training unit's head, after the end token
    assert tok.split_output(ids[s + 1 :] + [m.problem, 5]) == (p.solution, f" {p.answer}")
    assert tok.split_output(tok.encode(" Define")) == (" Define", None)


def test_save_load_transformers(tok, problems, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok.save(str(tmp_path))
    again = T.load(str(tmp_path))
    assert again.markers == tok.markers and again.tok.to_str() == tok.tok.to_str()
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"), clean_up_tokenization_spaces=False)
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    for p in problems[:20]:
        for hf in (fast, auto):
            ids = hf.encode(p.solution, add_special_tokens=False)
            assert ids == tok.encode(p.solution)
            assert hf.decode(ids) == p.solution
    assert auto.pad_token_id == tok.markers.end and auto.convert_tokens_to_ids("[MID]") == 5


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def test_gpt2_bpe_with_paper_markers(tmp_path, problems):
    # GPT-2's layout: ids 0..255 the byte symbols in bytes_to_unicode order, then merges, 50256 = endoftext.
    symbols = list(_bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "o"), ("Ġo", "f")]
    vocab = {s: i for i, s in enumerate(symbols)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    while len(vocab) < 50256:
        vocab[f"<filler{len(vocab)}>"] = len(vocab)
    vocab["<|endoftext|>"] = 50256
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    tok = T.from_gpt2_files(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    assert (tok.markers.end, tok.markers.problem, tok.markers.solution, tok.markers.answer) == (50256, 222, 223, 224)
    assert tok.vocab_size == 50257
    assert tok.encode(" the of") == [vocab["Ġthe"], vocab["Ġof"]]
    p = problems[0]
    ids, mask = tok.encode_unit(p.problem, p.solution, p.answer)
    assert ids[0] == 222 and ids[-1] == 50256 and 223 in ids and 224 in ids
    assert tok.decode(ids[1 : ids.index(223)]) == p.problem
    assert tok.encode_prompt(p.problem)[:2] == [50256, 222]
    tok.save(str(tmp_path / "saved"))
    assert T.load(str(tmp_path / "saved")).encode(p.solution) == tok.encode(p.solution)
    with pytest.raises(ValueError, match="vocab_json"):
        T.from_gpt2_files(
            str(tmp_path / "vocab.json"),
            str(tmp_path / "merges.txt"),
            markers={"end": 7, "problem": 222, "solution": 223, "answer": 224},
        )
