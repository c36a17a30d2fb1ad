"""SimNPO (Fan et al. 2024): reference-free, length-normalised NPO, plus the retain NLL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, answer_nll
from obliviate.methods.preference_losses import simnpo_loss
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class SimNPOConfig(MethodConfig):
    name: Literal["simnpo"] = "simnpo"
    beta: float = Field(4.5, gt=0, description="inverse temperature beta")
    gamma: float = Field(0.0, ge=0, description="reward margin gamma")
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class SimNPO(ObjectiveMethod):
    """Reference-free, length-normalised NPO, plus the retain NLL."""

    name = "simnpo"

    def __init__(self, beta: float = 4.5, gamma: float = 0.0, retain_weight: float = 1.0) -> None:
        super().__init__(retain_weight)
        self.beta, self.gamma = beta, gamma

    def loss(self, model, reference, forget, retain=None, idk=None):
        return simnpo_loss(answer_nll(model, forget), self.beta, self.gamma) + self.retain_nll(model, retain)


register(MethodSpec("simnpo", "reference-free, length-normalised NPO", SimNPOConfig,
                    objective=lambda cfg: SimNPO(**cfg.params())))
