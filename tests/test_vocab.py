"""Tests for the iGSM vocabulary (physlm/igsm/vocab.py and data/vocab.json, spec A.1)."""

from __future__ import annotations

import json
import random
import re
from importlib import resources

import pytest

from physlm.igsm import vocab
from physlm.igsm.vocab import CATEGORIES, HIERARCHIES, draw, load

FORBIDDEN_WORDS = {
    "and",
    "each",
    "of",
    "does",
    "have",
    "has",
    "equals",
    "more",
    "than",
    "times",
    "as",
    "much",
    "sum",
    "difference",
    "define",
    "so",
    "the",
    "number",
    "how",
    "many",
    "back",
}
NAME_RE = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*(?: [A-Za-z]+(?:-[A-Za-z]+)*){0,2}")


@pytest.fixture(scope="module")
def raw() -> dict:
    text = resources.files("physlm.igsm").joinpath("data/vocab.json").read_text(encoding="utf-8")
    return json.loads(text)


def _categories(raw: dict):
    for h, hier in enumerate(raw["hierarchies"]):
        for c, cat in enumerate(hier["categories"]):
            yield h, c, cat


def test_shape_and_category_names(raw):
    assert [[cat["name"] for cat in hier["categories"]] for hier in raw["hierarchies"]] == [
        list(h) for h in HIERARCHIES
    ]
    for _, _, cat in _categories(raw):
        subs = cat["subcategories"]
        assert len(subs) == 5, cat["name"]
        names = [s["name"] for s in subs]
        assert len(set(names)) == 5, names
        for s in subs:
            assert re.fullmatch(r"[A-Za-z]+(?: [A-Za-z]+)*", s["name"]), s["name"]
            assert len(s["items"]) == 20, (cat["name"], s["name"])
            assert all(isinstance(x, str) for x in s["items"])
    assert len(load().all_items()) == 1600


def test_item_charset_words_and_forbidden(raw):
    lowered_categories = {c.lower() for c in CATEGORIES}
    for _, _, cat in _categories(raw):
        for s in cat["subcategories"]:
            for name in s["items"]:
                assert NAME_RE.fullmatch(name), f"bad charset/shape: {name!r}"
                words = name.split(" ")
                assert 1 <= len(words) <= 3, name
                for w in words:
                    for part in w.split("-"):
                        assert len(part) >= 2, f"short word in {name!r}"
                    assert w.lower() not in FORBIDDEN_WORDS, f"forbidden word in {name!r}"
                    assert w[0].isupper(), f"not Title Case: {name!r}"
                assert name.lower() not in lowered_categories, name
                assert words[0].lower() not in lowered_categories, f"starts with a category: {name!r}"
                assert words[-1].lower() not in lowered_categories, f"ends with a category: {name!r}"


def test_items_globally_unique():
    items = load().all_items()
    assert len(set(items)) == len(items)
    assert len({x.lower() for x in items}) == len(items)


def test_no_whole_word_prefix_or_suffix_within_category(raw):
    for _, _, cat in _categories(raw):
        names = [x for s in cat["subcategories"] for x in s["items"]]
        words = {n: n.lower().split() for n in names}
        for a in names:
            for b in names:
                if a == b:
                    continue
                wa, wb = words[a], words[b]
                if len(wa) < len(wb):
                    assert wb[: len(wa)] != wa, f"{a!r} is a prefix of {b!r} ({cat['name']})"
                    assert wb[-len(wa) :] != wa, f"{a!r} is a suffix of {b!r} ({cat['name']})"


def test_no_item_contains_another_item_of_its_hierarchy():
    # Stricter than the per-category rule: one problem draws consecutive categories of one hierarchy, so
    # within a hierarchy no item name may occur (as whole words) inside another item name.
    v = load()
    items = v.all_items()
    for a in items:
        pattern = re.compile(r"(?:^| )" + re.escape(a) + r"(?: |$)")
        for b in items:
            if a != b and v.category_of(a)[0] == v.category_of(b)[0]:
                assert not pattern.search(b), f"{a!r} occurs inside {b!r}"


def test_load_round_trips(raw):
    v = load()
    assert load() is v  # cached
    for h, c, cat in _categories(raw):
        assert v.subcategories(h, c) == tuple(s["name"] for s in cat["subcategories"])
        for s, sub in enumerate(cat["subcategories"]):
            assert v.items(h, c, s) == tuple(sub["items"])
    assert v.all_items() == [x for _, _, cat in _categories(raw) for s in cat["subcategories"] for x in s["items"]]


def test_category_of_finds_every_item():
    v = load()
    for h, hier in enumerate(HIERARCHIES):
        for c in range(len(hier)):
            for s in range(5):
                for name in v.items(h, c, s):
                    assert v.category_of(name) == (h, c)
    assert v.category_of("No Such Item") is None
    assert v.category_of("District") is None


@pytest.mark.parametrize("seed", range(50))
def test_draw_deterministic_and_well_formed(seed):
    d = 1 + seed % 4
    sizes = [1 + (seed * 7 + 3 * i) % 20 for i in range(d)]
    a = draw(random.Random(seed), d, sizes)
    b = draw(random.Random(seed), d, sizes)
    assert a == b
    h, layer_names, items = a
    assert 0 <= h < 4
    assert len(layer_names) == d and len(items) == d
    hier = HIERARCHIES[h]
    start = hier.index(layer_names[0])
    assert tuple(layer_names) == hier[start : start + d]
    v = load()
    for i, (names, size) in enumerate(zip(items, sizes)):
        assert len(names) == size and len(set(names)) == size
        subs = [s for s in range(5) if set(names) <= set(v.items(h, start + i, s))]
        assert len(subs) == 1  # all from one sub-category


def test_draw_follows_spec_rng_sequence():
    seed, d, sizes = 12345, 3, [2, 4, 3]
    rng = random.Random(seed)
    h = rng.randrange(4)
    start = rng.randrange(4 - d + 1)
    v = load()
    expected = [rng.sample(v.items(h, start + i, rng.randrange(5)), sizes[i]) for i in range(d)]
    got = draw(random.Random(seed), d, sizes)
    assert got == (h, list(HIERARCHIES[h][start : start + d]), expected)
    # and the caller's rng is left in the same state as the reference sequence
    r2 = random.Random(seed)
    draw(r2, d, sizes)
    assert r2.random() == rng.random()


def test_draw_covers_all_hierarchies_and_subcategories():
    rng = random.Random(0)
    hs, subs = set(), set()
    v = load()
    for _ in range(2000):
        h, layer_names, items = draw(rng, 1, [1])
        hs.add(h)
        c = HIERARCHIES[h].index(layer_names[0])
        subs.add((h, c, next(s for s in range(5) if items[0][0] in v.items(h, c, s))))
    assert hs == {0, 1, 2, 3}
    assert len(subs) == 80


@pytest.mark.parametrize(
    "d,sizes",
    [(0, []), (5, [1, 1, 1, 1, 1]), (2, [1, 21]), (2, [0, 3]), (3, [2, 2]), (1, [-1])],
)
def test_draw_rejects_bad_arguments(d, sizes):
    with pytest.raises(ValueError):
        draw(random.Random(0), d, sizes)


def test_module_constants():
    assert vocab.N_SUBCATEGORIES == 5 and vocab.N_ITEMS == 20
