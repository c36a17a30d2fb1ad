"""GradDiff: ascend the forget NLL, descend a retain term - the retain NLL (graddiff) or KL(reference || model)
on the retain answers (graddiff_kl)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, answer_nll, logits_of
from obliviate.methods.preference_losses import grad_diff_loss, token_kl
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class GradDiffConfig(MethodConfig):
    name: Literal["graddiff"] = "graddiff"
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class GradDiffKLConfig(MethodConfig):
    name: Literal["graddiff_kl"] = "graddiff_kl"
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class GradDiff(ObjectiveMethod):
    """Ascend on forget, descend on retain: the retain term is the NLL, or KL(reference || model)."""

    name = "graddiff"

    def __init__(self, retain_weight: float = 1.0, retain_term: str = "nll") -> None:
        super().__init__(retain_weight)
        if retain_term not in ("nll", "kl"):
            raise ValueError(f"retain_term must be 'nll' or 'kl', not {retain_term!r}")
        self.retain_term = retain_term

    @property  # type: ignore[override]
    def needs_reference(self) -> bool:
        """Only the KL retain term compares with the frozen model."""
        return self.retain_term == "kl"

    def loss(self, model, reference, forget, retain=None, idk=None):
        forget_nll = answer_nll(model, forget).mean()
        if retain is None:
            return grad_diff_loss(forget_nll, torch.zeros_like(forget_nll), retain_weight=0.0)
        if self.retain_term == "nll":
            term = answer_nll(model, retain).mean()
        else:
            with torch.no_grad():
                ref_logits = logits_of(reference, retain)
            term = token_kl(logits_of(model, retain)[:, :-1], ref_logits[:, :-1], retain.target_mask[:, 1:])
        return grad_diff_loss(forget_nll, term, retain_weight=self.retain_weight)


register(MethodSpec("graddiff", "ascend forget NLL, descend retain NLL", GradDiffConfig,
                    objective=lambda cfg: GradDiff(cfg.retain_weight, retain_term="nll")))
register(MethodSpec("graddiff_kl", "ascend forget NLL, keep retain answers close to the reference (KL)",
                    GradDiffKLConfig,
                    objective=lambda cfg: GradDiff(cfg.retain_weight, retain_term="kl")))
