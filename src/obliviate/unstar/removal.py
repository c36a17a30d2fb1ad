"""Removing the association rather than hiding it: an unlikelihood term on the true answer's tokens, in the
model's own words, trained beside UnSTAR's anti-samples (``unlikelihood_weight``; 0 is the paper's UnSTAR).

Anti-samples teach a wrong answer with a misleading rationale; the true answer can keep much of its likelihood
and come back under sampling or a few relearning steps. The model's own greedy replies that still give the true
answer are the paths it leaks through: each becomes an example whose loss counts only the answer's tokens
(-log(1 - p) per token, bounded, so it stops once the answer is unlikely)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from obliviate.metrics.losses import unlikelihood
from obliviate.metrics.tokens import right_pad
from obliviate.training.engine import Engine


def unlikelihood_term(engine: Engine, spans: Sequence[tuple[list[int], list[int]]], weight: float,
                      batch_size: int) -> Callable[[], Callable[[torch.nn.Module], torch.Tensor] | None]:  # fmt: skip
    """For :func:`obliviate.training.sft.sft`'s ``extra``: each step, ``weight`` x the mean unlikelihood of the
    next ``batch_size`` answer spans (cycled; (token ids, answer mask) each, from ``answer_span_example``)."""
    cursor = 0

    def next_term() -> Callable[[torch.nn.Module], torch.Tensor] | None:
        nonlocal cursor
        if not spans or not weight:
            return None
        picked = [spans[(cursor + k) % len(spans)] for k in range(batch_size)]
        cursor += batch_size
        ids, attention = right_pad([w for w, _ in picked], engine.pad_id, engine.device)
        mask = right_pad([m for _, m in picked], 0, engine.device)[0]
        return lambda model: weight * unlikelihood(model(input_ids=ids, attention_mask=attention).logits, ids,
                                                   mask).mean()  # fmt: skip

    return next_term
