"""Turn texts into the fixed token windows that memorization is measured on, and pad them into batches."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.errors import DataError


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_tokens: int,
    ids: list[str] | None = None,
    min_tokens: int = 2,
) -> list[list[int]]:
    """Tokenize each text (no special tokens) and keep its first ``max_tokens`` tokens."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    windows = [list(tokens[:max_tokens]) for tokens in encoded]
    for index, window in enumerate(windows):
        if len(window) < min_tokens:
            name = ids[index] if ids else str(index)
            raise DataError(f"Sequence {name!r} has {len(window)} tokens; at least {min_tokens} are needed")
    return windows


def right_pad(windows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to one tensor; returns (input_ids, attention_mask). Causal models ignore the right padding."""
    longest = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for row, window in enumerate(windows):
        input_ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        mask[row, : len(window)] = 1
    return input_ids.to(device), mask.to(device)


def length_sorted_batches(windows: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of ``windows`` grouped into batches of similar length (less padding)."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]), reverse=True)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def length_groups(lengths: list[int], rows_overhead_tokens: int = 64) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length, longest first, chosen so that the padded tokens plus
    ``rows_overhead_tokens`` per extra group (the cost of one more forward pass) are fewest: a group of rows
    padded to its longest costs rows x longest. Exact (dynamic programming over the sorted lengths)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    best = [0.0] + [float("inf")] * len(order)  # best[j]: cost of grouping the j longest rows
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):  # group order[start:end], padded to lengths[order[start]]
            cost = best[start] + (end - start) * lengths[order[start]] + rows_overhead_tokens
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]
