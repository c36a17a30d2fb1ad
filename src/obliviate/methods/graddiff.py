"""GradDiff: ascend the forget NLL, descend a retain term - the retain NLL (graddiff) or KL(reference || model)
on the retain batch (graddiff_kl)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from obliviate.methods.objective import ObjectiveMethod, logits_of
from obliviate.methods.preference_losses import grad_diff_loss, token_kl
from obliviate.methods.reductions import NLLReduction, NLLReductionConfig
from obliviate.methods.spec import MethodSpec, register

KLPositions = Literal["all", "answer"]


class GradDiffConfig(NLLReductionConfig):
    name: Literal["graddiff"] = "graddiff"
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain term")


class GradDiffKLConfig(GradDiffConfig):
    name: Literal["graddiff_kl"] = "graddiff_kl"  # type: ignore[assignment]
    kl_positions: KLPositions = Field(
        "all",
        description="where the retain KL is averaged: 'all' - every position of the batch, padding included "
        "(OpenUnlearning / TOFU: kl_div batchmean over (B*T, V)); 'answer' - the positions predicting answer tokens",
    )


class GradDiff(ObjectiveMethod):
    """Ascend on forget, descend on retain: the retain term is the NLL, or KL(reference || model)."""

    name = "graddiff"

    def __init__(self, retain_weight: float = 1.0, retain_term: str = "nll", nll_reduction: NLLReduction = "tokens",
                 kl_positions: KLPositions = "all") -> None:  # fmt: skip
        super().__init__(retain_weight, nll_reduction)
        if retain_term not in ("nll", "kl"):
            raise ValueError(f"retain_term must be 'nll' or 'kl', not {retain_term!r}")
        if kl_positions not in ("all", "answer"):
            raise ValueError(f"kl_positions must be 'all' or 'answer', not {kl_positions!r}")
        self.retain_term, self.kl_positions = retain_term, kl_positions

    @property  # type: ignore[override]
    def needs_reference(self) -> bool:
        """Only the KL retain term compares with the frozen model."""
        return self.retain_term == "kl"

    def loss(self, model, reference, forget, retain=None, idk=None):
        forget_nll = self.nll(model, forget)
        if retain is None:
            return grad_diff_loss(forget_nll, torch.zeros_like(forget_nll), retain_weight=0.0)
        term = self.nll(model, retain) if self.retain_term == "nll" else self.retain_kl(model, reference, retain)
        return grad_diff_loss(forget_nll, term, retain_weight=self.retain_weight)

    def retain_kl(self, model, reference, retain) -> torch.Tensor:
        """KL(reference || model) of the next-token distributions, averaged over ``kl_positions``."""
        with torch.no_grad():
            ref_logits = logits_of(reference, retain)
        logits = logits_of(model, retain)
        if self.kl_positions == "all":
            return token_kl(logits, ref_logits, torch.ones(logits.shape[:2], device=logits.device))
        return token_kl(logits[:, :-1], ref_logits[:, :-1], retain.target_mask[:, 1:])


register(MethodSpec("graddiff", "ascend forget NLL, descend retain NLL", GradDiffConfig,
                    objective=lambda cfg: GradDiff(cfg.retain_weight, "nll", cfg.nll_reduction)))
register(MethodSpec("graddiff_kl", "ascend forget NLL, keep retain answers close to the reference (KL)",
                    GradDiffKLConfig, objective=lambda cfg: GradDiff(retain_term="kl", **cfg.params())))
