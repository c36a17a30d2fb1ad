"""Slow, obviously-correct reference implementations (one ``generate`` call per prefix, as in the authors'
released code). Used by the tests and benchmarks to check the fast metrics; not for real work."""

from __future__ import annotations

import numpy as np
import torch
from transformers import GenerationConfig, PreTrainedModel

from obliviate.metrics.extraction import ngram_overlap, prefixes_for


def _greedy(model: PreTrainedModel, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    config = GenerationConfig(
        max_new_tokens=new_tokens, min_new_tokens=0, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    mask = torch.ones_like(prompt)
    out = model.generate(input_ids=prompt, attention_mask=mask, generation_config=config)
    return out[:, prompt.shape[1] :]


@torch.no_grad()
def naive_exact_memorization(model: PreTrainedModel, windows: torch.Tensor) -> np.ndarray:
    """MA for equal-length windows [N, T]: T-1 generate calls of one token each."""
    length = windows.shape[1]
    hits = torch.zeros(windows.shape[0], dtype=torch.float64)
    for prefix in range(1, length):
        predicted = _greedy(model, windows[:, :prefix], 1)[:, 0]
        hits += (predicted == windows[:, prefix]).double().cpu()
    return (hits / (length - 1)).numpy()


@torch.no_grad()
def naive_greedy_suffixes(model: PreTrainedModel, windows: torch.Tensor, prefixes: list[int]) -> dict:
    """For each prefix length i: the greedy continuation of T-i tokens, one generate call per prefix."""
    length = windows.shape[1]
    return {i: _greedy(model, windows[:, :i], length - i).cpu().numpy() for i in prefixes}


def naive_extraction_likelihood(model: PreTrainedModel, windows: torch.Tensor, n: int, stride: int = 1) -> np.ndarray:
    """EL_n for equal-length windows [N, T] (Jang et al.'s loop)."""
    prefixes = prefixes_for(windows.shape[1], n, stride)
    suffixes = naive_greedy_suffixes(model, windows, prefixes)
    truth = windows.cpu().numpy()
    totals = np.zeros(windows.shape[0])
    for i, generated in suffixes.items():
        for row in range(windows.shape[0]):
            totals[row] += ngram_overlap(generated[row], truth[row, i:], n)
    return totals / len(prefixes)


def naive_extraction_strength(model: PreTrainedModel, windows: torch.Tensor) -> np.ndarray:
    """ES for equal-length windows: smallest prefix whose greedy continuation is the exact suffix."""
    length = windows.shape[1]
    suffixes = naive_greedy_suffixes(model, windows, list(range(1, length)))
    truth = windows.cpu().numpy()
    strength = np.zeros(windows.shape[0])
    for row in range(windows.shape[0]):
        for i in range(1, length):
            if np.array_equal(suffixes[i][row], truth[row, i:]):
                strength[row] = 1.0 - i / length
                break
    return strength
