"""The iGSM vocabulary ("world knowledge", igsm-spec.md A.1): 4 hierarchies x 4 categories x 5
sub-categories x 20 items. The 16 category names are the paper's; the sub-categories and item names are
our own and live in ``data/vocab.json``.
"""

from __future__ import annotations

HIERARCHIES: tuple[tuple[str, str, str, str], ...] = (
    ("District", "Supermarket", "Product", "Ingredient"),
    ("Zoo", "Enclosure", "Animal", "Bone"),
    ("School", "Classroom", "Backpack", "Stationery"),
    ("Ecosystems", "Creatures", "Organs", "Cells"),
)
"""Each hierarchy is an ordered chain of categories, top to bottom (names verbatim from the paper)."""

CATEGORIES: frozenset[str] = frozenset(c for h in HIERARCHIES for c in h)
