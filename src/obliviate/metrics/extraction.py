"""Extraction metrics that need greedy generation: EL_n (Jang et al.) and ES, computed without redundant work.

Greedy decoding from prefix x_<=i agrees with teacher forcing as long as it reproduces the true tokens, so
  gen(i) = x_{i+1} + gen(i+1)   whenever argmax p(. | x_<=i) == x_{i+1}.
Only prefixes where the teacher-forced argmax MISSES the next token need real decoding, and their context
x_<=j is already in the KV cache of the teacher-forced pass: no prefix is ever re-encoded. All such decodes
run together, batched with the KV cache, each row joining the batch at its own prefix length. ES follows from
the argmax matches alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel

from obliviate.metrics.kv_cache import PreallocatedCache
from obliviate.metrics.teacher_forcing import TokenStats, predicted_tokens


@dataclass(frozen=True)
class DecodeJob:
    """Decode the continuation of x_<=prefix_len after the model's first (wrong) greedy token."""

    sequence: int  # row in the teacher-forced batch
    prefix_len: int  # j: the context is x_1..x_j
    first_token: int  # argmax p(. | x_<=j) != x_{j+1}
    total_len: int  # T: decode until the row is T tokens long


EsConvention = Literal["paper", "openunlearning"]


def extraction_strength(stats: TokenStats, convention: EsConvention = "paper", drop_last_token: bool = False) -> float:
    """Extraction strength from the greedy matches of one window (``drop_last_token``: without its last
    prediction, as OpenUnlearning).

    'paper': ES = 1 - k/T for the smallest prefix length k whose greedy continuation reproduces the rest of the
    T-token window (0 when the last prediction misses). 'openunlearning': ES = 1 - k/n over the n predicted tokens,
    k the first of them from which every prediction is right - but its search loop stops at k = n - 1, so a
    window whose last prediction misses scores 1/n, not 0 (kept, to match its numbers)."""
    matches = stats.matches[predicted_tokens(drop_last_token)]
    misses = np.flatnonzero(~matches)
    if convention == "openunlearning":
        n = len(matches)
        if n == 0:
            return 0.0
        first_of_correct_suffix = 0 if misses.size == 0 else min(int(misses[-1]) + 1, n - 1)
        return 1.0 - first_of_correct_suffix / n
    if not matches[-1]:
        return 0.0
    smallest_prefix = int(misses[-1]) + 2 if misses.size else 1  # matches[k-1] <=> prefix length k predicts x_{k+1}
    return 1.0 - smallest_prefix / (len(matches) + 1)


def prefixes_for(length: int, n: int, stride: int) -> list[int]:
    """Prefix lengths i with at least n suffix tokens (i = 1..T-n), every ``stride``-th."""
    return list(range(1, length - n + 1, stride))


def plan_jobs(stats: list[TokenStats], prefix_sets: list[list[int]]) -> list[DecodeJob]:
    """The decodes needed: for each used prefix, the first mismatch at or after it (deduplicated)."""
    jobs = []
    for row, (seq_stats, prefixes) in enumerate(zip(stats, prefix_sets)):
        misses = np.flatnonzero(~seq_stats.matches) + 1  # prefix lengths whose greedy token is wrong
        needed = set()
        for prefix in prefixes:
            position = np.searchsorted(misses, prefix)
            if position < misses.size:
                needed.add(int(misses[position]))
        length = len(seq_stats.tokens)
        for j in sorted(needed):
            jobs.append(DecodeJob(row, j, int(seq_stats.argmax[j - 1]), length))
    return jobs


@torch.no_grad()
def run_jobs(
    model: PreTrainedModel,
    cache: DynamicCache,
    jobs: list[DecodeJob],
    batch_size: int,
    progress=None,
) -> dict[tuple[int, int], np.ndarray]:
    """Greedy-decode every job from the teacher-forced cache; returns tokens generated after x_<=j (T-j).

    Jobs of the same total length are decoded together, ``batch_size`` rows at a time, in order of prefix length:
    consecutive jobs start at nearby columns, so a chunk is nearly full from its first steps on."""
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    by_length: dict[int, list[DecodeJob]] = {}
    for job in jobs:
        by_length.setdefault(job.total_len, []).append(job)
    results: dict[tuple[int, int], np.ndarray] = {}
    for total_len in sorted(by_length):
        group = sorted(by_length[total_len], key=lambda job: job.prefix_len)
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            for job, tokens in zip(chunk, _decode_staggered(model, layers, chunk, total_len)):
                results[(job.sequence, job.prefix_len)] = tokens
            if progress is not None:
                progress.update(len(chunk))
    return results


def _decode_staggered(model, layers, chunk: list[DecodeJob], total_len: int) -> list[np.ndarray]:
    """Greedy decoding of rows that all end at column ``total_len``; a row joins at its own prefix length.

    Row r holds its sequence's teacher-forced keys/values, which are exact for columns < j_r. At column c the
    rows with j_r <= c (a leading slice, as the chunk is sorted by j) read token c and write column c; columns
    >= j_r of a row are overwritten by its own decoding before it ever attends to them. Every active row has
    the same length, so the step needs neither padding nor an attention mask."""
    device = layers[0][0].device
    sequences = torch.tensor([job.sequence for job in chunk], device=device)
    buffers = [
        (keys[sequences, :, :total_len].clone(), values[sequences, :, :total_len].clone()) for keys, values in layers
    ]
    starts = np.array([job.prefix_len for job in chunk])
    cache = PreallocatedCache(buffers, int(starts[0]))
    tokens = torch.zeros((len(chunk), total_len), dtype=torch.long, device=device)  # tokens[r, c]: column c
    rows = torch.arange(len(chunk), device=device)
    tokens[rows, torch.as_tensor(starts, device=device)] = torch.tensor(
        [job.first_token for job in chunk], device=device
    )
    for column in range(int(starts[0]), total_len - 1):
        active = int(np.searchsorted(starts, column, side="right"))
        cache.set_window(active, column)
        logits = model(
            input_ids=tokens[:active, column : column + 1],
            position_ids=torch.full((active, 1), column, device=device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        tokens[:active, column + 1] = logits[:, -1].argmax(dim=-1)
    out = tokens.cpu().numpy()
    return [out[row, job.prefix_len :] for row, job in enumerate(chunk)]


def greedy_continuation(stats: TokenStats, prefix: int, decoded: dict[int, np.ndarray]) -> np.ndarray:
    """gen(prefix): the true tokens up to the first mismatch j >= prefix, then the decoded tokens from j."""
    misses = np.flatnonzero(~stats.matches[prefix - 1 :])
    if misses.size == 0:
        return stats.tokens[prefix:]
    j = prefix + int(misses[0])
    return np.concatenate([stats.tokens[prefix:j], decoded[j]])


def ngram_overlap(generated: np.ndarray, truth: np.ndarray, n: int) -> float:
    """Share of the true suffix's n-grams matched by generated n-grams (Jang et al.'s per-prefix EL term)."""
    true_grams = [tuple(truth[i : i + n]) for i in range(len(truth) - n + 1)]
    if not true_grams:
        return 0.0
    vocabulary = set(true_grams)
    hits = sum(tuple(generated[i : i + n]) in vocabulary for i in range(len(generated) - n + 1))
    return hits / len(true_grams)


def extraction_likelihood(stats: TokenStats, decoded: dict[int, np.ndarray], n: int, stride: int = 1) -> float:
    """EL_n: mean n-gram overlap of greedy continuations over prefixes with >= n suffix tokens."""
    prefixes = prefixes_for(len(stats.tokens), n, stride)
    if not prefixes:
        return float("nan")
    total = 0.0
    for prefix in prefixes:
        generated = greedy_continuation(stats, prefix, decoded)
        total += ngram_overlap(generated, stats.tokens[prefix:], n)
    return total / len(prefixes)
