"""Loss pieces shared by every method (one definition each; methods compose them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_nll(logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Next-token negative log-likelihood [B, L-1]; zero where ``target_mask`` is 0 (padding, or a prompt
    token that is context only). ``target_mask`` is [B, L] over ``input_ids``; the attention mask serves."""
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, reduction="none")
    return nll * target_mask[:, 1:].to(nll.dtype)


def sequence_nll(logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each row [B] over the row's target tokens (``target_mask`` as in token_nll)."""
    return per_target_mean(token_nll(logits, input_ids, target_mask), target_mask)


def per_target_mean(token_values: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Each row's sum of ``token_values`` [B, L-1] over the number of its target tokens [B] (at least 1)."""
    return token_values.sum(dim=1) / target_mask[:, 1:].sum(dim=1).clamp_min(1)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor, total_weight: float) -> torch.Tensor:
    """sum(w * v) / total_weight: the share of a global mean that one micro-batch contributes."""
    return (values * weights).sum() / total_weight


def unlikelihood(logits: torch.Tensor, input_ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Per row [B]: mean over the target tokens of -log(1 - p(token)) (unlikelihood training, Welleck et al.
    2020). It pushes each token's probability towards 0 and, unlike gradient ascent, stops pushing once it is
    small: no unbounded loss."""
    mask = target_mask[:, 1:].to(torch.float32)
    p = (-token_nll(logits, input_ids, target_mask)).exp() * mask  # 0 where not counted
    penalty = -torch.log1p(-p.clamp(max=1 - 1e-6)) * mask
    return penalty.sum(dim=1) / mask.sum(dim=1).clamp_min(1)
