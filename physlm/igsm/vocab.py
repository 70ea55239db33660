"""The iGSM vocabulary ("world knowledge", igsm-spec.md A.1): 4 hierarchies x 4 categories x 5
sub-categories x 20 items. The 16 category names are the paper's; the sub-categories and item names are
our own and live in ``data/vocab.json``.
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from importlib import resources

from physlm.igsm.build import sample  # rng.sample, draw for draw, faster

HIERARCHIES: tuple[tuple[str, str, str, str], ...] = (
    ("District", "Supermarket", "Product", "Ingredient"),
    ("Zoo", "Enclosure", "Animal", "Bone"),
    ("School", "Classroom", "Backpack", "Stationery"),
    ("Ecosystems", "Creatures", "Organs", "Cells"),
)
"""Each hierarchy is an ordered chain of categories, top to bottom (names verbatim from the paper)."""

CATEGORIES: frozenset[str] = frozenset(c for h in HIERARCHIES for c in h)

N_SUBCATEGORIES = 5
"""Sub-categories per category."""

N_ITEMS = 20
"""Item names per sub-category."""


@dataclass(frozen=True)
class Vocabulary:
    """The loaded vocabulary: ``names[h][c][s]`` is the item tuple of sub-category ``s`` of category ``c`` of
    hierarchy ``h``; ``subcategory_names[h][c]`` the sub-category names of category ``c``."""

    names: tuple[tuple[tuple[tuple[str, ...], ...], ...], ...]
    subcategory_names: tuple[tuple[tuple[str, ...], ...], ...]
    _index: dict[str, tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {
            name: (h, c)
            for h, hier in enumerate(self.names)
            for c, cat in enumerate(hier)
            for sub in cat
            for name in sub
        }
        object.__setattr__(self, "_index", index)

    def items(self, h: int, c: int, s: int) -> tuple[str, ...]:
        """Item names of sub-category ``s`` of category ``c`` (index within the chain) of hierarchy ``h``."""
        return self.names[h][c][s]

    def subcategories(self, h: int, c: int) -> tuple[str, ...]:
        """Names of the sub-categories of category ``c`` of hierarchy ``h``, in file order."""
        return self.subcategory_names[h][c]

    def category_of(self, item_name: str) -> tuple[int, int] | None:
        """``(hierarchy index, category index)`` of an item name, or ``None`` if it is not in the vocabulary."""
        return self._index.get(item_name)

    def all_items(self) -> list[str]:
        """Every item name, in file order (hierarchy, category, sub-category, item)."""
        return [name for hier in self.names for cat in hier for sub in cat for name in sub]


def _parse(data: dict) -> Vocabulary:
    hierarchies = data["hierarchies"]
    if len(hierarchies) != len(HIERARCHIES):
        raise ValueError(f"vocab.json: expected {len(HIERARCHIES)} hierarchies, got {len(hierarchies)}")
    names, subnames = [], []
    for h, (hier, expected) in enumerate(zip(hierarchies, HIERARCHIES)):
        got = tuple(cat["name"] for cat in hier["categories"])
        if got != expected:
            raise ValueError(f"vocab.json: hierarchy {h} has categories {got}, expected {expected}")
        names.append(tuple(tuple(tuple(sub["items"]) for sub in cat["subcategories"]) for cat in hier["categories"]))
        subnames.append(tuple(tuple(sub["name"] for sub in cat["subcategories"]) for cat in hier["categories"]))
    return Vocabulary(names=tuple(names), subcategory_names=tuple(subnames))


@functools.cache
def load() -> Vocabulary:
    """Load (once, then cached) the packaged vocabulary ``physlm/igsm/data/vocab.json``."""
    text = resources.files("physlm.igsm").joinpath("data/vocab.json").read_text(encoding="utf-8")
    return _parse(json.loads(text))


def draw(
    rng: random.Random, d: int, sizes: list[int], subcategories: int = N_SUBCATEGORIES, items_per: int = N_ITEMS
) -> tuple[int, list[str], list[list[str]]]:
    """Draw the per-problem vocabulary (spec A.1): a hierarchy, ``d`` consecutive categories of it, and for
    layer ``i`` ``sizes[i]`` distinct items from one uniformly chosen sub-category.

    ``subcategories``/``items_per`` restrict the world to the first sub-categories of each category and
    their first items (a family knob: fewer names, each seen more often); the defaults are the whole
    vocabulary, and then the draws are exactly the spec's.

    Returns ``(hierarchy index, layer category names, layer item names)``. The rng calls are, in order:
    ``randrange(4)``, ``randrange(4 - d + 1)``, then per layer ``randrange(subcategories)`` and
    ``sample(items, size)``.
    """
    if not 1 <= d <= 4:
        raise ValueError(f"depth d must be in 1..4, got {d}")
    if len(sizes) != d:
        raise ValueError(f"need one layer size per layer: d={d} but {len(sizes)} sizes given")
    for i, size in enumerate(sizes):
        if not 1 <= size <= items_per:
            raise ValueError(f"layer {i} size must be in 1..{items_per}, got {size}")
    vocab = load()
    below = rng._randbelow  # randrange(n) is _randbelow(n)
    h = below(len(HIERARCHIES))
    start = below(4 - d + 1)
    layer_names = list(HIERARCHIES[h][start : start + d])
    items: list[list[str]] = []
    for i, size in enumerate(sizes):
        sub = below(subcategories)
        items.append(sample(rng, vocab.items(h, start + i, sub)[:items_per], size))
    return h, layer_names, items
