"""GA: gradient ascent on the forget set (Jang et al.). Step-wise on sequences (every sequence, every step) and as
an objective on question-answer pairs (ascend the answers' NLL, no retain term)."""

from __future__ import annotations

from typing import Literal

from obliviate.methods.base import MemorizationMethod
from obliviate.methods.objective import ObjectiveMethod
from obliviate.methods.reductions import NLLReductionConfig
from obliviate.methods.spec import MethodSpec, register


class GAConfig(NLLReductionConfig):
    name: Literal["ga"] = "ga"


class GradientAscent(MemorizationMethod):
    """Ascend the mean token NLL of the whole forget set at every step."""

    name = "ga"


class GradientAscentQA(ObjectiveMethod):
    """Ascend the forget answers' NLL; no retain term."""

    name = "ga"

    def loss(self, model, reference, forget, retain=None, idk=None):
        return -self.nll(model, forget)


register(MethodSpec(
    "ga", "gradient ascent on the forget set", GAConfig,
    objective=lambda cfg: GradientAscentQA(nll_reduction=cfg.nll_reduction),
    stepwise=lambda cfg, rule, thresholds: GradientAscent(rule, thresholds),
))  # fmt: skip
