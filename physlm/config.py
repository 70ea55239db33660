"""Every step's configuration: frozen dataclasses, a docstring under each field, validation in ``__post_init__``.

One config per step, and presets (physlm/presets.py) are built from these very classes, so no field is ever
copied by hand from a "section" into a step config:

    generate   DataConfig (a preset's data) -> one GenerateConfig per dataset (DataConfig.datasets())
    train      TrainStepConfig(model: ModelConfig, train: TrainConfig, tokenizer, online)
    evaluate   EvalConfig
    probe      ProbeConfig
    analyze    AnalyzeConfig
    sweep      SweepConfig

A config's JSON form is what its step's hash covers (physlm/store/steps.py): fields declared
``metadata={"hash": False}`` change how a result is made, not what it is, and stay out; fields declared
``metadata=HASH_IF_SET`` were added later and enter only when they differ from their default, so adding an
option moves no existing step id. Class names never enter a hash (renaming or moving a class keeps ids).

Bad values raise the one :class:`ConfigError`, whose message starts with the field's name relative to its
class ("steps: must be >= 1"); presets prefix the dotted path of the section ("train.steps: ...").

This module is a leaf: it imports no torch, no transformers, nothing of the pipeline, so that planning steps,
the CLI's checks and ``physlm sql`` stay light.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from physlm import tables
from physlm.igsm.config import HARD, HASH_IF_SET, MED, OOD_OPS, ConfigError, Family, GenConfig
from physlm.igsm.graph import LETTERS

__all__ = [
    "ConfigError",
    "HASH_IF_SET",
    "DataConfig",
    "GenerateConfig",
    "ModelConfig",
    "TrainConfig",
    "TrainStepConfig",
    "EvalConfig",
    "ProbeConfig",
    "AnalyzeConfig",
    "SweepConfig",
    "QUERIES",
    "PROBE_TASKS",
    "PROBE_BASELINES",
]


def _positive_ints(obj, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}: must be an integer >= 1, got {v!r}")


# ---------------------------------------------------------------------------------------------------------
# generate


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
    op_dist: str = field(default="light", metadata=HASH_IF_SET)
    """Op law of the training problems (and of test_id / test_seen, in distribution): "light", the paper's min of
    two U{1..max_op}; "uniform", U{1..max_op} (more of the long problems)."""
    retry_rate: float = field(default=0.0, metadata=HASH_IF_SET)
    """Part 2.2 retry data in the training set only (spec A.12): before each solution sentence, while a coin of
    this rate comes up, a wrong "Define X as BACK." for a parameter X that is not yet computable; 0 disables.
    The test sets keep clean solutions (the judge skips retry sentences in what a model writes)."""
    retry_weak: bool = field(default=False, metadata=HASH_IF_SET)
    """With retry data: the wrong step is a future necessary one (Part 2.2's "weak" variant)."""
    seen_problems: int = field(default=0, metadata=HASH_IF_SET)
    """Problems in "test_seen" and "test_reask_seen" (0: ``test_problems``): more where their figures matter."""
    test_seen: bool = False
    """Also make "test_seen": fresh problems (their own seeds) of the training templates (hash < train_bins)
    and op law, in distribution in every respect. For families too small for the template split to be
    typical: in `tiny` every op-1 test template is a childless "= 0" query that training never shows. With
    it, "test_reask_seen": re-asked problems (spec A.11) of the training templates, the statement of an op =
    max_op problem (the largest op trained on): what E7 needs of a model that does not reach the test
    templates (correct re-ask solutions with unnecessary steps)."""
    online: bool = False
    """Train on fresh problems generated on the fly from the train dataset's config (as the paper did)
    instead of its shards (the shards are still written: they are the training distribution on record)."""
    processes: int | None = field(default=None, metadata={"hash": False})
    """How shards are computed, not what they are: 0 in the calling thread, N in a pool of N spawned
    processes, None one process per CPU core when there is more than one shard to make."""
    block_shards: int = field(default=0, metadata={"hash": False})
    """On a fleet (flows/fleet.py): a dataset of more shards than this is made as blocks of this many shards,
    each a run of the `generate-block` deployment on any cpu worker; 0 = never (one machine makes it)."""

    def __post_init__(self):
        _positive_ints(self, ("train_shards", "problems_per_shard", "test_problems"))
        if self.seen_problems < 0:
            raise ConfigError(f"seen_problems: must be >= 0 (0: test_problems), got {self.seen_problems}")
        if self.processes is not None and self.processes < 0:
            raise ConfigError(f"processes: must be >= 0 or none, got {self.processes}")
        if self.block_shards < 0:
            raise ConfigError(f"block_shards: must be >= 0, got {self.block_shards}")
        if self.ood_ops is not None:
            object.__setattr__(self, "ood_ops", tuple(self.ood_ops))
        for op in self.ood_ops_resolved():
            if op <= self.family.max_op:
                raise ConfigError(
                    f"ood_ops: {op} is not out of distribution (family "
                    f"{self.family.name!r} trains on op <= {self.family.max_op})"
                )
            reach = min(self.family.op_limit(), len(LETTERS))
            if op > reach:
                raise ConfigError(
                    f"ood_ops: {op} is out of reach of family {self.family.name!r} "
                    f"(max_edge={self.family.max_edge}: op <= {reach})"
                )
        self.datasets()  # every GenConfig validates itself (format, bias, op reach, ...)

    def ood_ops_resolved(self) -> tuple[int, ...]:
        if self.ood_ops is not None:
            return self.ood_ops
        return OOD_OPS.get(self.family.name, ()) if self.family in (MED, HARD) else ()

    def datasets(self) -> dict[str, tuple[GenConfig, int]]:
        """`{dataset name: (GenConfig, number of problems)}`: "train", then the test sets of spec C.3 in the
        order of physlm.tables.test_set_order."""
        base = GenConfig(
            family=self.family,
            format=self.format,
            train_bins=self.train_bins,
            perm_level=self.perm_level,
            bias=self.bias,
            childless=self.childless,
        )
        law = base.with_(op_dist=self.op_dist)  # the op law: drawn-op sets only (a forced op ignores it)
        top, ood = self.family.max_op, self.ood_ops_resolved()
        seen = self.seen_problems or self.test_problems  # the size of each seen set
        out = {
            tables.TRAIN: (
                law.with_(retry_rate=self.retry_rate, retry_weak=self.retry_weak),
                self.train_shards * self.problems_per_shard,
            ),
            tables.TEST_ID: (law.with_(split="test"), self.test_problems),
            **({tables.TEST_SEEN: (law, seen)} if self.test_seen else {}),
            tables.test_op(top): (base.with_(split="test", op=top), self.test_problems),
        }
        for k in ood:
            out[tables.test_op(k)] = (base.with_(split="test", op=k), self.test_problems)
        # Re-ask keeps the statement of an op=K problem; K = the largest OOD op (max_op without OOD ops).
        out[tables.TEST_REASK] = (base.with_(split="test", op=max(ood, default=top), reask=True), self.test_problems)
        if self.test_seen:
            out[tables.TEST_REASK_SEEN] = (base.with_(op=top, reask=True), seen)
        return out


@dataclass(frozen=True)
class GenerateConfig:
    """One dataset's step: `count` problems of `gen`, in shards of `per_shard` (the last one may be smaller)."""

    dataset: str
    """Dataset name, e.g. "train", "test_op20"; also in every row and in the shard seeds."""
    gen: GenConfig
    """Generator knobs: family, format, split, forced op, reask, ..."""
    seed: int
    """Base seed of the preset."""
    count: int
    """Number of problems in the dataset."""
    per_shard: int
    """Problems per shard."""

    def __post_init__(self):
        if self.count < 1 or self.per_shard < 1:
            raise ConfigError(f"count/per_shard: must be >= 1 (dataset {self.dataset})")

    @property
    def n_shards(self) -> int:
        return -(-self.count // self.per_shard)

    def shard_size(self, shard: int) -> int:
        return min(self.per_shard, self.count - shard * self.per_shard)


# ---------------------------------------------------------------------------------------------------------
# train

CANON_PLACEMENTS = "ABCD"
"""Canon sites of a block (physlm/model/canon.py): A attention input, B q/k/v, C MLP input, D inside the MLP."""
CANON_INITS = ("torch", "normal", "zero")
"""Canon weight inits: Conv1d's default U(+-1/sqrt(k)) as the Part 4.1 code, N(0, init_std), or zero."""
_SHAPE = re.compile(r"GPT2-(\d+)-(\d+)(?:-hd(\d+))?")


def parse_shape(shape: str) -> dict:
    """``"GPT2-4-2"`` -> ``{"n_layer": 4, "n_head": 2, "head_dim": 64}`` (``-hdK``: head dim K)."""
    m = _SHAPE.fullmatch(shape)
    if not m:
        raise ConfigError(f"shape: expected 'GPT2-<layers>-<heads>', got {shape!r}")
    return {"n_layer": int(m[1]), "n_head": int(m[2]), "head_dim": int(m[3] or 64)}


@dataclass(frozen=True)
class ModelConfig:
    """GPT2-ℓ-h with rotary embeddings (spec C.1; physlm/model/gpt.py builds it)."""

    n_layer: int = 12
    """Transformer blocks (ℓ in GPT2-ℓ-h)."""
    n_head: int = 12
    """Attention heads (h in GPT2-ℓ-h)."""
    head_dim: int = 64
    """Dims per head; width = head_dim * n_head (64·h in the paper's grid)."""
    vocab_size: int = 50257
    """Embedding rows: the tokenizer's vocab size (a preset sets it from its tokenizer; 50257 = GPT-2 BPE)."""
    n_ctx: int = 768
    """Training context (spec C.2: 768 med, 1024 hard); RoPE itself extrapolates past it."""
    rope_theta: float = 10000.0
    """RoPE base (unspecified in the paper; the common default)."""
    dropout: float = 0.0
    """Attention and residual dropout; 0 as nothing is repeated in unlimited data (and 2x faster on CPU)."""
    tie_embeddings: bool = True
    """Share the token embedding with the LM head, as GPT-2 does."""
    activation: str = "gelu_pytorch_tanh"
    """MLP activation (a transformers ACT2FN name); GPT-2's tanh-GELU by default."""
    init_std: float = 0.02
    """Normal init std of every Linear/Embedding (GPT-2's)."""
    # Options added after the paper's model (HASH_IF_SET: at their defaults they enter no step id).
    rotary_fraction: float = field(default=1.0, metadata=HASH_IF_SET)
    """Share of each head's dims that RoPE rotates (1 = full, the paper's; GPT-NeoX's own default is 0.25)."""
    canon: str = field(default="", metadata=HASH_IF_SET)
    """Canon layer sites, a subset of "ABCD" in that order (physlm/model/canon.py); "" = none (the paper's)."""
    canon_kernel: int = field(default=4, metadata=HASH_IF_SET)
    """Canon convolution width: the current token and the k-1 before it."""
    canon_residual: bool = field(default=True, metadata=HASH_IF_SET)
    """Canon output = input + conv(input) (recommended for Transformers) or conv(input) alone."""
    canon_init: str = field(default="torch", metadata=HASH_IF_SET)
    """Canon weight init: "torch" (Conv1d's default, as the Part 4.1 code), "normal" (init_std) or "zero"."""

    def __post_init__(self) -> None:
        _positive_ints(self, ("n_layer", "n_head", "head_dim", "vocab_size", "n_ctx"))
        if self.head_dim % 2:
            raise ConfigError(f"head_dim: must be even for rotary embeddings, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.rope_theta <= 0:
            raise ConfigError(f"rope_theta: must be > 0, got {self.rope_theta}")
        rot = self.head_dim * self.rotary_fraction
        if not 0 < self.rotary_fraction <= 1 or rot != int(rot) or int(rot) % 2:
            raise ConfigError(
                f"rotary_fraction: must be in (0, 1] and rotate an even number of the "
                f"{self.head_dim} head dims, got {self.rotary_fraction}"
            )
        if self.canon and (
            any(p not in CANON_PLACEMENTS for p in self.canon) or list(self.canon) != sorted(set(self.canon))
        ):
            raise ConfigError(f"canon: a subset of {CANON_PLACEMENTS!r} in that order, e.g. 'AC', got {self.canon!r}")
        if not 1 <= self.canon_kernel <= 16:
            raise ConfigError(f"canon_kernel: must be in 1..16, got {self.canon_kernel}")
        if self.canon_init not in CANON_INITS:
            raise ConfigError(f"canon_init: must be one of {CANON_INITS}, got {self.canon_init!r}")

    @property
    def width(self) -> int:
        return self.head_dim * self.n_head

    @property
    def name(self) -> str:
        """``GPT2-ℓ-h`` (with the head dim appended when it is not the paper's 64)."""
        return f"GPT2-{self.n_layer}-{self.n_head}" + ("" if self.head_dim == 64 else f"-hd{self.head_dim}")

    @property
    def shape(self) -> str:
        """The shape string of the grids and of the `model.shape=` override: the same as `name`."""
        return self.name

    @classmethod
    def from_name(cls, name: str, **overrides) -> ModelConfig:
        """``ModelConfig.from_name("GPT2-12-12", vocab_size=1730)``; optional ``-hdK`` suffix for head dim K."""
        return cls(**{**parse_shape(name), **overrides})

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    # -------------------------------------------------------------- sizes
    def canon_params(self) -> int:
        """Canon weights: k per channel at each site of each block (A: d, B: 3d, C: d, D: 4d channels)."""
        widths = {"A": 1, "B": 3, "C": 1, "D": 4}
        return self.n_layer * self.canon_kernel * self.width * sum(widths[p] for p in self.canon)

    def non_embedding_params(self) -> int:
        """12d² + 13d per block (spec C.1 table) + the final LayerNorm's 2d (+ Canon weights, if any)."""
        d = self.width
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d + self.canon_params()

    def params(self) -> int:
        """All trainable parameters: blocks + token embedding (+ the LM head when untied)."""
        emb = self.vocab_size * self.width
        return self.non_embedding_params() + emb * (1 if self.tie_embeddings else 2)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (fwd + bwd = 3x fwd): 6·(block params + LM-head matmul) + the attention
        scores/values 12·ℓ·d·T (PaLM appendix B; nanoGPT's ``estimate_mfu``)."""
        t = self.n_ctx if seq_len is None else seq_len
        return 6 * (self.non_embedding_params() + self.vocab_size * self.width) + 12 * self.n_layer * self.width * t


def names_folder(ref: str) -> bool:
    """A ``train.pretrained`` value naming a folder (``./tiny``, ``~/x``, ``a/b``), not a shipped model's name."""
    return "/" in ref or ref.startswith((".", "~"))


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe (spec C.2 by default; physlm/model/train.py runs it)."""

    steps: int = 100_000
    """Optimizer steps (spec C.2: 100k med, 200k hard)."""
    batch_size: int = 512
    """Global batch in sequences (windows of n_ctx tokens) per optimizer step (spec C.2: 512 med, 256 hard)."""
    micro_batch_size: int = 0
    """Sequences per forward/backward on one rank; 0 = batch_size / world (no accumulation). The gradient is
    accumulated over batch_size / (micro_batch_size * world) micro-batches."""
    lr: float = 2e-3
    """Peak learning rate."""
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.05
    """Decoupled weight decay on 2-D weights (spec C.2: 0.05 med, 0.03 hard)."""
    warmup: int = 1000
    """Linear warm-up steps."""
    min_lr_ratio: float = 0.01
    """Cosine decay ends at this fraction of the peak LR (spec C.2: 0.01)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables); unspecified in the paper."""
    loss_on: str = "all"
    """"all": loss on every token (the paper); "solution": only on what the model answers at eval time."""
    seed: int = 0
    """Seeds init, data order / online problems and dropout."""
    ckpt_every: int = 1000
    """Checkpoint every this many steps (and always at the end)."""
    log_every: int = field(default=10, metadata={"hash": False})
    device: str = field(default="auto", metadata={"hash": False})
    """"auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", …"""
    compile: str = "auto"
    """torch.compile: "auto" (on CUDA only), "on" (the whole loss, dense LM head), "body" (the transformer blocks
    only, the LM head kept sparse: what pays on a CPU, where it fuses the elementwise work of Canon layers,
    ~30 s of compilation), "off"."""
    letter_targets: str = field(default="sampled", metadata=HASH_IF_SET)
    """The target at a solution's fresh letter ("Define X as ?"): "sampled", the one letter the generator drew;
    "expected", the cross-entropy's expectation over the generator's law, uniform over the letters not yet
    used (physlm/model/letters.py: the same optimum without the draw's noise)."""
    late_op_dist: str = field(default="", metadata=HASH_IF_SET)
    """An op curriculum (online data only): from step ``late_from * steps`` on, the training problems are drawn
    under this op law ("light": the paper's min of two draws, "uniform": more long problems) instead of the
    data's own; "" = the data's law throughout."""
    late_from: float = field(default=0.5, metadata=HASH_IF_SET)
    """Where the late op law starts, as a fraction of ``steps``."""
    recall_warmup: float = field(default=0.0, metadata=HASH_IF_SET)
    """An associative-recall warm-up (online data only): for the first ``recall_warmup * steps`` steps, each
    training problem is shown as its statement alone followed by a recall drill, one "Define X as v; so v = 14"
    per parameter the statement gives as a number, in random order (physlm/igsm/solution.py ``recall``): the
    two-name lookup that every solution's first steps need, many times per problem; 0 = none."""
    arith_weight: float = field(default=1.0, metadata=HASH_IF_SET)
    """Weight of the cross-entropy at a solution's arithmetic results, the number after "<number> <op> <number> ="
    (physlm/model/weights.py): the mod-23 tables; 1 = the plain loss."""
    plan_weight: float = field(default=1.0, metadata=HASH_IF_SET)
    """Weight of the cross-entropy at a solution's plan choices, the names after "Define" (which parameter to
    compute next; physlm/model/weights.py); 1 = the plain loss."""
    mtp: float = field(default=0.0, metadata=HASH_IF_SET)
    """Multi-token prediction: the weight of an auxiliary cross-entropy on the token after next, predicted from
    the final hidden state by a train-only head (physlm/model/mtp.py; not part of the saved model); 0 = none.
    Needs the sparse loss: compile "off", "body", or "auto" on a CPU (on a GPU "auto" compiles the whole loss)."""
    dtype: str = "auto"
    """Autocast dtype: "auto" (bf16 on CUDA, fp32 on CPU), "bf16", "fp32"."""
    progress: bool = field(default=False, metadata={"hash": False})
    """Show a tqdm progress bar (rank 0) when stderr is a terminal (log lines otherwise)."""
    num_threads: int = field(default=0, metadata={"hash": False})
    """CPU: torch intra-op threads (0 = torch's default). On a busy 2-core machine 1 can beat 2 by far
    (OpenMP threads spin-wait for a descheduled sibling); not hashed into results, only speed."""
    data_workers: int = field(default=0, metadata={"hash": False})
    """Online data: DataLoader processes generating the problems (0 = in the training process). The batches
    are the same whatever the number (physlm/model/data.py); a GPU needs several to stay fed."""

    pretrained: str = field(default="", metadata={"hash": False})
    """Install shipped weights instead of training: a folder of ``physlm/pretrained/`` by name ("tiny") or a local
    folder written by ``physlm export-model``, whose card must name this very train step (physlm/store/
    pretrained.py); "" = train. Not hashed: it changes how the step's output is made, not what it is."""

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        _positive_ints(self, ("steps", "batch_size", "ckpt_every", "log_every"))
        if self.micro_batch_size < 0 or (self.micro_batch_size and self.batch_size % self.micro_batch_size):
            raise ConfigError(
                f"micro_batch_size: must divide batch_size={self.batch_size}, got {self.micro_batch_size}"
            )
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"lr: need lr > 0 and min_lr_ratio in [0, 1], got {self.lr} / {self.min_lr_ratio}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas: need two values in [0, 1), got {self.betas}")
        if self.num_threads < 0 or self.data_workers < 0:
            raise ConfigError(f"num_threads/data_workers: must be >= 0, got {self.num_threads}/{self.data_workers}")
        if self.warmup < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("warmup/weight_decay/grad_clip: must be >= 0")
        if not 0 < self.late_from < 1:
            raise ConfigError(f"late_from: must be in (0, 1) (a fraction of steps), got {self.late_from}")
        if not 0 <= self.recall_warmup < 1:
            raise ConfigError(f"recall_warmup: must be in [0, 1) (a fraction of steps), got {self.recall_warmup}")
        if not (self.arith_weight > 0 and self.plan_weight > 0):
            raise ConfigError(f"arith_weight/plan_weight: must be > 0, got {self.arith_weight}/{self.plan_weight}")
        if not self.mtp >= 0 or (self.mtp > 0 and self.compile == "on"):
            raise ConfigError(
                f"mtp: must be >= 0, and > 0 needs the sparse loss (compile 'off', 'body' or 'auto' on a CPU), got "
                f"{self.mtp} with compile {self.compile!r}"
            )
        if names_folder(self.pretrained):  # a folder: kept as where it is, so it is found from anywhere
            object.__setattr__(self, "pretrained", os.path.abspath(os.path.expanduser(self.pretrained)))
        for name, allowed in (
            ("loss_on", ("solution", "all")),
            ("compile", ("auto", "on", "body", "off")),
            ("letter_targets", ("sampled", "expected")),
            ("late_op_dist", ("", "light", "uniform")),
            ("dtype", ("auto", "bf16", "fp32")),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: must be one of {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class TrainStepConfig:
    """The train step: the model (its vocab size from the tokenizer), the recipe, the tokenizer kind, and
    whether the data is online or the shards (a preset composes it from its own sections)."""

    model: ModelConfig
    train: TrainConfig
    tokenizer: str
    """Word-level tokenizer with item names as whole tokens ("whole") or split into words ("words")."""
    online: bool
    """Fresh problems every step from the train dataset's generator config (the paper) vs its shards."""


# ---------------------------------------------------------------------------------------------------------
# evaluate, probe, analyze, sweep


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """The evaluate step: greedy and/or beam decoding of every test set, each whole solution checked."""

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
            raise ConfigError(f"decodings: each must be 'greedy' or 'beam4', got {self.decodings}")
        if self.max_new_tokens < 1 or self.limit < 0 or self.batch_size < 1:
            raise ConfigError("max_new_tokens/limit/batch_size: must be >= 1 / >= 0 / >= 1")


PROBE_TASKS = ("nece", "dep", "known", "value", "can_next", "nece_next")
"""The six V-probing tasks (physlm.igsm.labels.TASKS; spec C.5)."""
PROBE_BASELINES = ("random_init", "linear")


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """The probe step (spec C.5, C.7; E4-E6, E10): V-probes of the trained model on every task, with
    baselines, and the layer-wise nece probe. Every probe it fits shares these settings; each one is a
    (task, layer) of them."""

    tasks: tuple[str, ...] = PROBE_TASKS
    """Tasks to probe (each gets the V-probe and every baseline)."""
    steps: int = 1000
    """Optimizer steps per probe (spec C.5: 100,000)."""
    batch_size: int = 64
    """Sequences per probe step (spec C.5: 256 med / 128 hard); also the evaluation batch."""
    lr: float = 2e-3
    """LR at step 0 of its linear decay to 0 (spec C.5); with ``warmup`` the ramp meets that line a little below it
    (tiny: 0.91 lr at step 27 of 300)."""
    weight_decay: float = 0.01
    """AdamW weight decay on the matrices (A, B, head weight), not on the head bias."""
    warmup: float = field(default=0.0, metadata=HASH_IF_SET)
    """Fraction of the steps with a linear LR warm-up, capped by the decay line; ``warmup * steps`` is rounded to the
    nearest whole step (Python's ``round``) and under 2 steps changes nothing (0: none, as spec C.5)."""
    rank: int = 8
    """Rank of the input-embedding update E + A·B (spec C.5: 8)."""
    train_problems: int = 1000
    """Probe training problems, the first of the "train" dataset (template hash < 17)."""
    test_problems: int = 200
    """Probe test problems, the first of each test set in ``test_sets``."""
    samples_per_problem: int = 10
    """Up to this many (position, parameter) samples per problem and task (spec App. E)."""
    balanced: bool = False
    """Balanced (half positive) TRAIN samples (for the skewed tasks dep, nece_next)."""
    layers: tuple[int, ...] = ()
    """Extra activation sites (block indices) for the layer-wise nece V-probe (E10); the main probes read
    the final LayerNorm output (layer -1)."""
    baselines: tuple[str, ...] = PROBE_BASELINES
    """Baselines besides the V-probe of the trained model: "random_init", "linear" (majority is always
    reported)."""
    test_sets: tuple[str, ...] = field(default=(tables.TEST_ID,), metadata=HASH_IF_SET)
    """Test sets every probe is scored on, each its own rows (``test_set``): "test_id" (the paper's unseen
    templates, hash >= 17) and "test_seen" (fresh problems of the training templates, with ``data.test_seen``:
    where a model that only solves its training templates can know what is probed)."""
    seed: int = 0
    """Seeds the probe samples, inits and batch order: runs are deterministic given it."""
    random_init_seed: int = 1
    """Seed of the randomly initialised model of the random_init baseline."""
    device: str = field(default="auto", metadata={"hash": False})
    """"auto" (cuda if available), "cpu", "cuda" (bf16 autocast on CUDA)."""
    processes: int | None = field(default=None, metadata={"hash": False})
    """How the probes are run, not what they give: 0 in the calling process, N in N spawned one-thread
    processes, None one per CPU core on a CPU with several cores (0 on a GPU). Spawned processes import the
    calling script again: a script that runs the stage needs Python's ``if __name__ == "__main__":`` guard (as
    for ``data.processes``), or 0 here."""
    compile: str = field(default="auto", metadata={"hash": False})
    """"auto": the V-probes' training steps run the models' blocks compiled (torch.compile, dynamic shapes;
    ``activations.compile_blocks``) where torch.compile can run: one compiled block and one site block serve every
    layer, both models and every batch shape, their elementwise work fused (a V-probe step of the tiny preset
    64 -> 54 ms on one thread against eager blocks with compiled Canon layers; 40-65 s of compilation per
    process on a fresh machine, ~8 s once torch's compile cache has them); "off": eager. Speed only: the same
    probes up to float rounding."""

    def __post_init__(self):
        if self.compile not in ("auto", "off"):
            raise ConfigError(f"compile: must be 'auto' or 'off', got {self.compile!r}")
        for name in ("tasks", "layers", "baselines", "test_sets"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        sets = (tables.TEST_ID, tables.TEST_SEEN)
        if (
            not self.test_sets
            or any(t not in sets for t in self.test_sets)
            or len(set(self.test_sets)) != len(self.test_sets)
        ):
            raise ConfigError(f"test_sets: distinct values among {sets}, got {self.test_sets}")
        bad = [t for t in self.tasks if t not in PROBE_TASKS]
        if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks: distinct values among {PROBE_TASKS}, got {self.tasks}")
        bad = [b for b in self.baselines if b not in PROBE_BASELINES]
        if bad or len(set(self.baselines)) != len(self.baselines):
            raise ConfigError(f"baselines: distinct values among {PROBE_BASELINES}, got {self.baselines}")
        _positive_ints(self, ("steps", "batch_size", "rank", "train_problems", "test_problems", "samples_per_problem"))
        if not self.lr > 0:
            raise ConfigError(f"lr: must be > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup: a fraction of the steps, >= 0 and < 1, got {self.warmup}")
        if any(not isinstance(x, int) or x < 0 for x in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"layers: distinct block indices >= 0, got {self.layers}")
        if not self.device:
            raise ConfigError("device: must be 'auto', 'cpu', 'cuda', ...")
        if self.processes is not None and (not isinstance(self.processes, int) or self.processes < 0):
            raise ConfigError(f"processes: must be None or an int >= 0, got {self.processes!r}")


QUERIES = (
    "accuracy_by_op",
    "unnecessary",
    "probe_accuracy",
    "probe_unnecessary",
    "probe_by_label",
    "error_unnecessary_plan",
    "error_not_ready",
    "depth_width",
    "layer_distance",
)
"""Canned queries (physlm/sql/queries/NAME.sql) in paper-figure order (E2, E3, E4, E5, E6, E7, E8, E9, E10)."""
EXTRA_QUERIES = ("training_curves",)
"""Canned queries that are no paper figure (the report's training curves); not run by the analyze step."""


@dataclass(frozen=True)
class AnalyzeConfig:
    """The analyze step: canned queries over the warehouse, each written as Parquet + markdown."""

    queries: tuple[str, ...] = QUERIES
    """Canned queries run (and files written), in figure order."""

    def __post_init__(self):
        unknown = [q for q in self.queries if q not in QUERIES]
        if unknown:
            raise ConfigError(f"queries: unknown {unknown}; known: {', '.join(QUERIES)}")


@dataclass(frozen=True)
class SweepConfig:
    """The sweep table step: a grid of model shapes x training seeds over one dataset."""

    grid: tuple[str, ...]
    """Model shapes, in the preset's order."""
    seeds: tuple[int, ...]
    """train.seed of each cell."""
    preset: str = field(default="", metadata={"hash": False})
    """The preset's name, for `sweep_id` only (step hashes never include it)."""
