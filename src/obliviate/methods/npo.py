"""NPO (Zhang et al. 2024): negative preference optimisation on the forget answers, plus the retain NLL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, answer_logprob, reference_logprob
from obliviate.methods.preference_losses import npo_loss
from obliviate.methods.reductions import NLLReduction, NLLReductionConfig
from obliviate.methods.spec import MethodSpec, register


class NPOConfig(NLLReductionConfig):
    name: Literal["npo"] = "npo"
    beta: float = Field(0.1, gt=0, description="inverse temperature beta")
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class NPO(ObjectiveMethod):
    """Negative preference optimisation on forget answers, plus the retain NLL."""

    name = "npo"
    needs_reference = True

    def __init__(self, beta: float = 0.1, retain_weight: float = 1.0, nll_reduction: NLLReduction = "tokens") -> None:
        super().__init__(retain_weight, nll_reduction)
        self.beta = beta

    def loss(self, model, reference, forget, retain=None, idk=None):
        forget_term = npo_loss(answer_logprob(model, forget), reference_logprob(reference, forget), self.beta)
        return forget_term + self.retain_nll(model, retain)


register(MethodSpec("npo", "negative preference optimisation against the starting model", NPOConfig,
                    objective=lambda cfg: NPO(**cfg.params())))
