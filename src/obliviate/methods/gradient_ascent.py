"""GA (Jang et al.) and SGA (selective gradient ascent, "To Each (Textual Sequence) Its Own")."""

from __future__ import annotations

import numpy as np

from obliviate.methods.base import MemorizationMethod
from obliviate.methods.rules import StopRule, Thresholds, select_memorized


class GradientAscent(MemorizationMethod):
    """Ascend the mean token NLL of the whole forget set at every step."""

    name = "ga"


class SelectiveGradientAscent(MemorizationMethod):
    """Ascend only on sequences with MA >= gamma plus the most-memorized one.

    ``gamma=None`` uses the calibrated band's upper edge; under the per-sequence stop rule a sequence already
    inside the band is never selected."""

    name = "sga"

    def __init__(self, rule: StopRule, thresholds: Thresholds, gamma: float | None = None) -> None:
        super().__init__(rule, thresholds)
        self.gamma = thresholds.upper if gamma is None else gamma

    def select(self, ma: np.ndarray) -> np.ndarray:
        return select_memorized(ma, self.gamma, self.band_upper)
