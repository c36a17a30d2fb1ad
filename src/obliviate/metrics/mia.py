"""Reference-free membership-inference scores per sequence. Higher always means "more likely a member"."""

from __future__ import annotations

import zlib

import numpy as np

from obliviate.metrics.teacher_forcing import TokenStats


def _lowest_fraction_mean(values: np.ndarray, fraction: float) -> float:
    count = max(1, int(len(values) * fraction))
    return float(np.sort(values)[:count].mean())


def min_k_plus_plus(stats: TokenStats, k: float = 0.2, keep=slice(None)) -> float:
    """Min-K%++: the mean of the lowest fraction ``k`` of the token log-probabilities, each standardised by the
    mean and standard deviation of log p under the model's own predictive distribution (``keep``: the tokens
    that count)."""
    normalised = (stats.target_logprob[keep] - stats.expected_logprob[keep]) / np.maximum(stats.logprob_std[keep], 1e-8)
    return _lowest_fraction_mean(normalised, k)


def mia_scores(stats: TokenStats, text: str, k: float = 0.2) -> dict[str, float]:
    """LOSS (negated mean NLL), zlib (negated NLL / zlib bits of the text), Min-K% and Min-K%++ (k = fraction)."""
    nll = float(-stats.target_logprob.mean())
    zlib_bytes = len(zlib.compress(text.encode("utf-8")))
    return {
        "mia_loss": -nll,
        "mia_zlib": -nll / zlib_bytes,
        "mia_mink": _lowest_fraction_mean(stats.target_logprob, k),
        "mia_minkpp": min_k_plus_plus(stats, k),
    }
