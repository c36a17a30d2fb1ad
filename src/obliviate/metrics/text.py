"""Text statistics of generated replies."""

from __future__ import annotations

import re


def repeats_itself(text: str) -> bool:
    """A reply that loops: at least 6 word trigrams, fewer than half of them distinct."""
    words = re.findall(r"\w+", text.lower())
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(trigrams) >= 6 and len(set(trigrams)) < 0.5 * len(trigrams)
