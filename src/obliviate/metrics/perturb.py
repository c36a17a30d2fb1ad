"""Offline word-level text perturbation for the neighbourhood membership-inference attack.

No model and no network: a neighbour of a text is the text with a few words swapped with the next word,
replaced by another word from the same text, or deleted.  Whitespace (spaces, tabs, newlines) between
the remaining words is kept as it was.
"""

from __future__ import annotations

import re

import numpy as np

_SPLIT = re.compile(r"(\s+)")
_OPS = ("swap", "replace", "delete")
_MAX_ATTEMPTS = 8


def _split(text: str) -> tuple[list[str], list[str]]:
    """Split ``text`` into its words and the ``len(words) + 1`` gaps (leading, between, trailing)."""
    parts = _SPLIT.split(text)
    words, seps = parts[0::2], parts[1::2]
    leading = trailing = ""
    if words and words[0] == "" and seps:
        leading = seps.pop(0)
        words.pop(0)
    if words and words[-1] == "" and seps:
        trailing = seps.pop()
        words.pop()
    return words, [leading, *seps, trailing]


def _merge_gaps(before: str, after: str, at_start: bool, at_end: bool) -> str:
    """The single gap left when the word between ``before`` and ``after`` is deleted."""
    if at_start:
        return before
    if at_end:
        return after
    return after if after.count("\n") > before.count("\n") else before


def perturb_text(text: str, rng: np.random.Generator, fraction: float = 0.15) -> str:
    """Perturb ``round(fraction * n_words)`` word positions (at least one) of ``text``.

    Each chosen position is swapped with the next word (the previous one for the last word), replaced
    by a different word drawn from the same text, or deleted, chosen uniformly.  A text of fewer than two
    words is returned unchanged (there is nothing to swap with or draw from, and deleting would empty it).
    """
    if len(text.split()) < 2:
        return text
    words, gaps = _split(text)
    n_words = len(words)
    k = min(n_words, max(1, round(fraction * n_words)))
    positions = rng.choice(n_words, size=k, replace=False)
    pool = list(words)
    deleted = [False] * n_words
    for p in (int(x) for x in positions):
        op = _OPS[int(rng.integers(len(_OPS)))]
        if op == "swap":
            q = p + 1 if p + 1 < n_words else p - 1
            words[p], words[q] = words[q], words[p]
        elif op == "replace":
            candidates = [w for w in pool if w != words[p]]
            if candidates:
                words[p] = candidates[int(rng.integers(len(candidates)))]
            else:
                deleted[p] = True
        else:
            deleted[p] = True
    if all(deleted):  # never delete every word: keep the first one
        deleted[0] = False
    last_kept = max(i for i in range(n_words) if not deleted[i])
    out_words: list[str] = []
    out_gaps = [gaps[0]]
    for i, word in enumerate(words):
        if deleted[i]:
            out_gaps[-1] = _merge_gaps(out_gaps[-1], gaps[i + 1], not out_words, i > last_kept)
        else:
            out_words.append(word)
            out_gaps.append(gaps[i + 1])
    return out_gaps[0] + "".join(w + g for w, g in zip(out_words, out_gaps[1:], strict=True))


def _generator(seed: int, index: int) -> np.random.Generator:
    """Generator for text ``index``: depends only on ``(seed, index)``, not on the other texts."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def neighbours(texts: list[str], n: int, seed: int, fraction: float = 0.15) -> list[list[str]]:
    """``n`` perturbed versions of every text, deterministic for ``seed``.

    Each neighbour differs from its original where possible: an identical perturbation is retried a few
    times (a one-word text stays identical).  Text ``i`` uses a generator derived from ``(seed, i)``, so
    appending texts never changes the neighbours of earlier ones.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out: list[list[str]] = []
    for index, text in enumerate(texts):
        rng = _generator(seed, index)
        variants: list[str] = []
        for _ in range(n):
            candidate = text
            for _attempt in range(_MAX_ATTEMPTS):
                candidate = perturb_text(text, rng, fraction)
                if candidate != text:
                    break
            variants.append(candidate)
        out.append(variants)
    return out
