"""The offline word-level neighbourhood perturbation."""

from __future__ import annotations

import numpy as np

from obliviate.metrics.perturb import neighbours, perturb_text

TEXT = " ".join(f"w{i}" for i in range(100))
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "alpha beta gamma\ndelta epsilon zeta\neta theta",
    TEXT,
]


def _word_edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_deterministic_for_a_seed() -> None:
    assert neighbours(TEXTS, n=4, seed=7) == neighbours(TEXTS, n=4, seed=7)
    assert neighbours(TEXTS, n=4, seed=7) != neighbours(TEXTS, n=4, seed=8)


def test_neighbours_shape_and_differ_from_original() -> None:
    out = neighbours(TEXTS, n=5, seed=0)
    assert len(out) == len(TEXTS)
    for text, variants in zip(TEXTS, out, strict=True):
        assert len(variants) == 5
        assert all(v != text for v in variants)
        assert all(v.strip() for v in variants)


def test_short_texts() -> None:
    assert neighbours(["single"], n=3, seed=1) == [["single", "single", "single"]]
    assert neighbours([""], n=2, seed=1) == [["", ""]]
    out = neighbours(["two words"], n=3, seed=1)[0]
    assert all(v != "two words" and v for v in out)
    assert neighbours(TEXTS, n=0, seed=1) == [[], [], []]


def test_adding_texts_does_not_change_earlier_neighbours() -> None:
    base = neighbours(TEXTS[:2], n=3, seed=11)
    more = neighbours([*TEXTS[:2], "some other text entirely here"], n=3, seed=11)
    assert more[:2] == base
    # and a text's neighbours depend on its index, not on which texts come after it
    assert neighbours(TEXTS, n=3, seed=11)[:2] == base


def test_number_of_changes_is_about_the_fraction() -> None:
    words = TEXT.split()
    for fraction, k in ((0.15, 15), (0.05, 5)):
        rng = np.random.default_rng(3)
        for _ in range(20):
            out = perturb_text(TEXT, rng, fraction=fraction).split()
            dist = _word_edit_distance(words, out)
            # each operation edits at most two word positions (a swap), a deletion or replacement one
            assert 1 <= dist <= 2 * k
            assert len(out) >= len(words) - k
            assert set(out) <= set(words)  # replacements come from the same text
    rng = np.random.default_rng(3)
    small = np.mean([_word_edit_distance(words, perturb_text(TEXT, rng, 0.05).split()) for _ in range(20)])
    large = np.mean([_word_edit_distance(words, perturb_text(TEXT, rng, 0.3).split()) for _ in range(20)])
    assert large > small


def test_whitespace_structure_is_kept() -> None:
    text = "a b c\nd e f\ng h i"
    rng = np.random.default_rng(5)
    for _ in range(30):
        out = perturb_text(text, rng, fraction=0.15)
        assert out.count("\n") == 2
        assert not out.startswith((" ", "\n")) and not out.endswith((" ", "\n"))
    assert perturb_text(" lead and trail\n", rng, 0.5).startswith(" ")
    assert perturb_text(" lead and trail\n", rng, 0.5).endswith("\n")


def test_heavy_deletion_leaves_no_dangling_separators() -> None:
    rng = np.random.default_rng(9)
    for _ in range(200):
        out = perturb_text("a b c d", rng, fraction=1.0)
        assert out and out == " ".join(out.split())
