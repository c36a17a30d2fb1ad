"""Per-position statistics over the whole vocabulary, computed a chunk of positions at a time.

Every full-vocabulary quantity a metric or a loss reads - the target token's log-probability, E_p[log p],
E_p[(log p)^2], the flip margin (target logit minus the best other logit) and the greedy prediction - comes from
:func:`vocab_stats`; the objective methods' answer NLL from :func:`target_nll` (one cross-entropy per chunk). Both
project the final hidden states through the LM head a chunk of positions at a time, so the [positions, vocabulary]
logits and their log-softmax copies exist for one chunk only. With gradients on, each chunk runs under
:func:`torch.utils.checkpoint.checkpoint`: backward keeps only the chunk's hidden states and recomputes its
vocabulary tensors, so a loss's peak memory grows with the chunk, not with batch x length x vocabulary. Without
gradients a chunk holds at most two [positions, vocabulary] buffers (the products reuse one in place).

The budget keeps each float32 chunk buffer above glibc's 32 MiB ceiling on its dynamic mmap threshold. Smaller
buffers come from the heap, where the small per-chunk results split the freed holes and the heap grows chunk after
chunk (measured: 4.2 GiB peak RSS for the audit at 8 x 512 with 2^23-element chunks - 65 positions at 128k, 31.8
MiB - against 1.2 GiB with 2^25); larger ones are mmapped and handed back whole when freed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

# elements of one [positions, vocabulary] float tensor per chunk (2**24: 64 MiB, 130 positions at 128k tokens)
VOCAB_ELEMENTS_PER_CHUNK = 2**24
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


def _head_stats(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, 4] float: target log-prob, E_p[log p], E_p[(log p)^2], margin; [N] argmax) of the logits
    ``head(hidden)`` [N, V]. Without an autograd graph the products reuse one buffer: at most two [N, V] at once."""
    logits = head(hidden)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # at least float32
    index = targets[:, None]
    margin = logits.gather(-1, index).squeeze(-1) - _best_other(logits, targets)
    logprobs = logits.log_softmax(-1)
    del logits  # its last reference here: one [N, V] buffer less from now on
    in_place = not logprobs.requires_grad
    weighted = logprobs.exp()
    weighted = weighted.mul_(logprobs) if in_place else weighted * logprobs  # p log p
    expected = weighted.sum(-1)
    weighted = weighted.mul_(logprobs) if in_place else weighted * logprobs  # p (log p)^2
    second = weighted.sum(-1)
    del weighted
    target = logprobs.gather(-1, index).squeeze(-1)
    return torch.stack([target, expected, second, margin], -1), logprobs.argmax(-1)


def _best_other(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The largest logit other than the target's, per row, from the top two (no [N, V] copy); at a tie the value
    is the same whichever of the tied tokens topk names first."""
    values, indices = logits.topk(2, dim=-1)
    return torch.where(indices[:, 0] == targets, values[:, 1], values[:, 0])


def _head_argmax(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[None, torch.Tensor]:
    return None, head(hidden).argmax(-1)


def _head_nll(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, None]:
    return F.cross_entropy(head(hidden).float(), targets, reduction="none"), None


def _identity(values: torch.Tensor) -> torch.Tensor:
    return values


def positions_per_chunk(vocab_size: int, budget: int | None = None) -> int:
    """How many positions one chunk takes so that a [positions, vocabulary] tensor holds at most ``budget``
    elements (default :data:`VOCAB_ELEMENTS_PER_CHUNK`, read when called)."""
    return max(1, (budget or VOCAB_ELEMENTS_PER_CHUNK) // max(1, vocab_size))


def _chunked(compute, hidden: torch.Tensor, targets: torch.Tensor, head: Head | None, chunk: int | None,
             recompute: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:  # fmt: skip
    """``compute(head, hidden_chunk, targets_chunk)`` over the flattened positions; checkpointed if ``recompute``
    and gradients flow into ``hidden``. Returns the lists of its two outputs (None ones dropped)."""
    flat_hidden, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    head = head or _identity
    if chunk is None:
        vocab = flat_hidden.shape[-1] if head is _identity else _output_size(head, flat_hidden)
        chunk = positions_per_chunk(vocab)
    recompute = recompute and torch.is_grad_enabled() and flat_hidden.requires_grad
    firsts, seconds = [], []
    for start in range(0, flat_hidden.shape[0], chunk):
        piece = (head, flat_hidden[start : start + chunk], flat_targets[start : start + chunk])
        first, second = checkpoint(compute, *piece, use_reentrant=False) if recompute else compute(*piece)
        firsts += [] if first is None else [first]
        seconds += [] if second is None else [second]
    return firsts, seconds


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
    compute = _head_argmax if greedy_only else _head_stats
    floats, argmaxes = _chunked(compute, hidden, targets, head, chunk, recompute=not greedy_only)
    argmax = torch.cat([targets.new_zeros(0), *argmaxes])
    if greedy_only:
        return PositionStats(None, None, None, None, argmax).reshape(*targets.shape)
    stacked = torch.cat(floats) if floats else hidden.new_zeros((0, 4), dtype=torch.float32)
    return PositionStats(*stacked.unbind(-1), argmax).reshape(*targets.shape)


def target_nll(hidden: torch.Tensor, targets: torch.Tensor, head: Head | None = None, *,
               chunk: int | None = None) -> torch.Tensor:  # fmt: skip
    """-log p(target) of every position ([...], float32), as ``F.cross_entropy`` of the float32 logits gives it;
    from final hidden states ([..., H]) through ``head``, or from logits when ``head`` is None; ``chunk`` positions
    at a time, checkpointed when gradients flow (one chunk's logits alive in forward and in backward)."""
    values, _ = _chunked(_head_nll, hidden, targets, head, chunk, recompute=True)
    flat = torch.cat(values) if values else hidden.new_zeros(0, dtype=torch.float32)
    return flat.reshape(targets.shape)


def _output_size(head: Head, hidden: torch.Tensor) -> int:
    weight = getattr(head, "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    with torch.no_grad():
        return int(head(hidden[:1]).shape[-1])
