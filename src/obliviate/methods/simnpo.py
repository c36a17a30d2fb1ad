"""SimNPO (Fan et al. 2024): reference-free, length-normalised NPO, plus the retain NLL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, answer_logprob
from obliviate.methods.preference_losses import MarginConvention, simnpo_loss
from obliviate.methods.reductions import NLLReduction, NLLReductionConfig, answer_lengths
from obliviate.methods.spec import MethodSpec, register


class SimNPOConfig(NLLReductionConfig):
    name: Literal["simnpo"] = "simnpo"
    beta: float = Field(4.5, gt=0, description="inverse temperature beta")
    gamma: float = Field(0.0, ge=0, description="reward margin (OpenUnlearning's delta, the authors' gamma)")
    margin_convention: MarginConvention = Field(
        "reference",
        description="'reference' - log sigmoid(beta * (avg_nll - gamma)), as OpenUnlearning and the authors' code; "
        "'paper' - log sigmoid(beta * avg_nll - gamma), as the paper writes it",
    )
    forget_weight: float = Field(
        0.125, ge=0, description="weight of the SimNPO forget term (OpenUnlearning's gamma, the authors' npo_coeff)"
    )
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class SimNPO(ObjectiveMethod):
    """Reference-free, length-normalised NPO, plus the retain NLL. |y| counts an answer's tokens as the
    reference does (``labels != -100``)."""

    name = "simnpo"

    def __init__(self, beta: float = 4.5, gamma: float = 0.0, margin_convention: MarginConvention = "reference",
                 forget_weight: float = 0.125, retain_weight: float = 1.0,
                 nll_reduction: NLLReduction = "tokens") -> None:  # fmt: skip
        super().__init__(retain_weight, nll_reduction)
        self.beta, self.gamma, self.margin_convention = beta, gamma, margin_convention
        self.forget_weight = forget_weight

    def loss(self, model, reference, forget, retain=None, idk=None):
        avg_nll = -answer_logprob(model, forget) / answer_lengths(forget).clamp_min(1)
        forget_term = simnpo_loss(avg_nll, self.beta, self.gamma, self.margin_convention)
        return self.forget_weight * forget_term + self.retain_nll(model, retain)


register(MethodSpec("simnpo", "reference-free, length-normalised NPO", SimNPOConfig,
                    objective=lambda cfg: SimNPO(**cfg.params())))
