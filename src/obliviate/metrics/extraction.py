"""Extraction metrics that need greedy generation: EL_n (Jang et al.) and ES, computed without redundant work.

Greedy decoding from prefix x_<=i agrees with teacher forcing as long as it reproduces the true tokens, so
  gen(i) = x_{i+1} + gen(i+1)   whenever argmax p(. | x_<=i) == x_{i+1}.
Only prefixes where the teacher-forced argmax MISSES the next token need real decoding, and their context
x_<=j is already in the KV cache of the teacher-forced pass: no prefix is ever re-encoded. All such decodes
run together, batched and left-padded, with the KV cache. ES follows from the argmax matches alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel

from obliviate.metrics.kv_cache import preallocated_cache
from obliviate.metrics.teacher_forcing import TokenStats


@dataclass(frozen=True)
class DecodeJob:
    """Decode the continuation of x_<=prefix_len after the model's first (wrong) greedy token."""

    sequence: int  # row in the teacher-forced batch
    prefix_len: int  # j: the context is x_1..x_j
    first_token: int  # argmax p(. | x_<=j) != x_{j+1}
    total_len: int  # T: decode until the row is T tokens long


def extraction_strength(stats: TokenStats) -> float:
    """ES = 1 - k/T for the smallest prefix length k whose greedy continuation reproduces the whole suffix."""
    matches = stats.matches  # entry k-1 <=> prefix length k predicts x_{k+1}
    length = len(stats.tokens)
    if not matches[-1]:
        return 0.0
    misses = np.flatnonzero(~matches)
    smallest_prefix = int(misses[-1]) + 2 if misses.size else 1
    return 1.0 - smallest_prefix / length


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
    """Greedy-decode every job from the teacher-forced cache; returns tokens generated after x_<=j (T-j)."""
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    device = layers[0][0].device
    order = sorted(jobs, key=lambda job: job.total_len - job.prefix_len, reverse=True)
    results: dict[tuple[int, int], np.ndarray] = {}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        generated = _decode_chunk(model, layers, chunk, device)
        for job, tokens in zip(chunk, generated):
            results[(job.sequence, job.prefix_len)] = tokens
        if progress is not None:
            progress.update(len(chunk))
    return results


def _decode_chunk(model, layers, chunk: list[DecodeJob], device: torch.device) -> list[np.ndarray]:
    """Lock-step greedy decoding of left-padded rows; rows that are done are dropped from the batch."""
    rows = len(chunk)
    context = max(job.prefix_len for job in chunk)
    steps = max(job.total_len - job.prefix_len for job in chunk)  # tokens to produce, the first is known
    buffers = []
    for keys, values in layers:
        k = keys.new_zeros((rows, keys.shape[1], context + steps, keys.shape[3]))
        v = values.new_zeros((rows, values.shape[1], context + steps, values.shape[3]))
        for row, job in enumerate(chunk):  # left-pad each context into the chunk cache
            k[row, :, context - job.prefix_len : context] = keys[job.sequence, :, : job.prefix_len]
            v[row, :, context - job.prefix_len : context] = values[job.sequence, :, : job.prefix_len]
        buffers.append((k, v))
    chunk_cache = preallocated_cache(buffers, context)
    mask = torch.zeros((rows, context + steps), dtype=torch.long, device=device)
    for row, job in enumerate(chunk):
        mask[row, context - job.prefix_len : context] = 1
    positions = torch.tensor([job.prefix_len for job in chunk], device=device).unsqueeze(1)
    remaining = torch.tensor([job.total_len - job.prefix_len for job in chunk], device=device)
    token = torch.tensor([job.first_token for job in chunk], device=device).unsqueeze(1)
    out = torch.zeros((rows, steps), dtype=torch.long, device=device)
    out[:, 0] = token[:, 0]
    alive = torch.arange(rows, device=device)  # original row of each batch row
    for step in range(1, steps):
        keep = remaining[alive] > step
        if not keep.all() and (~keep).sum() * 8 >= len(alive):  # drop finished rows once they are 1/8
            chunk_cache.batch_select_indices(keep.nonzero().squeeze(1))
            alive, token, positions, mask = alive[keep], token[keep], positions[keep], mask[keep]
        mask[:, context + step - 1] = 1
        logits = model(
            input_ids=token,
            attention_mask=mask[:, : context + step],
            position_ids=positions + step - 1,
            past_key_values=chunk_cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        out[alive, step] = token[:, 0]
    out = out.cpu().numpy()
    return [out[row, : job.total_len - job.prefix_len] for row, job in enumerate(chunk)]


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
