"""Tokenizers for iGSM text and the token framing of igsm-spec.md A.8; reads local files only, never a hub.

Two tokenizers, one interface (:class:`Tokenizer`: ``encode``/``decode`` text, the four marker ids):

* ``build_wordlevel(names="whole"|"words")`` — our default. iGSM text has a closed vocabulary (spec A.1, A.5,
  A.7): template words, punctuation, numbers 0..22, the 52 solution letters, the 16 category names and the
  1,600 item names. Every token carries its leading space, as GPT-2's "Ġ" tokens do (" The", " 17",
  " Harbor Point"), while "'s", ",", ".", "?", ";" carry none: decoding is plain concatenation, so
  ``decode(encode(t)) == t`` exactly for every generated problem and solution. The pre-tokenizer is one
  regex ``Split``: item names first (longest first, as whole tokens, unless ``names="words"``), then a
  space-prefixed word, number or single symbol. Anything outside the closed set becomes ``[UNK]``.
  The build is a pure function of the packaged vocabulary: same ids on every machine.
* ``from_gpt2_files(vocab_json, merges_txt)`` — the paper's GPT-2 byte-level BPE, from local files, with
  the paper's markers: ids 222/223/224 (rare byte tokens repurposed) and 50256 = ``<|endoftext|>``.

Framing (A.8): a training unit is ``[problem] problem [solution] solution [answer] " answer" [end]``; the
packer (physlm/model/data.py) starts every window with ``[end]`` so each problem is preceded by the end token,
exactly like the eval prompt ``[end][problem] problem [solution]``. ``encode_unit`` also returns the loss
mask: the model's output part (solution, answer marker, answer, end) or every token.

Saved as ``tokenizer.json`` + ``tokenizer_config.json`` (transformers' ``PreTrainedTokenizerFast`` and
``AutoTokenizer`` load the folder) + ``physlm_markers.json`` (the marker ids, read by :func:`load`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from tokenizers import Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from physlm.config import ConfigError
from physlm.igsm import vocab as igsm_vocab
from physlm.igsm.graph import LETTERS, MOD
from physlm.store import storage

END, PROBLEM, SOLUTION, ANSWER = "<|endoftext|>", "<|problem|>", "<|solution|>", "<|answer|>"
SPECIALS = (END, PROBLEM, SOLUTION, ANSWER, "[START]", "[MID]", "[END]", "[UNK]")
"""Word-level special tokens, ids 0..7 in this order; <|endoftext|> is also the padding token."""

TEMPLATE_WORDS = (
    "The",
    "number",
    "of",
    "each",
    "equals",
    "the",
    "sum",
    "difference",
    "and",
    "more",
    "than",
    "times",
    "as",
    "much",
    "How",
    "many",
    "does",
    "have",
    "has",
    "Define",
    "so",
    "BACK",
)
"""Every word of the problem (A.5) and solution (A.7, A.12 retry) templates; each gets a leading space."""
SYMBOLS_SPACED = ("=", "+", "-", "*")
"""Operators: written " = ", so they carry a leading space like words."""
SYMBOLS_BARE = ("'s", ",", ".", "?", ";")
"""Punctuation glued to the previous word: no leading space."""

GPT2_MARKERS = {"end": 50256, "problem": 222, "solution": 223, "answer": 224}
"""The paper's marker ids in the GPT-2 vocabulary (spec A.8)."""

MARKERS_FILE = "physlm_markers.json"
LOSS_ON = ("solution", "all")


@dataclass(frozen=True)
class Markers:
    """Ids of the framing markers (spec A.8); ``end`` doubles as padding."""

    end: int
    problem: int
    solution: int
    answer: int


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus its marker ids and the iGSM framing. No transformers import needed."""

    def __init__(self, tok: HFTokenizer, markers: Markers, kind: str):
        self.tok, self.markers, self.kind = tok, markers, kind
        self._fast = _FastWordLevel.of(tok) if kind == "wordlevel" else None

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        if self._fast is not None and self._fast.handles(text):
            return self._fast.encode(text)
        return self.tok.encode(text, add_special_tokens=False).ids

    def one_id(self, text: str, option: str) -> int:
        """The id of ``text``, which must be one token here; else a ConfigError naming ``option``, the setting
        that needs it."""
        ids = self.encode(text)
        if len(ids) != 1:
            raise ConfigError(f"{option}: the tokenizer splits {text!r} into {len(ids)} tokens")
        return ids[0]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._fast is not None and all(map(self._fast.handles, texts)):
            return [self._fast.encode(t) for t in texts]
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    # ------------------------------------------------------------------ framing (spec A.8)
    def frame(
        self, problem: list[int], solution: list[int], answer: list[int], loss_on: str = "solution"
    ) -> tuple[list[int], list[bool]]:
        """One training unit from already-encoded segments: ``(ids, mask)``, mask[t] = token t is a target."""
        m = self.markers
        head = [m.problem] + problem + [m.solution]
        tail = solution + [m.answer] + answer + [m.end]
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on: must be one of {LOSS_ON}, got {loss_on!r}")
        return head + tail, [loss_on == "all"] * len(head) + [True] * len(tail)

    def encode_unit(
        self, problem: str, solution: str, answer: int | str, loss_on: str = "solution"
    ) -> tuple[list[int], list[bool]]:
        """``[problem] problem [solution] solution [answer] " answer" [end]`` and its loss mask."""
        p, s, a = self.encode_batch([problem, solution, f" {answer}"])
        return self.frame(p, s, a, loss_on)

    def encode_with_fallback(self, text: str) -> tuple[list[int], int]:
        """``encode`` for text that may hold words outside the closed vocabulary (e.g. item names of the authors'
        generator): each piece that would become [UNK] is read through its known words, else spelt with the
        letter tokens (" Zorb" -> " Z", " o", " r", " b"), so distinct names stay distinct. Returns the ids and
        how many of them came from the fallback."""
        enc = self.tok.encode(text, add_special_tokens=False)
        unk = self.tok.token_to_id("[UNK]")
        if unk is None or unk not in enc.ids:
            return list(enc.ids), 0
        ids, fallback = [], 0
        for i, (start, end) in zip(enc.ids, enc.offsets):
            if i != unk:
                ids.append(i)
                continue
            piece = self._spell(text[start:end])
            ids += piece
            fallback += len(piece)
        return ids, fallback

    def _spell(self, piece: str) -> list[int]:
        """A piece outside the vocabulary as letter tokens (each with the leading space the vocabulary has)."""
        unk = self.tok.token_to_id("[UNK]")
        out = [self.tok.token_to_id(" " + c) for c in piece.strip()]
        return [unk if t is None else t for t in out] or [unk]

    def encode_prompt(self, problem: str) -> list[int]:
        """The evaluation prompt ``[end][problem] problem [solution]``."""
        return [self.markers.end, self.markers.problem] + self.encode(problem) + [self.markers.solution]

    def split_output(self, ids) -> tuple[str, str | None]:
        """A generated continuation of a prompt -> ``(solution text, answer text or None)``; stops at end."""
        ids = list(ids)
        if self.markers.end in ids:
            ids = ids[: ids.index(self.markers.end)]
        if self.markers.answer not in ids:
            return self.decode(ids), None
        k = ids.index(self.markers.answer)
        return self.decode(ids[:k]), self.decode(ids[k + 1 :])

    # ------------------------------------------------------------------ save / load
    def save(self, folder: str) -> str:
        """Write tokenizer.json, tokenizer_config.json and the marker ids under ``folder``; returns it."""
        storage.write_bytes(storage.join(folder, "tokenizer.json"), self.tok.to_str().encode())
        end_tok = self.tok.id_to_token(self.markers.end)
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": end_tok,
            "eos_token": end_tok,
            "pad_token": end_tok,
            "unk_token": "[UNK]" if self.kind == "wordlevel" else end_tok,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1 << 20,
        }
        storage.write_json(storage.join(folder, "tokenizer_config.json"), config)
        storage.write_json(storage.join(folder, MARKERS_FILE), {"kind": self.kind, **asdict(self.markers)})
        return folder


def load(folder: str) -> Tokenizer:
    """Load a tokenizer saved by :meth:`Tokenizer.save` (local folder or s3:// URL)."""
    tok = HFTokenizer.from_str(storage.read_bytes(storage.join(folder, "tokenizer.json")).decode())
    meta = storage.read_json(storage.join(folder, MARKERS_FILE))
    kind = meta.pop("kind")
    return Tokenizer(tok, Markers(**meta), kind)


# ---------------------------------------------------------------------- word level (our default)
def wordlevel_vocab(names: str = "whole") -> list[str]:
    """The ordered token list: specials, numbers 0..22, letters, template words, symbols, categories, names.

    Deterministic: fixed tuples plus the packaged item names in file order; duplicates keep the first id.
    """
    if names not in ("whole", "words"):
        raise ValueError(f"names: must be 'whole' or 'words', got {names!r}")
    v = igsm_vocab.load()
    items = v.all_items()
    pieces = [str(i) for i in range(MOD)] + list(LETTERS) + list(TEMPLATE_WORDS) + list(SYMBOLS_SPACED)
    pieces += [c for h in igsm_vocab.HIERARCHIES for c in h]
    pieces += items if names == "whole" else [w for name in items for w in name.split(" ")]
    tokens = list(SPECIALS) + [" " + p for p in pieces] + list(SYMBOLS_BARE)
    return list(dict.fromkeys(tokens))  # ordered de-duplication


def _multi_word_items() -> list[str]:
    """The item names of more than one word: the ones the pre-tokenizer must keep whole."""
    return [n for n in igsm_vocab.load().all_items() if " " in n]


_WORD_PIECE = re.compile(r" ?[A-Za-z]+| ?[0-9]+|'s| ?[^A-Za-z0-9 ]| ")
"""The pre-tokenizer's alternatives after the item names, in its order (:func:`_pattern`)."""


def _pattern(names: list[str]) -> str:
    """Regex alternation of the pre-tokenizer: [space]name (longest first; none if ``names`` is empty), [space]word,
    bare symbol."""
    if not names:
        return _WORD_PIECE.pattern
    multi = sorted(set(names), key=lambda n: (-len(n), n))
    # A name must end at a word boundary: "Bay" must not eat the start of "Bayview".
    return " ?(?:" + "|".join(re.escape(n) for n in multi) + ")(?![A-Za-z0-9])|" + _WORD_PIECE.pattern


def _split_regex(names: str) -> str:
    """The pre-tokenizer's regex for ``names`` = "whole" (multi-word names kept whole) or "words"."""
    return _pattern(_multi_word_items() if names == "whole" else [])


class _FastWordLevel:
    """The word-level tokenizer's encoding in Python, ~10x faster than the tokenizers library's ``Split`` on a
    regex alternation of 1,150 names, with the same ids (tested on the text of every family and format, and
    on adversarial strings): the generic pieces of :data:`_WORD_PIECE`, except that a piece which starts an
    item name (the longest whose words are the next pieces, ending at a word boundary) yields the name. Built
    only when the tokenizer's pre-tokenizer is exactly ours; text holding a special token takes the library
    path."""

    def __init__(self, vocab: dict[str, int], names: list[str], unk: int, specials: list[str]):
        self.vocab, self.unk, self.specials = vocab, unk, specials
        # a name's first piece, with and without its leading space -> (its other pieces, its token), longest first
        self.names_at: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for name in sorted(names, key=lambda n: (-len(n), n)):
            first, *rest = name.split(" ")
            for lead in ("", " "):
                self.names_at.setdefault(lead + first, []).append((tuple(" " + w for w in rest), lead + name))

    @classmethod
    def of(cls, tok: HFTokenizer) -> _FastWordLevel | None:
        spec = json.loads(tok.to_str())
        pattern = ((spec.get("pre_tokenizer") or {}).get("pattern") or {}).get("Regex")
        model = spec.get("model") or {}
        if spec.get("normalizer") or model.get("type") != "WordLevel" or pattern is None:
            return None
        for mode in ("whole", "words"):
            if pattern == _split_regex(mode):
                names = _multi_word_items() if mode == "whole" else []
                specials = [t["content"] for t in spec.get("added_tokens", [])]
                return cls(model["vocab"], names, model["vocab"][model["unk_token"]], specials)
        return None

    def handles(self, text: str) -> bool:
        return not any(sp in text for sp in self.specials)

    def encode(self, text: str) -> list[int]:
        """All generic pieces in one ``findall`` and their ids in one pass; then, left to right, the pieces
        that start a name replaced by the name's id."""
        pieces = _WORD_PIECE.findall(text)
        vocab, unk, names_at = self.vocab, self.unk, self.names_at
        ids = [vocab.get(p, unk) for p in pieces]
        out, done = [], 0  # ids[:done] are in out
        for i in [i for i, p in enumerate(pieces) if p in names_at]:
            if i >= done and (name := self._name_at(pieces, i)) is not None:
                out += ids[done:i]
                out.append(vocab.get(name[1], unk))
                done = i + name[0]
        return out + ids[done:] if done else ids

    def _name_at(self, pieces: list[str], i: int) -> tuple[int, str] | None:
        """(pieces covered, token) of the longest name that starts at piece ``i``, None if none. The regex's word
        boundary after a name: the next piece does not start with a digit (a letter would have been in the name's
        last piece)."""
        for rest, name in self.names_at[pieces[i]]:
            k = len(rest) + 1
            if tuple(pieces[i + 1 : i + k]) == rest and not (i + k < len(pieces) and pieces[i + k][0] in "0123456789"):
                return k, name
        return None


def build_wordlevel(names: str = "whole") -> Tokenizer:
    """The iGSM word-level tokenizer; ``names="whole"``: every item name one token, ``"words"``: word by word."""
    tokens = wordlevel_vocab(names)
    tok = HFTokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    # "isolated": every regex match is its own piece; unmatched text (never, given the " " fallback) too.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(_split_regex(names)), behavior="isolated")
    tok.decoder = decoders.Fuse()  # tokens carry their spaces: decoding is concatenation
    tok.add_special_tokens(list(SPECIALS))  # never split, never produced from text
    ids = {t: i for i, t in enumerate(tokens)}
    return Tokenizer(tok, Markers(ids[END], ids[PROBLEM], ids[SOLUTION], ids[ANSWER]), "wordlevel")


# ---------------------------------------------------------------------- GPT-2 BPE (the paper's)
def from_gpt2_files(vocab_json: str, merges_txt: str, markers: dict | None = None) -> Tokenizer:
    """GPT-2 byte-level BPE from local ``vocab.json``/``merges.txt`` with the paper's marker ids.

    The markers 222/223/224 are ordinary byte tokens in GPT-2's vocabulary (never produced by text that has
    no such bytes), so nothing is added; ``<|endoftext|>`` must be in the vocabulary at ``markers["end"]``.
    """
    markers = dict(GPT2_MARKERS if markers is None else markers)
    vocab = json.loads(storage.read_bytes(vocab_json))
    merges = [
        tuple(line.split(" "))
        for line in storage.read_bytes(merges_txt).decode().splitlines()
        if line and not line.startswith("#version")
    ]
    if vocab.get(END) != markers["end"]:
        raise ValueError(f"vocab_json: {END!r} must have id {markers['end']}, got {vocab.get(END)}")
    tok = HFTokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([END])
    return Tokenizer(tok, Markers(**markers), "gpt2")
