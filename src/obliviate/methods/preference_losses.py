"""Losses of the question-answer unlearning baselines (GradDiff, NPO, SimNPO, IdkNLL / IdkDPO, RMU), written
once on plain tensors so that each can be checked against hand-computed values.

Conventions (the ones the field's reference implementations use, and the ones most easily got wrong):
- ``logp`` arguments are SUMMED log-likelihoods of the answer tokens, log pi(y|x) = sum_t log pi(y_t | x, y_<t),
  one value per example, always <= 0. ``avg_nll`` is the per-token MEAN negative log-likelihood, >= 0.
- A "log ratio" is log pi_theta(y|x) - log pi_ref(y|x): positive when the model being trained puts MORE mass on
  y than the reference does.
- NPO and DPO carry the 2 / beta factor of the papers, so that as beta -> 0 NPO's gradient tends to that of
  gradient ascent on the NLL.
- Every loss is minimised; a method ascends nothing by hand.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

MarginConvention = Literal["reference", "paper"]


def npo_loss(logp_theta: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative Preference Optimization (Zhang et al. 2024) on forget answers:
    (2 / beta) * mean log(1 + (pi_theta / pi_ref)^beta) = -(2 / beta) * mean log sigmoid(-beta * log ratio)."""
    _check_beta(beta)
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp_theta - logp_ref)).mean()


def simnpo_loss(avg_nll: torch.Tensor, beta: float, gamma: float = 0.0,
                margin_convention: MarginConvention = "reference") -> torch.Tensor:  # fmt: skip
    """SimNPO (Fan et al. 2024): reference-free, length-normalised NPO with reward margin ``gamma``.
    ``"reference"`` (OpenUnlearning's simnpo.py, the authors' code): -(2 / beta) * mean log sigmoid(beta * (avg_nll
    - gamma)); ``"paper"`` (as the paper writes it): -(2 / beta) * mean log sigmoid(-(beta / |y|) log pi_theta(y|x)
    - gamma) = -(2 / beta) * mean log sigmoid(beta * avg_nll - gamma). Equal when gamma = 0."""
    _check_beta(beta)
    if margin_convention == "reference":
        reward = beta * (avg_nll - gamma)
    elif margin_convention == "paper":
        reward = beta * avg_nll - gamma
    else:
        raise ValueError(f"margin_convention must be 'reference' or 'paper', not {margin_convention!r}")
    return -(2.0 / beta) * F.logsigmoid(reward).mean()


def dpo_loss(
    chosen_theta: torch.Tensor,
    chosen_ref: torch.Tensor,
    rejected_theta: torch.Tensor,
    rejected_ref: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO with the 2 / beta scale used for unlearning (IdkDPO: chosen = an 'I don't know' answer, rejected = the
    forget answer): -(2 / beta) * mean log sigmoid(beta * (chosen log ratio - rejected log ratio))."""
    _check_beta(beta)
    margin = (chosen_theta - chosen_ref) - (rejected_theta - rejected_ref)
    return -(2.0 / beta) * F.logsigmoid(beta * margin).mean()


def token_kl(logits_theta: torch.Tensor, logits_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(pi_ref || pi_theta) per next-token distribution, averaged over the positions where ``mask`` is 1
    (GradDiff's KL retain term: it keeps the model's distribution on retain data close to the reference's)."""
    log_theta = F.log_softmax(logits_theta.float(), dim=-1)
    log_ref = F.log_softmax(logits_ref.float(), dim=-1)
    per_position = (log_ref.exp() * (log_ref - log_theta)).sum(dim=-1)
    weights = mask.to(per_position.dtype)
    return (per_position * weights).sum() / weights.sum().clamp_min(1)


def grad_diff_loss(forget_nll: torch.Tensor, retain_term: torch.Tensor, forget_weight: float = 1.0,
                   retain_weight: float = 1.0) -> torch.Tensor:  # fmt: skip
    """Gradient difference: ascend the forget NLL, descend the retain term (NLL or KL):
    -forget_weight * forget_nll + retain_weight * retain_term."""
    return -forget_weight * forget_nll + retain_weight * retain_term


def rmu_loss(
    forget_hidden: torch.Tensor,
    control: torch.Tensor,
    retain_hidden: torch.Tensor,
    retain_hidden_ref: torch.Tensor,
    retain_weight: float,
    forget_mask: torch.Tensor | None = None,
    retain_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Representation Misdirection for Unlearning (Li et al. 2024), at one layer: push forget activations
    towards the scaled random control vector c * u, keep retain activations where the frozen model has them:
    mean_rows mean_tokens ||h_f - c u||^2 / d + retain_weight * mean_rows mean_tokens ||h_r - h_r_ref||^2 / d."""
    forget = activation_mse(forget_hidden, control.expand_as(forget_hidden), forget_mask)
    retain = activation_mse(retain_hidden, retain_hidden_ref, retain_mask)
    return forget + retain_weight * retain


def rmu_control_vector(hidden_size: int, coefficient: float, seed: int) -> torch.Tensor:
    """c * u with u uniform in [0, 1)^d, normalised to unit length (the authors' recipe), seeded."""
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(hidden_size, generator=generator)
    return coefficient * u / u.norm()


def activation_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared distance per token averaged over the hidden size, then per row over the tokens where ``mask`` is 1,
    then over the rows (OpenUnlearning's RMU compute_activation_loss; a row without such tokens adds 0)."""
    per_token = (a.float() - b.float()).pow(2).mean(dim=-1)
    if mask is None:
        return per_token.mean()
    weights = mask.to(per_token.dtype)
    return ((per_token * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)).mean()


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
