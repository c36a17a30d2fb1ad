"""Per-step sample selection and stop rules of the memorization-unlearning methods (memorization.md).

Both work on the forget set's current per-sequence MA and the never-seen reference distribution:
- ``mean`` (the authors' rule): stop once mean MA < tau (tau = the unseen mean MA unless given);
- ``outliers`` (ours): stop once no sequence is above the unseen band's upper edge mu + k sigma (c(D_f) high
  side = 0), and never train on a sequence that is already inside the band, so no low tail is created."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from obliviate.metrics.reference import ReferenceStats

StopRule = Literal["mean", "outliers"]


@dataclass(frozen=True)
class Thresholds:
    """What the rules compare against, fixed at the start of a run from the model's unseen reference."""

    tau: float  # mean-rule threshold on mean MA
    upper: float  # upper edge of the calibrated band mu + k sigma
    lower: float  # lower edge mu - k sigma

    @classmethod
    def from_reference(cls, reference: ReferenceStats, k_sigma: float, tau: float | None = None) -> Thresholds:
        lower, upper = reference.band(k_sigma)
        return cls(tau=reference.mean if tau is None else tau, upper=upper, lower=lower)


def should_stop(ma: np.ndarray, rule: StopRule, thresholds: Thresholds) -> bool:
    """True when the forget set meets the stop rule."""
    if rule == "mean":
        return bool(ma.mean() < thresholds.tau)
    return bool((ma <= thresholds.upper).all())


def select_all(ma: np.ndarray) -> np.ndarray:
    """Every sequence (GA, plain TA)."""
    return np.arange(len(ma))


def select_memorized(ma: np.ndarray, gamma: float, band_upper: float | None = None) -> np.ndarray:
    """SGA's selection: sequences with MA >= gamma plus the single most-memorized one (authors).

    With ``band_upper`` (the per-sequence rule) a sequence at or below the band's upper edge is never selected,
    the most-memorized one included, so training stops touching sequences that already look unseen."""
    chosen = ma >= gamma
    chosen[int(np.argmax(ma))] = True
    if band_upper is not None:
        chosen &= ma > band_upper
    return np.flatnonzero(chosen)


def select_outliers(ma: np.ndarray, band_upper: float) -> np.ndarray:
    """Sequences still above the band's upper edge (per-sequence TA descent)."""
    return np.flatnonzero(ma > band_upper)
