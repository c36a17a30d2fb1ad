"""IdkDPO: DPO preferring 'I don't know' (chosen) over the forget answer (rejected), plus the retain NLL. Its
settings and their defaults are NPO's (OpenUnlearning's DPO and NPO both take beta 0.1 and the retain NLL)."""

from __future__ import annotations

from typing import Literal

from obliviate.methods.npo import NPO, NPOConfig
from obliviate.methods.objective import answer_logprob, reference_logprob
from obliviate.methods.preference_losses import dpo_loss
from obliviate.methods.spec import MethodSpec, register


class IdkDPOConfig(NPOConfig):
    name: Literal["idkdpo"] = "idkdpo"  # type: ignore[assignment]


class IdkDPO(NPO):
    """DPO preferring 'I don't know' (chosen) over the forget answer (rejected), plus the retain NLL."""

    name = "idkdpo"
    needs_idk = True

    def loss(self, model, reference, forget, retain=None, idk=None):
        if idk is None:
            raise ValueError("IdkDPO needs the 'I don't know' batch")
        chosen = answer_logprob(model, idk), reference_logprob(reference, idk)
        rejected = answer_logprob(model, forget), reference_logprob(reference, forget)
        preference = dpo_loss(*chosen, *rejected, self.beta)
        return preference + self.retain_nll(model, retain)


register(MethodSpec("idkdpo", "DPO preferring 'I don't know' over the answer", IdkDPOConfig,
                    objective=lambda cfg: IdkDPO(**cfg.params()), needs=frozenset({"questions"})))
