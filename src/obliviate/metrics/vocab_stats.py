"""Per-position statistics over the whole vocabulary, computed a chunk of positions at a time.

Every full-vocabulary quantity a metric or a loss reads - the target token's log-probability, E_p[log p],
E_p[(log p)^2], the flip margin (target logit minus the best other logit) and the greedy prediction - comes from
:func:`vocab_stats`. It projects the final hidden states through the LM head a chunk of positions at a time, so the
[positions, vocabulary] logits and their log-softmax copies exist for one chunk only. With gradients on, each chunk
runs under :func:`torch.utils.checkpoint.checkpoint`: backward keeps only the chunk's hidden states and recomputes
its vocabulary tensors, so a loss's peak memory grows with the chunk, not with batch x length x vocabulary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

# elements of one [positions, vocabulary] float tensor per chunk (2**25: 128 MiB, 261 positions at 128k tokens)
VOCAB_ELEMENTS_PER_CHUNK = 2**25
Head = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PositionStats:
    """Per position (flat or [B, T]): ``target_logprob`` log p(target), ``expected_logprob`` E_p[log p],
    ``second_moment`` E_p[(log p)^2], ``margin`` target logit - best other logit, ``argmax`` the greedy token.
    The float ones carry gradients when the hidden states do; they are None in greedy-only mode."""

    target_logprob: torch.Tensor | None
    expected_logprob: torch.Tensor | None
    second_moment: torch.Tensor | None
    margin: torch.Tensor | None
    argmax: torch.Tensor

    def logprob_std(self, floor: float = 0.0) -> torch.Tensor:
        """std_{v~p}[log p(v)] per position (the variance clamped at ``floor`` before the square root)."""
        return (self.second_moment - self.expected_logprob.square()).clamp_min(floor).sqrt()

    def reshape(self, *shape: int) -> PositionStats:
        values = (getattr(self, name) for name in _FIELDS)
        return PositionStats(*(None if v is None else v.reshape(*shape) for v in values))


_FIELDS = ("target_logprob", "expected_logprob", "second_moment", "margin", "argmax")


def _stats_of_logits(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, 4] float: target log-prob, E_p[log p], E_p[(log p)^2], margin; [N] argmax) of logits [N, V]."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # at least float32
    logprobs = logits.log_softmax(-1)
    index = targets[:, None]
    target = logprobs.gather(-1, index).squeeze(-1)
    weighted = logprobs.exp() * logprobs
    expected = weighted.sum(-1)
    second = (weighted * logprobs).sum(-1)
    del weighted
    other = logits.scatter(-1, index, float("-inf")).amax(-1)
    margin = logits.gather(-1, index).squeeze(-1) - other
    return torch.stack([target, expected, second, margin], -1), logprobs.argmax(-1)


def _head_stats(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _stats_of_logits(head(hidden), targets)


def _head_argmax(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[None, torch.Tensor]:
    return None, head(hidden).argmax(-1)


def _identity(values: torch.Tensor) -> torch.Tensor:
    return values


def positions_per_chunk(vocab_size: int, budget: int = VOCAB_ELEMENTS_PER_CHUNK) -> int:
    """How many positions one chunk takes so that a [positions, vocabulary] tensor holds at most ``budget``."""
    return max(1, budget // max(1, vocab_size))


def vocab_stats(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: Head | None = None,
    *,
    chunk: int | None = None,
    greedy_only: bool = False,
) -> PositionStats:
    """:class:`PositionStats` of every position of ``hidden`` ([..., H]: final hidden states, or logits when
    ``head`` is None) for the next tokens ``targets`` ([...]); ``chunk`` positions at a time (default: the
    vocabulary budget). Chunks are checkpointed when gradients flow, so backward holds one chunk's vocabulary
    tensors at a time. ``greedy_only``: the greedy predictions alone (the cheapest pass)."""
    shape = targets.shape
    flat_hidden, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    head = head or _identity
    if chunk is None:
        vocab = flat_hidden.shape[-1] if head is _identity else _output_size(head, flat_hidden)
        chunk = positions_per_chunk(vocab)
    recompute = torch.is_grad_enabled() and flat_hidden.requires_grad and not greedy_only
    compute = _head_argmax if greedy_only else _head_stats
    floats, argmaxes = [], [flat_targets.new_zeros(0)]
    for start in range(0, flat_hidden.shape[0], chunk):
        piece = (head, flat_hidden[start : start + chunk], flat_targets[start : start + chunk])
        values, argmax = checkpoint(compute, *piece, use_reentrant=False) if recompute else compute(*piece)
        floats.append(values)
        argmaxes.append(argmax)
    argmax = torch.cat(argmaxes)
    if greedy_only:
        return PositionStats(None, None, None, None, argmax).reshape(*shape)
    stacked = torch.cat(floats) if floats else flat_hidden.new_zeros((0, 4), dtype=torch.float32)
    return PositionStats(*stacked.unbind(-1), argmax).reshape(*shape)


def _output_size(head: Head, hidden: torch.Tensor) -> int:
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    with torch.no_grad():
        return int(head(hidden[:1]).shape[-1])
