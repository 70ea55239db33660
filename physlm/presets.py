"""Named study configurations (presets) and their `key=value` overrides.

A `Preset` is a frozen dataclass tree: today its `data` section (what the generate stage makes: the
training shards and every test set of igsm-spec.md C.3) and, for the depth x width sweep, the `grid` of
model shapes. Later stages add their own sections as further keyword-only fields with defaults (e.g.
`model: ModelConfig`, `train: TrainConfig`, `evaluate`, `probe`), so presets written today keep working.

Overrides are OLMo-core style dotlists, `data.train_shards=3`, `data.family.max_op=5`, `grid=GPT2-2-2,GPT2-4-4`:
each key is looked up in the dataclass tree, each value parsed by the field's annotated type (int, float,
bool, str, `X | None` with `none`, tuples as comma lists or JSON lists; a `Family` field also takes a
family name: `data.family=hard`), and the changed tree is rebuilt so every `__post_init__` check runs.
`resolve` therefore fails *before any work* with a one-line `PresetError` naming the key.

Presets (paper numbers from igsm-spec.md C.3, D; sizes of the training data are modest on purpose: the
paper generates training data online, ~120 M problems per model, which the `train` stage will stream):

- `tiny`: a CPU demo family (max_op 4, ip <= 6) with OOD ops 5 and 6, 2 x 2000 training problems, 200 per test set,
  plus "test_seen" (fresh problems of the training templates: the family is too small for its template split
  to be typical);
- `med-pq`, `med-qp`, `hard-pq`, `hard-qp`: the paper's families and formats, 4096 problems per test cell;
- `grid-tiny`, `grid-size1`, `grid-size2`: the depth x width grids (model shapes `GPT2-l-h`; the sweep issue
  fills in how they train).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field

from physlm.igsm.config import HARD, MED, OOD_OPS, ConfigError, Family, GenConfig
from physlm.igsm.config import family as named_family
from physlm.igsm.graph import LETTERS
from physlm.model import ModelConfig
from physlm.train import TrainConfig, TrainConfigError


class PresetError(ConfigError):
    """An unknown preset, or an override with an unknown key, a wrong type or an out-of-range value."""


TINY = Family("tiny", max_op=4, max_edge=6)
"""A family a CPU model can learn in minutes: op <= 4, at most 6 instance parameters."""


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The datasets of a study: training shards plus the test sets of spec C.3, all from one family."""

    family: Family = MED
    """Difficulty family (med, hard, or a custom one)."""
    format: str = "pq"
    """"pq" (question last) or "qp" (question first)."""
    seed: int = 0
    """Base seed; shard i of dataset D is seeded from (seed, D, i)."""
    train_shards: int = 4
    """Number of training shards."""
    problems_per_shard: int = 2000
    """Problems per training shard; test sets are cut into shards of at most this size too."""
    test_problems: int = 4096
    """Problems per test set (the paper: 4096 per accuracy cell)."""
    ood_ops: tuple[int, ...] | None = None
    """Out-of-distribution ops, one test set each; None: the paper's (OOD_OPS) for med/hard, none otherwise."""
    perm_level: int = 5
    """Sentence order of the problem text: 5 = full shuffle (the paper)."""
    bias: str = "code"
    """Backward-sort bias variant (spec E.2): "code" or "paper"."""
    childless: bool = True
    """Allow childless items (spec E.5)."""
    train_bins: int = 17
    """Template-hash bins (mod 23) below this are train, the rest test."""
    test_seen: bool = False
    """Also make "test_seen": fresh problems (their own seeds) of the training templates (hash < train_bins)
    and op law, in distribution in every respect. For families too small for the template split to be
    typical: in `tiny` every op-1 test template is a childless "= 0" query that training never shows."""
    online: bool = False
    """Train on fresh problems generated on the fly from the train dataset's config (as the paper did)
    instead of its shards (the shards are still written: they are the training distribution on record)."""
    processes: int | None = field(default=None, metadata={"hash": False})
    """How shards are computed, not what they are: 0 in the calling thread, N in a pool of N spawned
    processes, None one process per CPU core when there is more than one shard to make."""

    def __post_init__(self):
        for name in ("train_shards", "problems_per_shard", "test_problems"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name}: must be >= 1, got {getattr(self, name)}")
        if self.processes is not None and self.processes < 0:
            raise ConfigError(f"data.processes: must be >= 0 or none, got {self.processes}")
        if self.ood_ops is not None:
            object.__setattr__(self, "ood_ops", tuple(self.ood_ops))
        for op in self.ood_ops_resolved():
            if op <= self.family.max_op:
                raise ConfigError(f"data.ood_ops: {op} is not out of distribution (family "
                                  f"{self.family.name!r} trains on op <= {self.family.max_op})")
            reach = min(self.family.op_limit(), len(LETTERS))
            if op > reach:
                raise ConfigError(f"data.ood_ops: {op} is out of reach of family {self.family.name!r} "
                                  f"(max_edge={self.family.max_edge}: op <= {reach})")
        try:
            self.datasets()  # every GenConfig validates itself (format, bias, op reach, ...)
        except ConfigError as e:
            raise ConfigError(f"data.{e}") from None

    def ood_ops_resolved(self) -> tuple[int, ...]:
        if self.ood_ops is not None:
            return self.ood_ops
        return OOD_OPS.get(self.family.name, ()) if self.family in (MED, HARD) else ()

    def datasets(self) -> dict[str, tuple[GenConfig, int]]:
        """`{dataset name: (GenConfig, number of problems)}`: "train", then the test sets of spec C.3."""
        base = GenConfig(family=self.family, format=self.format, train_bins=self.train_bins,
                         perm_level=self.perm_level, bias=self.bias, childless=self.childless)
        top, ood = self.family.max_op, self.ood_ops_resolved()
        out = {
            "train": (base, self.train_shards * self.problems_per_shard),
            "test_id": (base.with_(split="test"), self.test_problems),
            **({"test_seen": (base, self.test_problems)} if self.test_seen else {}),
            f"test_op{top}": (base.with_(split="test", op=top), self.test_problems),
        }
        for k in ood:
            out[f"test_op{k}"] = (base.with_(split="test", op=k), self.test_problems)
        # Re-ask keeps the statement of an op=K problem; K = the largest OOD op (max_op without OOD ops).
        out["test_reask"] = (base.with_(split="test", op=max(ood, default=top), reask=True), self.test_problems)
        return out


@dataclass(frozen=True, kw_only=True)
class ModelSection:
    shape: str = "GPT2-12-12"
    """GPT2-l-h: l layers, h heads, width 64h (spec C.1)."""
    n_ctx: int = 768
    """Training context (spec C.2: 768 med, 1024 hard)."""
    rope_theta: float = 10000.0
    tokenizer: str = "whole"
    """Word-level tokenizer: item names as whole tokens ("whole") or word by word ("words")."""
    rotary_fraction: float = 1.0
    """Share of each head's dims rotated by RoPE (physlm.model.ModelConfig)."""
    canon: str = ""
    """Canon layer sites, a subset of "ABCD" (physlm/canon.py); "" = none."""
    canon_kernel: int = 4
    canon_residual: bool = True
    canon_init: str = "torch"
    """"torch" (Conv1d's default, as the Part 4.1 code), "normal" or "zero"."""

    def options(self) -> dict:
        """The ModelConfig fields this section sets besides the shape."""
        return dict(n_ctx=self.n_ctx, rope_theta=self.rope_theta, rotary_fraction=self.rotary_fraction,
                    canon=self.canon, canon_kernel=self.canon_kernel, canon_residual=self.canon_residual,
                    canon_init=self.canon_init)

    def __post_init__(self):
        try:
            ModelConfig.from_name(self.shape, **self.options())  # validates
        except ValueError as e:
            raise ConfigError(f"model.{e}" if str(e).split(":")[0] in self.options() else
                              f"model.shape/n_ctx/rope_theta: {e}") from None
        if self.tokenizer not in ("whole", "words"):
            raise ConfigError(f"model.tokenizer: must be 'whole' or 'words', got {self.tokenizer!r}")


@dataclass(frozen=True, kw_only=True)
class EvalSection:
    decodings: tuple[str, ...] = ("greedy", "beam4")
    """Decodings to run: "greedy" and/or "beam4" (the paper reports both)."""
    max_new_tokens: int = 1024
    limit: int = 0
    """Problems per test set to evaluate (0 = all)."""
    batch_size: int = field(default=32, metadata={"hash": False})

    def __post_init__(self):
        object.__setattr__(self, "decodings", tuple(self.decodings))
        bad = [d for d in self.decodings if d not in ("greedy", "beam4")]
        if bad or not self.decodings:
            raise ConfigError(f"evaluate.decodings: each must be 'greedy' or 'beam4', got {self.decodings}")
        if self.max_new_tokens < 1 or self.limit < 0 or self.batch_size < 1:
            raise ConfigError("evaluate.max_new_tokens/limit/batch_size: must be >= 1 / >= 0 / >= 1")


PROBE_TASKS = ("nece", "dep", "known", "value", "can_next", "nece_next")
"""The six V-probing tasks (physlm.igsm.labels.TASKS; spec C.5)."""
PROBE_BASELINES = ("random_init", "linear")


@dataclass(frozen=True, kw_only=True)
class ProbeSection:
    """The probe stage (spec C.5, C.7; E4-E6, E10): V-probes of the trained model on every task, with
    baselines, and the layer-wise nece probe."""

    tasks: tuple[str, ...] = PROBE_TASKS
    """Tasks to probe (each gets the V-probe and every baseline)."""
    steps: int = 1000
    """Optimizer steps per probe (spec C.5: 100,000)."""
    batch_size: int = 64
    """Sequences per probe step (spec C.5: 256 med / 128 hard); also the evaluation batch."""
    lr: float = 2e-3
    weight_decay: float = 0.01
    rank: int = 8
    """Rank of the input-embedding update."""
    train_problems: int = 1000
    """Probe training problems, the first of the "train" dataset (template hash < 17)."""
    test_problems: int = 200
    """Probe test problems, the first of "test_id" (template hash >= 17)."""
    samples_per_problem: int = 10
    balanced: bool = False
    """Balanced (half positive) TRAIN samples."""
    layers: tuple[int, ...] = ()
    """Extra activation sites (block indices) for the layer-wise nece V-probe (E10); the main probes read
    the final LayerNorm output (layer -1)."""
    baselines: tuple[str, ...] = PROBE_BASELINES
    """Baselines besides the V-probe of the trained model: "random_init", "linear" (majority is always
    reported)."""
    seed: int = 0
    """Seeds the probe samples, inits and batch order."""
    random_init_seed: int = 1
    """Seed of the randomly initialised model of the random_init baseline."""
    device: str = field(default="auto", metadata={"hash": False})
    """"auto" (cuda if available), "cpu", "cuda"."""

    def __post_init__(self):
        for name in ("tasks", "layers", "baselines"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [t for t in self.tasks if t not in PROBE_TASKS]
        if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"probe.tasks: distinct values among {PROBE_TASKS}, got {self.tasks}")
        bad = [b for b in self.baselines if b not in PROBE_BASELINES]
        if bad or len(set(self.baselines)) != len(self.baselines):
            raise ConfigError(f"probe.baselines: distinct values among {PROBE_BASELINES}, got {self.baselines}")
        for name in ("steps", "batch_size", "rank", "train_problems", "test_problems", "samples_per_problem"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"probe.{name}: must be an integer >= 1, got {v!r}")
        if not self.lr > 0:
            raise ConfigError(f"probe.lr: must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"probe.weight_decay: must be >= 0, got {self.weight_decay}")
        if any(not isinstance(x, int) or x < 0 for x in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"probe.layers: distinct block indices >= 0, got {self.layers}")
        if not self.device:
            raise ConfigError("probe.device: must be 'auto', 'cpu', 'cuda', ...")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """One study. New stages add sections here as keyword-only fields with defaults."""

    name: str
    """The preset's name (overrides do not change it; step hashes never include it)."""
    data: DataConfig = field(default_factory=DataConfig)
    """What the generate stage makes."""
    grid: tuple[str, ...] = ()
    """Model shapes "GPT2-l-h" (l layers, h heads, width 64h) of the depth x width sweep; empty: no sweep."""
    model: ModelSection = field(default_factory=lambda: ModelSection())
    """The model trained by the train stage (its vocab size comes from the tokenizer)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training hyper-parameters (physlm.train.TrainConfig; the paper's by default)."""
    evaluate: EvalSection = field(default_factory=lambda: EvalSection())
    """Decodings and limits of the evaluate stage."""
    probe: ProbeSection = field(default_factory=lambda: ProbeSection())
    """V-probing of the trained model (the probe stage)."""

    def __post_init__(self):
        object.__setattr__(self, "grid", tuple(self.grid))
        n_layers = int(self.model.shape.split("-")[1])
        if any(x >= n_layers for x in self.probe.layers):
            raise ConfigError(f"probe.layers: block indices must be < {n_layers} (model {self.model.shape}), "
                              f"got {self.probe.layers}")
        for shape in self.grid:
            parts = shape.split("-")
            if len(parts) != 3 or parts[0] != "GPT2" or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
                raise ConfigError(f"grid: model shape {shape!r} is not of the form GPT2-<layers>-<heads>")


# ---------------------------------------------------------------------------------------------------------
# The named presets

SIZE1 = ("GPT2-4-21", "GPT2-8-15", "GPT2-12-12", "GPT2-16-10", "GPT2-20-9")
SIZE2 = ("GPT2-4-30", "GPT2-8-21", "GPT2-12-17", "GPT2-16-15", "GPT2-20-13")
_TINY_DATA = DataConfig(family=TINY, ood_ops=(5, 6), train_shards=2, problems_per_shard=2000, test_problems=200,
                        online=True, test_seen=True)
_TINY_MODEL = ModelSection(shape="GPT2-2-2", n_ctx=256)
# Measured on fresh problems of the training templates (fully correct): 1,500 steps at lr 3e-3 18 %, 4e-3 14 %;
# at 6e-3 one run of two collapsed to one letter for every step (0 %), 1e-2 never stops a solution. 1,500
# steps on both cores (~6.5 min) fit the 15-minute run.
_TINY_TRAIN = TrainConfig(steps=1500, batch_size=16, lr=3e-3, warmup=100, weight_decay=0.05, loss_on="solution",
                          ckpt_every=250, log_every=50, progress=True)
_TINY_EVAL = EvalSection(decodings=("greedy",), max_new_tokens=160, limit=200)
# 200 steps at lr 1e-2 (measured: at 60 steps / 2e-3 every V-probe still predicted the majority class);
# layers: the E10 nece probe per block. ~5 min on 2 cores.
_TINY_PROBE = ProbeSection(steps=200, lr=1e-2, batch_size=16, train_problems=200, test_problems=100, layers=(0, 1))
# Spec C.5: 100k steps, lr 2e-3 linear decay, wd 0.01, batch 256 (med) / 128 (hard), rank 8; E10 per layer.
_PAPER_PROBE = {"med": ProbeSection(steps=100_000, batch_size=256, train_problems=20_000, test_problems=4096,
                                    layers=tuple(range(12))),
                "hard": ProbeSection(steps=100_000, batch_size=128, train_problems=20_000, test_problems=4096,
                                     layers=tuple(range(12)))}
# The paper's pretraining recipe (spec C.2): GPT2-12-12, AdamW (0.9, 0.98), lr 2e-3, 1000 warm-up steps,
# cosine to 1%, loss on every token; med: wd 0.05, batch 512, ctx 768, 100k steps; hard: wd 0.03, 256, 1024, 200k.
_PAPER = {"med": (ModelSection(shape="GPT2-12-12", n_ctx=768),
                  TrainConfig(steps=100_000, batch_size=512, weight_decay=0.05, loss_on="all")),
          "hard": (ModelSection(shape="GPT2-12-12", n_ctx=1024),
                   TrainConfig(steps=200_000, batch_size=256, weight_decay=0.03, loss_on="all"))}

PRESETS: dict[str, Preset] = {
    "tiny": Preset(name="tiny", data=_TINY_DATA, model=_TINY_MODEL, train=_TINY_TRAIN, evaluate=_TINY_EVAL,
                   probe=_TINY_PROBE),
    **{f"{fam.name}-{fmt}": Preset(name=f"{fam.name}-{fmt}", data=DataConfig(family=fam, format=fmt, online=True),
                                   model=_PAPER[fam.name][0], train=_PAPER[fam.name][1],
                                   probe=_PAPER_PROBE[fam.name])
       for fam in (MED, HARD) for fmt in ("pq", "qp")},
    "grid-tiny": Preset(name="grid-tiny", data=_TINY_DATA, model=_TINY_MODEL,
                        train=dataclasses.replace(_TINY_TRAIN, steps=300, ckpt_every=100),
                        evaluate=dataclasses.replace(_TINY_EVAL, limit=50),
                        probe=dataclasses.replace(_TINY_PROBE, layers=()),  # E10 comes from `tiny`; any depth
                        grid=("GPT2-2-2", "GPT2-2-4", "GPT2-4-2", "GPT2-4-4")),
    "grid-size1": Preset(name="grid-size1", data=DataConfig(family=MED, online=True), model=_PAPER["med"][0],
                         train=_PAPER["med"][1], grid=SIZE1),
    "grid-size2": Preset(name="grid-size2", data=DataConfig(family=MED, online=True), model=_PAPER["med"][0],
                         train=_PAPER["med"][1], grid=SIZE2),
}


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
    """`text` as a value of annotated type `tp`; PresetError naming `key` if it is not one."""
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
            raise PresetError(f"{key}: expected a family name (med, hard) or set its fields "
                              f"({key}.max_op=...), got {text!r}") from None
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise PresetError(f"{key}: expected true or false, got {text!r}")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise PresetError(f"{key}: expected {'an int' if tp is int else 'a float'}, got {text!r}") from None
    if tp is str:
        return text
    if origin is tuple:
        items = _split_list(text, key)
        return tuple(_parse(args[0], str(x), f"{key}[{i}]") for i, x in enumerate(items))
    raise PresetError(f"{key}: cannot be set from the command line (type {tp})")


def _split_list(text: str, key: str) -> list:
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise PresetError(f"{key}: expected a list like [1,2] or 1,2, got {text!r}") from None
        if not isinstance(items, list):
            raise PresetError(f"{key}: expected a list, got {text!r}")
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
    except TrainConfigError as e:
        raise ConfigError(f"{prefix}{e}") from None
    except ConfigError as e:  # Family says "family.max_op: ..."; the user's key is "data.family.max_op"
        msg, last = str(e), prefix.rstrip(".").rpartition(".")[2]
        if last and msg.startswith(last + ".") and not msg.startswith(prefix):
            raise ConfigError(prefix[: -len(last) - 1] + msg) from None
        raise


def apply(preset: Preset, overrides: list[str] | tuple[str, ...]) -> Preset:
    """`preset` with `key=value` overrides applied; PresetError on the first bad key or value.

    Every value is parsed first (so a type error names its key), then the tree is rebuilt once: overrides
    that only make sense together (`data.family.max_op=5 data.ood_ops=6`) do not fail halfway. A later
    override of the same key wins; `data.family=hard` replaces the family, `data.family.max_op=...` after
    it edits that one."""
    known = [k for k in _keys(Preset) if k != "name"]
    changes: dict = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PresetError(f"override {item!r}: expected key=value, e.g. data.train_shards=3")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(known)}"
            raise PresetError(f"unknown key {key!r}{hint}")
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
        raise PresetError(f"{e} (with overrides: {given})" if given else str(e)) from None


def resolve(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Preset:
    """The named preset with `overrides` applied, fully validated; PresetError (one line) otherwise."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise PresetError(f"unknown preset {name!r}{hint}; known: {', '.join(PRESETS)}")
    return apply(PRESETS[name], list(overrides or ()))
