"""IdkDPO: DPO preferring 'I don't know' (chosen) over the forget answer (rejected), plus the retain NLL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, answer_logprob, reference_logprob
from obliviate.methods.preference_losses import dpo_loss
from obliviate.methods.reductions import NLLReduction, NLLReductionConfig
from obliviate.methods.spec import MethodSpec, register


class IdkDPOConfig(NLLReductionConfig):
    name: Literal["idkdpo"] = "idkdpo"
    beta: float = Field(0.1, gt=0, description="inverse temperature beta")
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class IdkDPO(ObjectiveMethod):
    """DPO preferring 'I don't know' (chosen) over the forget answer (rejected), plus the retain NLL."""

    name = "idkdpo"
    needs_reference = True
    needs_idk = True

    def __init__(self, beta: float = 0.1, retain_weight: float = 1.0, nll_reduction: NLLReduction = "tokens") -> None:
        super().__init__(retain_weight, nll_reduction)
        self.beta = beta

    def loss(self, model, reference, forget, retain=None, idk=None):
        if idk is None:
            raise ValueError("IdkDPO needs the 'I don't know' batch")
        chosen = answer_logprob(model, idk), reference_logprob(reference, idk)
        rejected = answer_logprob(model, forget), reference_logprob(reference, forget)
        preference = dpo_loss(*chosen, *rejected, self.beta)
        return preference + self.retain_nll(model, retain)


register(MethodSpec("idkdpo", "DPO preferring 'I don't know' over the answer", IdkDPOConfig,
                    objective=lambda cfg: IdkDPO(**cfg.params()), needs=frozenset({"questions"})))
