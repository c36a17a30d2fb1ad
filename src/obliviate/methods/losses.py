"""Loss pieces shared by every method (one definition each; methods compose them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_nll(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Next-token negative log-likelihood [B, L-1]; zero where the target is padding."""
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, reduction="none")
    return nll * attention_mask[:, 1:].to(nll.dtype)


def sequence_nll(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token NLL of each row [B] (over the row's real target tokens)."""
    counts = attention_mask[:, 1:].sum(dim=1).clamp_min(1)
    return token_nll(logits, input_ids, attention_mask).sum(dim=1) / counts


def weighted_mean(values: torch.Tensor, weights: torch.Tensor, total_weight: float) -> torch.Tensor:
    """sum(w * v) / total_weight: the share of a global mean that one micro-batch contributes."""
    return (values * weights).sum() / total_weight
