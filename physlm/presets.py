"""Named studies (presets) built from the step configs of physlm/config.py, and their `key=value` overrides.

A `Preset` is a frozen dataclass tree whose sections ARE the step configs: `data` (DataConfig, the generate
step's datasets), `model` (ModelConfig) + `tokenizer` + `train` (TrainConfig) (together the train step),
`evaluate` (EvalConfig), `probe` (ProbeConfig), and the sweep's `grid` of model shapes. The plan
(physlm/plan.py, physlm/stages/) composes the steps from these objects as they are: nothing is copied field
by field. The model's `vocab_size` is set from the tokenizer here, so `preset.model` is the model trained.

Overrides are OLMo-core style dotlists, `data.train_shards=3`, `data.family.max_op=5`, `model.canon=AC`,
`grid=GPT2-2-2,GPT2-4-4`: each key is looked up in the dataclass tree, each value parsed by the field's
annotated type (int, float, bool, str, `X | None` with `none`, tuples as comma lists or JSON lists; a `Family`
field also takes a family name: `data.family=hard`), and the changed tree is rebuilt so every
`__post_init__` check runs. Two convenience keys: `model.shape=GPT2-l-h[-hdK]` sets n_layer, n_head (and
head_dim); `model.tokenizer` is the old name of `tokenizer`. `resolve` therefore fails *before any work*
with a one-line `ConfigError` naming the dotted key.

Presets (paper numbers from igsm-spec.md C.3, D; sizes of the training data are modest on purpose: the
paper generates training data online, ~120 M problems per model, which the `train` stage streams):

- `tiny`: a CPU demo family (max_op 4, ip <= 6) with OOD ops 5 and 6, 2 x 2000 training problems, 200 per test set,
  plus "test_seen" (fresh problems of the training templates: the family is too small for its template split
  to be typical);
- `med-pq`, `med-qp`, `hard-pq`, `hard-qp`: the paper's families and formats, 4096 problems per test cell;
- `grid-tiny`, `grid-size1`, `grid-size2`: the depth x width grids (model shapes `GPT2-l-h`);
- `NAME-pretrained`, one per shipped model (physlm/pretrained/NAME/): the study whose train step installs those
  weights instead of training them (`shipped`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import types
import typing
from dataclasses import dataclass, field

from physlm import tables
from physlm.config import ConfigError, DataConfig, EvalConfig, ModelConfig, ProbeConfig, TrainConfig, parse_shape
from physlm.igsm.config import HARD, MED, Family
from physlm.igsm.config import family as named_family

TINY = Family("tiny", max_op=4, max_edge=6)
"""A family a CPU model can learn in minutes: op <= 4, at most 6 instance parameters."""
TOKENIZERS = ("whole", "words")
"""Word-level tokenizer: item names as whole tokens ("whole") or word by word ("words")."""


@functools.cache
def vocab_size(tokenizer: str) -> int:
    """Token count of a word-level tokenizer kind (its vocabulary list; no tokenizer is built)."""
    from physlm.model.tokenizer import wordlevel_vocab

    return len(wordlevel_vocab(tokenizer))


@dataclass(frozen=True, kw_only=True)
class Preset:
    """One study: a step config per stage (module docstring)."""

    name: str
    """The preset's name (overrides do not change it; step hashes never include it)."""
    data: DataConfig = field(default_factory=DataConfig)
    """What the generate stage makes."""
    grid: tuple[str, ...] = ()
    """Model shapes "GPT2-l-h" (l layers, h heads, width 64h) of the depth x width sweep; empty: no sweep."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model trained by the train stage (its vocab_size is set from the tokenizer)."""
    tokenizer: str = "whole"
    """Word-level tokenizer: item names as whole tokens ("whole") or word by word ("words")."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training hyper-parameters (the paper's by default)."""
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    """Decodings and limits of the evaluate stage."""
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    """V-probing of the trained model (the probe stage)."""

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(self.grid))
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer: must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.model.vocab_size != vocab_size(self.tokenizer):
            object.__setattr__(self, "model", dataclasses.replace(self.model, vocab_size=vocab_size(self.tokenizer)))
        if self.train.late_op_dist and not self.data.online:
            raise ConfigError("train.late_op_dist: an op curriculum needs online data (data.online=true)")
        if self.train.recall_warmup and not self.data.online:
            raise ConfigError("train.recall_warmup: a recall warm-up needs online data (data.online=true)")
        if tables.TEST_SEEN in self.probe.test_sets and not self.data.test_seen:
            raise ConfigError("probe.test_sets: test_seen needs data.test_seen=true (or probe.test_sets=test_id)")
        if any(x >= self.model.n_layer for x in self.probe.layers):
            raise ConfigError(
                f"probe.layers: block indices must be < {self.model.n_layer} (model "
                f"{self.model.name}), got {self.probe.layers}"
            )
        for shape in self.grid:
            try:
                parse_shape(shape)
            except ConfigError:
                raise ConfigError(f"grid: model shape {shape!r} is not of the form GPT2-<layers>-<heads>") from None


# ---------------------------------------------------------------------------------------------------------
# The named presets

SIZE1 = ("GPT2-4-21", "GPT2-8-15", "GPT2-12-12", "GPT2-16-10", "GPT2-20-9")
SIZE2 = ("GPT2-4-30", "GPT2-8-21", "GPT2-12-17", "GPT2-16-15", "GPT2-20-13")
# test_seen holds 1,000 problems (the other test sets 200): its accuracy by op is the preset's headline, and with
# 200 problems op 3 had 33 of them (a Wilson interval 5-27 % around 12 %); 800 more cost ~15 s of evaluation.
# 96 item names (one subcategory of 6 items per category) instead of 1,600, so that each name is seen ~17x as
# often: harness, 2 seeds x 100 problems per op, fully correct op 1 / 2 / 3 86 / 55.5 / 23 % against 84 / 53 /
# 14.3 % with every name (3 seeds); two fresh runs each, on 1,000-problem test_seen sets, were a wash (op 1 / 2 / 3
# 81.6 / 54.2 / 16.8 % against 87.0 / 51.4 / 19.4 %). The structure, dependency graphs and ops are the family's own.
_TINY_FAMILY = dataclasses.replace(TINY, subcategories=1, items=6)
_TINY_DATA = DataConfig(
    family=_TINY_FAMILY,
    ood_ops=(5, 6),
    train_shards=2,
    problems_per_shard=2000,
    test_problems=200,
    seen_problems=1000,
    online=True,
    test_seen=True,
)
# Canon layers at all four sites (Physics of LMs Part 4.1): the one lever that moved what the tiny model solves
# (benchmarks/results/learnability.jsonl; README "What the tiny preset learns"): at 1,500 steps fully correct
# op 1 / op 2 on fresh training-template problems, 3 seeds, 53 % / 15 % against 29 % / 0 % without.
# Depth over width at equal wall time: 4 blocks of width 64 (GPT2-4-2-hd32, 2 heads of 32) instead of 2 of width
# 128 — half the matmul FLOPs a token, so 4,461 steps in the 9.4 minutes GPT2-2-2 takes for 3,500 — solved op 1 / 2
# / 3 / 4 99.5 / 68.5 / 23.5 / 3.5 % (harness, 2 seeds x 100 problems per op) against 86 / 55.5 / 23 / 0.5 %
# for GPT2-2-2, seed for seed, with the lowest solution loss of all (0.312-0.324); 6 blocks of width 64 in the
# same time (2,679 steps) 87 / 45 / 9 %: still learning when the time ends.
_TINY_MODEL = ModelConfig.from_name("GPT2-4-2-hd32", n_ctx=256, canon="ABCD")
# lr 3e-3 (at 1,500 steps 4e-3 was worse, 6e-3 collapsed one run of two, 1e-2 never stops a solution). Steps:
# op 1 / op 2 kept climbing from 1,500 to 3,500 steps; 3,500 steps at ~165 ms (both cores, the blocks compiled:
# Canon's elementwise work fused, 30 s of compilation) fit the 15-minute run (measured 14 min 38 s).
# letter_targets="expected" (the solution's fresh letters trained on their expected loss): op 2 / op 3 60 % / 16 %
# against 40 % / 7 % (harness, 2 seeds x 100 problems per op); the model no longer reuses a letter. The run takes
# 11 min 47 s (96 names; 12 min 24 s with all 1,600). 4,000 steps (harness op 1 / 2 / 3: 92 / 54 / 18 %, within
# noise of 3,500's) took 15 min 12 s once on a noisy machine; 3,800 steps scored op 3 3 % in its one run: one
# run's 33 op-3 problems decide nothing.
# With GPT2-4-2-hd32 the same time buys 4,400 steps (its fresh run: 12 min 48 s; test_seen op 1 / 2 / 3 / 4 97.6 /
# 79.4 / 41.9 / 5.6 %, against 82.2 / 57.8 / 19.4 / 0 % for GPT2-2-2's 3,500).
# Not bf16 (train.dtype=bf16: a step 1.22x faster, 4,500 steps in the time of 3,500): within noise of fp32 in the
# harness (2 seeds: op 1 / 2 / 3 92.5 / 59.5 / 15 % against 87.5 / 60.5 / 15.5 %), and its fresh run took 12 min
# 59 s for test_seen op 1 / 2 / 3 79.6 / 60.0 / 9.1 % (this preset's: 12 min 24 s, 86.7 / 54.5 / 12.1 %).
_TINY_TRAIN = TrainConfig(
    steps=4400,
    batch_size=16,
    lr=3e-3,
    warmup=100,
    weight_decay=0.05,
    loss_on="solution",
    ckpt_every=250,
    log_every=50,
    compile="body",
    letter_targets="expected",
    progress=True,
)
_TINY_EVAL = EvalConfig(decodings=("greedy",), max_new_tokens=160)  # every problem of every test set
# 300 steps at lr 2e-2 on 600 training problems: on a finished root of this preset (fresh run 2), the nece V-probe
# vs its random-init baseline, 2 probe seeds, MCC on 300 test_seen / 300 test_id problems: 0.25 / 0.29 vs 0.03 /
# 0.07 (test_seen), 0.27 / 0.41 vs 0.00 / 0.08 (test_id); with the earlier 200 steps at lr 1e-2 on 200 problems
# 0.15 / 0.17 vs 0.09 / 0.12 and 0.05 / 0.10 vs 0.07 / 0.10: the probe was at its baseline. More steps (600: 0.33 /
# 0.46) cost more than the 15 minutes leave; lr 3e-3 or batches of 64 stayed near the baseline.
# Tested on test_id (the paper's unseen templates) and test_seen (the training templates: the problems this model
# solves). layers: the E10 nece probe after blocks 0-2 (after block 3 is the final LayerNorm's, layer -1).
# Baselines: random-init (and the majority class, always); the linear probe on 5,600 training examples a task
# costs ~13 s of a core each (~40 s of the stage), which the 15-minute run cannot spare with the probes above
# (fresh run with it: 14 min 20 s): `--set probe.baselines=random_init,linear` adds it.
# Warm-up: the LR ramps up over the first 10 % of the steps (it meets the decay line at step 27, 0.91 lr). Without
# it, at lr 2e-2 from step 0, one probe seed in six failed on run 13's model (nece MCC 0.098, accuracy under the
# majority's, against 0.42-0.57 for the other five); with it the same six seeds gave 0.45-0.59 (mean 0.54 against
# 0.45), random-init 0.00-0.10 (benchmarks/results/probe_recipe.jsonl, rows base-r13 and warmup30-r13, run as a
# 30-step ramp: the same schedule, the stage's metrics with either form equal to the last digit; the other five
# tasks, seeds 0 and 1: within the seeds' spread).
_TINY_PROBE = ProbeConfig(
    steps=300,
    lr=2e-2,
    warmup=0.1,
    batch_size=16,
    train_problems=600,
    test_problems=100,
    layers=(0, 1, 2),
    test_sets=(tables.TEST_ID, tables.TEST_SEEN),
    baselines=("random_init",),
)
# Spec C.5: 100k steps, lr 2e-3 linear decay, wd 0.01, batch 256 (med) / 128 (hard), rank 8; E10 per layer.
_PAPER_PROBE = {
    "med": ProbeConfig(
        steps=100_000, batch_size=256, train_problems=20_000, test_problems=4096, layers=tuple(range(12))
    ),
    "hard": ProbeConfig(
        steps=100_000, batch_size=128, train_problems=20_000, test_problems=4096, layers=tuple(range(12))
    ),
}
# The paper's pretraining recipe (spec C.2): GPT2-12-12, AdamW (0.9, 0.98), lr 2e-3, 1000 warm-up steps,
# cosine to 1%, loss on every token; med: wd 0.05, batch 512, ctx 768, 100k steps; hard: wd 0.03, 256, 1024, 200k.
_PAPER = {
    "med": (
        ModelConfig.from_name("GPT2-12-12", n_ctx=768),
        TrainConfig(steps=100_000, batch_size=512, weight_decay=0.05, loss_on="all"),
    ),
    "hard": (
        ModelConfig.from_name("GPT2-12-12", n_ctx=1024),
        TrainConfig(steps=200_000, batch_size=256, weight_decay=0.03, loss_on="all"),
    ),
}

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", data=_TINY_DATA, model=_TINY_MODEL, train=_TINY_TRAIN, evaluate=_TINY_EVAL, probe=_TINY_PROBE
    ),
    **{
        f"{fam.name}-{fmt}": Preset(
            name=f"{fam.name}-{fmt}",
            data=DataConfig(family=fam, format=fmt, online=True),
            model=_PAPER[fam.name][0],
            train=_PAPER[fam.name][1],
            probe=_PAPER_PROBE[fam.name],
        )
        for fam in (MED, HARD)
        for fmt in ("pq", "qp")
    },
    "grid-tiny": Preset(
        name="grid-tiny",
        data=_TINY_DATA,
        model=_TINY_MODEL,
        train=dataclasses.replace(_TINY_TRAIN, steps=300, ckpt_every=100, compile="off"),  # short: not worth 30 s
        evaluate=dataclasses.replace(_TINY_EVAL, limit=50),
        probe=dataclasses.replace(_TINY_PROBE, layers=()),  # E10 comes from `tiny`; any depth
        grid=("GPT2-2-2", "GPT2-2-4", "GPT2-4-2", "GPT2-4-4"),
    ),
    "grid-size1": Preset(
        name="grid-size1",
        data=DataConfig(family=MED, online=True),
        model=_PAPER["med"][0],
        train=_PAPER["med"][1],
        grid=SIZE1,
    ),
    "grid-size2": Preset(
        name="grid-size2",
        data=DataConfig(family=MED, online=True),
        model=_PAPER["med"][0],
        train=_PAPER["med"][1],
        grid=SIZE2,
    ),
}


def shipped(name: str) -> Preset:
    """``{name}-pretrained``: the preset whose train step installs the shipped model ``name``
    (``physlm/pretrained/{name}/``, physlm/store/pretrained.py) instead of training it, every section as the
    model's card records it: its train step is the one the weights were trained as, and its evaluate and probe
    steps the ones measured with them, whatever the preset that made them becomes."""
    from physlm.store import pretrained
    from physlm.store.steps import config_from_dict

    sec = pretrained.read_card(pretrained.locate(name))["preset"]
    return Preset(
        name=f"{name}-pretrained",
        data=config_from_dict(DataConfig, sec["data"]),
        model=config_from_dict(ModelConfig, sec["model"]),
        tokenizer=sec["tokenizer"],
        train=dataclasses.replace(config_from_dict(TrainConfig, sec["train"]), pretrained=name),
        evaluate=config_from_dict(EvalConfig, sec["evaluate"]),
        probe=config_from_dict(ProbeConfig, sec["probe"]),
    )


def _with_shipped(presets: dict[str, Preset]) -> dict[str, Preset]:
    """``presets`` and a ``NAME-pretrained`` preset per shipped model; a folder whose card cannot make one (bad
    JSON, a config field this physlm does not know, sections that do not fit together) is left out with a
    warning, so that one bad card never stops every command."""
    import logging

    from physlm.store import pretrained

    out = dict(presets)
    for n in pretrained.names():
        try:
            out[f"{n}-pretrained"] = shipped(n)
        except (ConfigError, ValueError, KeyError, TypeError) as e:
            logging.getLogger(__name__).warning("physlm/pretrained/%s left out: %s", n, " ".join(str(e).split()))
    return out


PRESETS = _with_shipped(PRESETS)

# ---------------------------------------------------------------------------------------------------------
# Overrides


def _keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of a dataclass tree (nested dataclass fields and their leaves)."""
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            out += _keys(tp, prefix + f.name + ".")
    return out


def _parse(tp, text: str, key: str):
    """`text` as a value of annotated type `tp`; ConfigError naming `key` if it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _parse(inner, text, key)
    if tp is Family:
        try:
            return named_family(text)
        except ConfigError:
            raise ConfigError(
                f"{key}: expected a family name (med, hard) or set its fields ({key}.max_op=...), got {text!r}"
            ) from None
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"{key}: expected true or false, got {text!r}")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"{key}: expected {'an int' if tp is int else 'a float'}, got {text!r}") from None
    if tp is str:
        return text
    if origin is tuple:
        items = _split_list(text, key)
        return tuple(_parse(args[0], str(x), f"{key}[{i}]") for i, x in enumerate(items))
    raise ConfigError(f"{key}: cannot be set from the command line (type {tp})")


def _split_list(text: str, key: str) -> list:
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"{key}: expected a list like [1,2] or 1,2, got {text!r}") from None
        if not isinstance(items, list):
            raise ConfigError(f"{key}: expected a list, got {text!r}")
        return items
    return [] if not text else [x.strip() for x in text.split(",")]


def _rebuild(obj, changes: dict, prefix: str = ""):
    """A copy of dataclass `obj` with nested `changes` applied, rebuilt bottom-up so every level validates.
    `changes[name]` is a parsed value, or a dict of changes to the nested dataclass `name` whose key "="
    (if present) replaces that dataclass before its own changes apply."""
    kw = {}
    for name, change in changes.items():
        if isinstance(change, dict):
            base = change.get("=", getattr(obj, name))
            kw[name] = _rebuild(base, {k: v for k, v in change.items() if k != "="}, f"{prefix}{name}.")
        else:
            kw[name] = change
    try:
        return dataclasses.replace(obj, **kw) if kw else obj
    except ConfigError as e:
        raise ConfigError(_dotted(prefix, str(e))) from None


def _dotted(prefix: str, msg: str) -> str:
    """A config's message ("steps: ...", or "family.max_op: ..." from a GenConfig) under the user's dotted key
    (prefix "train." -> "train.steps: ..."; prefix "data.family." -> "data.family.max_op: ...")."""
    parts = prefix.rstrip(".").split(".") if prefix else []
    for i in range(len(parts)):
        if msg.startswith(".".join(parts[i:]) + "."):
            return ".".join(parts[:i] + [msg])
    return prefix + msg


ALIASES = {"model.tokenizer": "tokenizer"}
"""Keys kept for their old spelling."""


def _shape_changes(text: str) -> dict:
    try:
        return parse_shape(text.strip())
    except ConfigError as e:
        raise ConfigError(f"model.{e}") from None


def apply(preset: Preset, overrides: list[str] | tuple[str, ...]) -> Preset:
    """`preset` with `key=value` overrides applied; ConfigError on the first bad key or value.

    Every value is parsed first (so a type error names its key), then the tree is rebuilt once: overrides
    that only make sense together (`data.family.max_op=5 data.ood_ops=6`) do not fail halfway. A later
    override of the same key wins; `data.family=hard` replaces the family, `data.family.max_op=...` after
    it edits that one."""
    known = [k for k in _keys(Preset) if k != "name"] + ["model.shape", *ALIASES]
    changes: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = ALIASES.get(key.strip(), key.strip())
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. data.train_shards=3")
        if key == "model.shape":
            changes.setdefault("model", {}).update(_shape_changes(text))
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"unknown key {key!r}{hint}")
        *parents, leaf = key.split(".")
        cls, node = Preset, changes
        for name in parents:
            cls = typing.get_type_hints(cls)[name]
            node = node.setdefault(name, {})
        tp = typing.get_type_hints(cls)[leaf]
        value = _parse(tp, text, key)
        node[leaf] = {"=": value} if dataclasses.is_dataclass(tp) else value
    try:
        return _rebuild(preset, changes)
    except ConfigError as e:
        given = " ".join(overrides)
        raise ConfigError(f"{e} (with overrides: {given})" if given else str(e)) from None


def resolve(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    """The named preset with `overrides` applied, fully validated; ConfigError (one line) otherwise."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; known: {', '.join(PRESETS)}")
    return apply(PRESETS[name], list(overrides or ()))
