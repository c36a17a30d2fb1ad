"""SGA: selective gradient ascent ("To Each (Textual Sequence) Its Own"), step-wise only."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from obliviate.methods.base import MemorizationMethod
from obliviate.methods.rules import StopRule, Thresholds, select_memorized
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class SGAConfig(MethodConfig):
    name: Literal["sga"] = "sga"
    gamma: float | None = Field(
        None, description="select sequences with MA >= gamma [the never-seen band's upper edge; preset paper 0.70]"
    )


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


register(MethodSpec(
    "sga", "selective gradient ascent: only sequences still memorized", SGAConfig,
    stepwise=lambda cfg, rule, thresholds: SelectiveGradientAscent(rule, thresholds, cfg.gamma),
))  # fmt: skip
