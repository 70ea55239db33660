"""Generator configuration: the difficulty family and the per-dataset knobs (igsm-spec.md A.9, D).

A ``Family`` fixes the difficulty knobs (train op bound, ip bound = max_edge, allowed depths and widths).
``GenConfig`` adds what one dataset needs on top: format (pq/qp), split (template-hash bins), forced op,
op law, sentence permutation, re-ask, the backward-sort bias variant, childless items and Part 2.2 retry
data. Both are frozen dataclasses validated in ``__post_init__`` with messages naming the field; their JSON
form (``dataclasses.asdict``) is what the step hash covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from physlm.igsm.graph import LETTERS
from physlm.igsm.vocab import N_ITEMS, N_SUBCATEGORIES

HASH_IF_SET = {"hash": "if_set"}
"""physlm.store.steps.HASH_IF_SET (spelt out: the generator does not import the pipeline): a knob added after the
paper's enters a step id only when set, so existing datasets keep their ids."""


class ConfigError(ValueError):
    """A configuration that is inconsistent or out of range; the message names the field."""


@dataclass(frozen=True)
class Family:
    name: str = "med"
    """Family name, recorded in every problem row ("med", "hard" or a custom name)."""
    max_op: int = 15
    """Training problems have op <= max_op (op ~ min of two U{1..max_op} for the paper's law)."""
    max_edge: int = 20
    """ip <= max_edge: the number of instance parameters (= structure edges = problem sentences)."""
    depths: tuple[int, ...] = (2, 3, 4)
    """Allowed structure depths d (layers); the paper's softmax over {2,3,4} is restricted to these."""
    widths: tuple[int, ...] = (2, 3, 4)
    """Allowed layer widths (items per layer); w0 <= w1 are drawn from the same restricted softmax."""
    subcategories: int = field(default=N_SUBCATEGORIES, metadata=HASH_IF_SET)
    """Sub-categories per category the world uses (its first ones); 5 = all, the paper's."""
    items: int = field(default=N_ITEMS, metadata=HASH_IF_SET)
    """Item names per sub-category the world uses (its first ones); 20 = all. Fewer names: each is seen more
    often in training, and the item -> category knowledge of abstract parameters is learnt sooner."""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"family.name: must be a non-empty identifier, got {self.name!r}")
        if not 1 <= self.max_op <= len(LETTERS):
            raise ConfigError(f"family.max_op: must be in 1..{len(LETTERS)}, got {self.max_op}")
        if self.max_edge < 2:
            raise ConfigError(f"family.max_edge: must be >= 2, got {self.max_edge}")
        if not self.depths or not set(self.depths) <= {2, 3, 4}:
            raise ConfigError(f"family.depths: must be a non-empty subset of (2, 3, 4), got {self.depths}")
        if not self.widths or not set(self.widths) <= {2, 3, 4}:
            raise ConfigError(f"family.widths: must be a non-empty subset of (2, 3, 4), got {self.widths}")
        if not any((d - 1) * w <= self.max_edge for d in self.depths for w in self.widths):
            raise ConfigError(
                f"family.max_edge: {self.max_edge} is smaller than the fewest edges any allowed shape needs "
                f"((d-1)*w for d in {self.depths}, w in {self.widths})"
            )
        if not 1 <= self.subcategories <= N_SUBCATEGORIES:
            raise ConfigError(f"family.subcategories: must be in 1..{N_SUBCATEGORIES}, got {self.subcategories}")
        if not max(self.widths) <= self.items <= N_ITEMS:
            raise ConfigError(
                f"family.items: must be in {max(self.widths)}..{N_ITEMS} (a layer holds up to "
                f"max(widths) = {max(self.widths)} distinct items), got {self.items}"
            )
        object.__setattr__(self, "depths", tuple(sorted(set(self.depths))))
        object.__setattr__(self, "widths", tuple(sorted(set(self.widths))))
        if self.max_op > self.op_limit():
            raise ConfigError(
                f"family.max_op: {self.max_op} is more than any graph with max_edge="
                f"{self.max_edge} can reach (at most {self.op_limit()})"
            )

    def op_limit(self) -> int:
        """An upper bound on the op of any problem of this family: E instance parameters with at most 3
        ops each, abstract parameters with sum(c - 1) <= E at one level and sum(2c - 1) <= 2E at each deeper
        level, plus one op per childless abstract parameter."""
        best = 0
        for d in self.depths:
            if (d - 1) * self.widths[0] > self.max_edge:
                continue
            w = self.widths[-1]
            e = min(self.max_edge, (d - 1) * w * w)
            best = max(best, 3 * e + e + 2 * e * max(d - 2, 0) + w * (d - 1) ** 2)
        return best


MED = Family("med", max_op=15, max_edge=20)
HARD = Family("hard", max_op=21, max_edge=28)
FAMILIES: dict[str, Family] = {"med": MED, "hard": HARD}
OOD_OPS: dict[str, tuple[int, ...]] = {"med": (20, 21, 22, 23), "hard": (28, 29, 30, 31, 32)}
"""The paper's out-of-distribution op values per family (spec C.3)."""


@dataclass(frozen=True)
class GenConfig:
    family: Family = field(default_factory=lambda: MED)
    format: str = "pq"
    """"pq": question after the problem statement; "qp": question first (spec A.6)."""
    split: str = "train"
    """"train" keeps template hash < train_bins, "test" keeps >= train_bins, "all" keeps every hash."""
    train_bins: int = 17
    """Hash bins (mod 23) below this are train (the paper: 17); the reference code's constants use 16."""
    op: int | None = None
    """Force every problem to this op (OOD test sets); None draws op from ``op_dist``."""
    op_dist: str = "light"
    """"light": op = min of two U{1..max_op} (the paper's training law); "uniform": U{1..max_op}."""
    op_min: int = 1
    """Restrict the op law to op >= op_min (building block of curricula: raise op_min/max_op over time)."""
    perm_level: int = 5
    """Sentence order: 0..4 local shuffle of a random topological order, 5 full shuffle (paper), 6 none."""
    reask: bool = False
    """Re-ask (spec A.11): keep the statement of an op-``op`` problem, ask a new parameter of G_d."""
    bias: str = "code"
    """Backward-sort bias (spec E.2): "code" (authors' code, made the paper's data) or "paper" (its text)."""
    childless: bool = True
    """Allow items without children (value-0 abstract parameters, spec A.4); False forbids them."""
    retry_rate: float = 0.0
    """Part 2.2 retry data (spec A.12): before each solution sentence, geometric number of wrong
    "Define X as BACK." sentences with this rate; 0 disables."""
    retry_weak: bool = False
    """With retry data: the fake error is a future necessary step ("weak" variant)."""

    def __post_init__(self) -> None:
        if isinstance(self.family, dict):  # built from JSON
            object.__setattr__(
                self,
                "family",
                Family(
                    **{**self.family, "depths": tuple(self.family["depths"]), "widths": tuple(self.family["widths"])}
                ),
            )
        if self.format not in ("pq", "qp"):
            raise ConfigError(f"format: must be 'pq' or 'qp', got {self.format!r}")
        if self.split not in ("train", "test", "all"):
            raise ConfigError(f"split: must be 'train', 'test' or 'all', got {self.split!r}")
        if not 1 <= self.train_bins <= 22:
            raise ConfigError(f"train_bins: must be in 1..22, got {self.train_bins}")
        if self.op is not None and not 1 <= self.op <= len(LETTERS):
            raise ConfigError(f"op: must be in 1..{len(LETTERS)} (one letter per step), got {self.op}")
        if self.op_dist not in ("light", "uniform"):
            raise ConfigError(f"op_dist: must be 'light' or 'uniform', got {self.op_dist!r}")
        if not 1 <= self.op_min <= self.family.max_op:
            raise ConfigError(f"op_min: must be in 1..family.max_op={self.family.max_op}, got {self.op_min}")
        if not 0 <= self.perm_level <= 6:
            raise ConfigError(f"perm_level: must be in 0..6, got {self.perm_level}")
        if self.op is not None and self.op > self.family.op_limit():
            raise ConfigError(
                f"op: {self.op} is out of reach of family {self.family.name!r} (max_edge="
                f"{self.family.max_edge}: at most {self.family.op_limit()})"
            )
        if self.reask and self.op is None:
            raise ConfigError("reask: needs a forced op (the op of the original problem), set op=K")
        if self.bias not in ("code", "paper"):
            raise ConfigError(f"bias: must be 'code' or 'paper', got {self.bias!r}")
        if not 0.0 <= self.retry_rate < 1.0:
            raise ConfigError(f"retry_rate: must be in [0, 1), got {self.retry_rate}")

    def bins(self) -> frozenset[int]:
        """Template-hash bins this dataset accepts."""
        if self.split == "train":
            return frozenset(range(self.train_bins))
        if self.split == "test":
            return frozenset(range(self.train_bins, 23))
        return frozenset(range(23))

    def with_(self, **changes) -> GenConfig:
        return replace(self, **changes)


def family(name: str) -> Family:
    """A named family ("med", "hard"); ConfigError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"family: unknown family {name!r}; known: {', '.join(FAMILIES)}") from None
