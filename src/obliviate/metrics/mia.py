"""Reference-free membership-inference scores per sequence. Higher always means "more likely a member"."""

from __future__ import annotations

import zlib

import numpy as np

from obliviate.metrics.teacher_forcing import TokenStats


def _lowest_fraction_mean(values: np.ndarray, fraction: float) -> float:
    count = max(1, int(len(values) * fraction))
    return float(np.sort(values)[:count].mean())


def mia_scores(stats: TokenStats, text: str, k: float = 0.2) -> dict[str, float]:
    """LOSS (negated mean NLL), zlib (negated NLL / zlib bits of the text), Min-K% and Min-K%++ (k = fraction)."""
    nll = float(-stats.target_logprob.mean())
    zlib_bytes = len(zlib.compress(text.encode("utf-8")))
    normalised = (stats.target_logprob - stats.expected_logprob) / np.maximum(stats.logprob_std, 1e-8)
    return {
        "mia_loss": -nll,
        "mia_zlib": -nll / zlib_bytes,
        "mia_mink": _lowest_fraction_mean(stats.target_logprob, k),
        "mia_minkpp": _lowest_fraction_mean(normalised, k),
    }
