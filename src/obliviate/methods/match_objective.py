"""MATCH's per-row objective terms from one chunked teacher-forced pass (see methods/match.py for the method).

The selected rows run in groups of similar length (no padding beyond what those groups need) and every
full-vocabulary quantity - target log-probability, entropy, Min-K%++ spread, the flip margin - comes from
:func:`~obliviate.metrics.teacher_forcing.model_position_stats`, whose vocabulary tensors exist one checkpointed
chunk at a time, in forward and in backward."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from obliviate.metrics.teacher_forcing import model_position_stats
from obliviate.metrics.tokens import right_pad


@dataclass
class RowGoals:
    """Per selected row: its targets and what the step does to it (all 1-D tensors aligned with the rows)."""

    loss: torch.Tensor  # target mean NLL
    entropy: torch.Tensor  # target mean predictive entropy
    pull: torch.Tensor  # 1 where the loss is off target (the loss term acts), else 0
    excess: torch.Tensor  # long: greedy matches to flip (> 0: too many; < 0: too few)
    minkpp: torch.Tensor | None = None  # target Min-K%++ score (None: term off)
    gap: torch.Tensor | None = None  # target neighbourhood gap (None: term off)

    def rows(self, index: list[int]) -> RowGoals:
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        return RowGoals(**{k: None if v is None else v[index] for k, v in picked.items()})


@dataclass
class TermSettings:
    cap: float  # token NLL of the never-seen min-k tail's edge (ascent stops pushing past it)
    margin: float  # logit margin of a flip
    tail: float  # Min-K% fraction


def lowest_fraction_mean(values: torch.Tensor, valid: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per row, the mean of the ``max(1, int(n * fraction))`` smallest valid values (n: the row's valid count), as
    the Min-K% scores take it; differentiable in the chosen values."""
    count = (valid.sum(1) * fraction).long().clamp(min=1)
    ordered = torch.where(valid, values, torch.full_like(values, float("inf"))).sort(dim=1).values
    chosen = torch.arange(values.shape[1], device=values.device)[None, :] < count[:, None]
    return torch.where(chosen, ordered, torch.zeros_like(ordered)).sum(1) / count


def flip_term(margins: torch.Tensor, valid: torch.Tensor, excess: torch.Tensor, margin: float) -> torch.Tensor:
    """Per row, a hinge on the ``|excess[i]|`` tokens cheapest to flip: with excess > 0 (too many greedy matches)
    the matched tokens of smallest margin are pushed below the best other token by ``margin``; with excess < 0
    the unmatched tokens closest to matching are pushed above it. ``margins``: target logit - best other logit
    [B, T]; ``valid``: the tokens that count. Rows with excess 0 give 0."""
    sign = torch.where(excess > 0, 1.0, -1.0).to(margins.dtype)[:, None]  # flip matches down / misses up
    signed = margins * sign  # > 0: a token on the wrong side for this row
    candidate = valid & (signed > 0)
    order = torch.where(candidate, signed, torch.full_like(signed, float("inf"))).detach().argsort(dim=1)
    k = excess.abs().clamp(max=candidate.sum(1))
    chosen = torch.zeros_like(candidate)
    ranks = torch.arange(signed.shape[1], device=signed.device)[None, :] < k[:, None]
    chosen.scatter_(1, order, ranks)
    hinge = torch.relu(signed + margin) * chosen
    return hinge.sum(1) / k.clamp(min=1)


def row_terms(model, rows: list[list[int]], counted: list[list[int]] | None, goals: RowGoals, settings: TermSettings,
              pad_id: int) -> dict[str, torch.Tensor]:  # fmt: skip
    """Per row of one group: ``nll``, ``entropy``, ``steer`` (squared distance to the loss target, 0 where on
    target), ``spread`` (squared distance to the entropy target), ``flip`` and, when its goal is set, ``minkpp``."""
    device = goals.loss.device
    input_ids, attention = right_pad(rows, pad_id, device)
    weights = (attention if counted is None else right_pad(counted, 0, device)[0])[:, 1:].float()
    stats, _ = model_position_stats(model, input_ids, attention)
    count = weights.sum(1).clamp(min=1)
    token = -stats.target_logprob * weights
    nll = token.sum(1) / count
    entropy = (-stats.expected_logprob * weights).sum(1) / count
    # ascending, the gradient flows only through tokens not already less likely than the never-seen min-k tail
    # (GA would drive those few ever lower - the signature Min-K% reads); descending, all do
    capped = token.clamp(max=settings.cap).sum(1) / count
    steer = torch.where(nll < goals.loss, capped + (nll - capped).detach(), nll)
    terms = {
        "nll": nll, "entropy": entropy, "steer": (steer - goals.loss).square() * goals.pull,
        "spread": (entropy - goals.entropy).square(),
        "flip": flip_term(stats.margin, weights.bool(), goals.excess, settings.margin),
    }  # fmt: skip
    if goals.minkpp is not None:
        standardised = (stats.target_logprob - stats.expected_logprob) / stats.logprob_std(floor=1e-8)
        terms["minkpp"] = lowest_fraction_mean(standardised, weights.bool(), settings.tail)
    return terms


def mean_nll(model, rows: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    """Mean next-token NLL of each row (chunked; differentiable)."""
    input_ids, attention = right_pad(rows, pad_id, device)
    stats, _ = model_position_stats(model, input_ids, attention)
    weights = attention[:, 1:].float()
    return (-stats.target_logprob * weights).sum(1) / weights.sum(1).clamp(min=1)
