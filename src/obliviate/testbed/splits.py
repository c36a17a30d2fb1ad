"""Choose forget, held-out and filler sequences of exactly T tokens from a text source."""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerBase

from obliviate.data import Sequence, SequenceSet
from obliviate.errors import DataError


def select_splits(
    tokenizer: PreTrainedTokenizerBase,
    source: SequenceSet,
    sizes: dict[str, int],
    tokens: int,
    seed: int,
) -> dict[str, SequenceSet]:
    """Shuffle ``source`` with ``seed`` and fill each split (in ``sizes`` order) with T-token windows.

    A window's text is the decoded first T tokens of a document; it is kept only when it encodes back to the
    same T tokens, so training and scoring see exactly the same sequence."""
    needed = sum(sizes.values())
    order = np.random.default_rng(seed).permutation(len(source))
    chosen: list[Sequence] = []
    for index in order:
        item = source.items[index]
        window = tokenizer(item.text, add_special_tokens=False)["input_ids"][:tokens]
        if len(window) < tokens:
            continue
        text = tokenizer.decode(window)
        if tokenizer(text, add_special_tokens=False)["input_ids"] != window:
            continue
        chosen.append(Sequence(id=item.id, text=text))
        if len(chosen) == needed:
            break
    if len(chosen) < needed:
        raise DataError(
            f"{source.name}: only {len(chosen)} documents have {tokens} tokens; {needed} are needed "
            f"({', '.join(f'{k}={v}' for k, v in sizes.items())})"
        )
    splits, start = {}, 0
    for name, size in sizes.items():
        if size:
            splits[name] = SequenceSet(name=name, items=tuple(chosen[start : start + size]))
        start += size
    return splits


def repetition_schedule(count: int, low: int, high: int, seed: int) -> list[int]:
    """Repetition counts spread evenly from ``low`` to ``high``, assigned to sequences in a seeded order."""
    if high < low:
        raise DataError(f"max_repeats ({high}) must be >= min_repeats ({low})")
    spread = np.rint(np.linspace(low, high, count)).astype(int)
    return [int(r) for r in np.random.default_rng(seed + 1).permutation(spread)]


def injection_order(forget: list[list[int]], repeats: list[int], filler: list[list[int]], seed: int):
    """The training stream: each forget window ``repeats[i]`` times plus each filler window once, shuffled."""
    stream = [w for w, r in zip(forget, repeats) for _ in range(r)] + list(filler)
    order = np.random.default_rng(seed + 2).permutation(len(stream))
    return [stream[i] for i in order]
