"""IdkNLL: fine-tune the forget questions towards 'I don't know' answers, plus the retain NLL."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod
from obliviate.methods.reductions import NLLReductionConfig
from obliviate.methods.spec import MethodSpec, register


class IdkNLLConfig(NLLReductionConfig):
    name: Literal["idknll"] = "idknll"
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class IdkNLL(ObjectiveMethod):
    """Fine-tune the forget questions towards 'I don't know' answers, plus the retain NLL."""

    name = "idknll"
    needs_idk = True

    def loss(self, model, reference, forget, retain=None, idk=None):
        if idk is None:
            raise ValueError("IdkNLL needs the 'I don't know' batch")
        return self.nll(model, idk) + self.retain_nll(model, retain)


register(MethodSpec("idknll", "fine-tune towards 'I don't know'", IdkNLLConfig,
                    objective=lambda cfg: IdkNLL(**cfg.params()), needs=frozenset({"questions"})))
