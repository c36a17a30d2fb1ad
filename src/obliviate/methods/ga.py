"""GA: gradient ascent on the forget set (Jang et al.). Step-wise on sequences (every sequence, every step) and as
an objective on question-answer pairs (ascend the answers' NLL, no retain term)."""

from __future__ import annotations

from typing import Literal

from obliviate.methods.base import MemorizationMethod
from obliviate.methods.objective import ObjectiveMethod, answer_nll
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class GAConfig(MethodConfig):
    name: Literal["ga"] = "ga"


class GradientAscent(MemorizationMethod):
    """Ascend the mean token NLL of the whole forget set at every step."""

    name = "ga"


class GradientAscentQA(ObjectiveMethod):
    """Ascend the forget answers' NLL; no retain term."""

    name = "ga"

    def loss(self, model, reference, forget, retain=None, idk=None):
        return -answer_nll(model, forget).mean()


register(MethodSpec(
    "ga", "gradient ascent on the forget set", GAConfig,
    objective=lambda cfg: GradientAscentQA(),
    stepwise=lambda cfg, rule, thresholds: GradientAscent(rule, thresholds),
))  # fmt: skip
