"""Reference-free membership-inference scores per sequence. Higher always means "more likely a member"
(OpenUnlearning signs its scores like a loss, the other way round: its values are these negated)."""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from obliviate.metrics.teacher_forcing import TokenStats, predicted_tokens

MinKppFloor = Literal["openunlearning", "authors"]
OPENUNLEARNING_VARIANCE_FLOOR = 1e-6  # OpenUnlearning: torch.clamp(sigma, min=1e-6), its sigma being the variance


def _lowest_fraction_mean(values: np.ndarray, fraction: float) -> float:
    count = max(1, int(len(values) * fraction))
    return float(np.sort(values)[:count].mean())


def min_k_plus_plus(
    stats: TokenStats, k: float = 0.2, keep=slice(None), floor: MinKppFloor = "openunlearning"
) -> float:
    """Min-K%++: the mean of the lowest fraction ``k`` of the token log-probabilities, each standardised by the
    mean and standard deviation of log p under the model's own predictive distribution (``keep``: the tokens
    that count). ``floor``: 'openunlearning' floors the variance at 1e-6 (the std at 1e-3); 'authors' divides
    by the std as it is, so a one-hot prediction gives an infinite score."""
    std = stats.logprob_std[keep]
    if floor == "openunlearning":
        std = np.sqrt(np.maximum(np.square(std), OPENUNLEARNING_VARIANCE_FLOOR))
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = (stats.target_logprob[keep] - stats.expected_logprob[keep]) / std
    return _lowest_fraction_mean(normalised, k)


def mia_scores(stats: TokenStats, text: str, k: float = 0.2, *, minkpp_floor: MinKppFloor = "openunlearning",
               drop_last_token: bool = False) -> dict[str, float]:  # fmt: skip
    """LOSS (negated mean NLL), zlib (negated NLL / zlib bytes of the text), Min-K% and Min-K%++ (k = fraction;
    ``drop_last_token``: these two skip the last prediction, as OpenUnlearning)."""
    nll = float(-stats.target_logprob.mean())
    zlib_bytes = len(zlib.compress(text.encode("utf-8")))
    keep = predicted_tokens(drop_last_token)
    return {
        "mia_loss": -nll,
        "mia_zlib": -nll / zlib_bytes,
        "mia_mink": _lowest_fraction_mean(stats.target_logprob[keep], k),
        "mia_minkpp": min_k_plus_plus(stats, k, keep, minkpp_floor),
    }
