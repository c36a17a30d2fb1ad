"""Removing the association rather than hiding it: an unlikelihood term on the true answer's tokens, in the
model's own words, trained beside UnSTAR's anti-samples (``unlikelihood_weight``; 0 is the paper's UnSTAR).

Anti-samples teach a wrong answer with a misleading rationale; the true answer can keep much of its likelihood
and come back under sampling or a few relearning steps. The model's own greedy replies that still give the true
answer are the paths it leaks through: each becomes an example whose loss counts only the answer's tokens
(-log(1 - p) per token, bounded, so it stops once the answer is unlikely)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.losses import sequence_nll, unlikelihood
from obliviate.metrics.tokens import right_pad
from obliviate.models.chat import encode_chat_examples
from obliviate.training.engine import Engine


def sft_with_unlikelihood(engine: Engine, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                          spans: Sequence[tuple[list[int], list[int]]], weight: float, *, passes: int,
                          batch_size: int, train_on_prompt: bool = False, seed: int = 0, progress: bool = False,
                          desc: str = "SFT + unlikelihood") -> list[float]:  # fmt: skip
    """As :func:`obliviate.training.sft.sft` (``passes`` shuffled passes over the pairs), each step adding
    ``weight`` x the mean unlikelihood of ``batch_size`` answer spans (cycled); the loss of every step."""
    windows, masks = encode_chat_examples(tokenizer, pairs, train_on_prompt=train_on_prompt)
    rng, order, cursor = random.Random(seed), list(range(len(pairs))), 0
    losses: list[float] = []
    bar = tqdm(total=passes * -(-len(pairs) // batch_size), desc=desc, unit="step", leave=False, disable=not progress)
    for _ in range(passes):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = right_pad([windows[i] for i in rows], engine.pad_id, engine.device)
            target = right_pad([masks[i] for i in rows], 0, engine.device)[0]
            picked = [spans[(cursor + k) % len(spans)] for k in range(batch_size)] if spans else []
            cursor += batch_size
            span = None
            if picked:
                span = (*right_pad([w for w, _ in picked], engine.pad_id, engine.device),
                        right_pad([m for _, m in picked], 0, engine.device)[0])  # fmt: skip
            losses.append(engine.objective_step(_objective(batch, target, span, weight))["loss"])
            bar.update(1)
    bar.close()
    return losses


def _objective(batch: tuple[torch.Tensor, torch.Tensor], target: torch.Tensor,
               span: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, weight: float):  # fmt: skip
    """SFT NLL of ``batch`` (+ ``weight`` x the unlikelihood of the ``span`` rows); the guard watches the NLL."""
    ids, attention = batch

    def objective(model: torch.nn.Module):
        nll = sequence_nll(model(input_ids=ids, attention_mask=attention).logits, ids, target).mean()
        if span is None:
            return nll
        span_ids, span_attention, span_mask = span
        span_logits = model(input_ids=span_ids, attention_mask=span_attention).logits
        return nll + weight * unlikelihood(span_logits, span_ids, span_mask).mean(), nll

    return objective
