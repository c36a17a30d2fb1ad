"""How the question-answer methods turn a batch's per-token NLLs into one number, in the field's two conventions,
and which tokens the reference implementations count.

- ``"tokens"`` (OpenUnlearning, TOFU): Hugging Face's ``outputs.loss`` on labels that are -100 outside the answers -
  the sum of every answer token's NLL in the batch over the number of answer tokens in the batch. A long answer
  weighs more than a short one.
- ``"answers"``: each answer's per-token mean NLL, then the mean over the answers. Every answer weighs the same.

Both are equal when every answer has the same length. On plain sequences (the memorization benchmark) every token
after the first is a target, as in OpenUnlearning's pretraining data (it never labels token 0)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from obliviate.methods.spec import MethodConfig
from obliviate.metrics.answers import QABatch, answer_token_nll
from obliviate.metrics.losses import per_target_mean

NLLReduction = Literal["tokens", "answers"]


class NLLReductionConfig(MethodConfig):
    """A method config whose loss has an NLL term (forget, retain or 'I don't know' answers)."""

    nll_reduction: NLLReduction = Field(
        "tokens",
        description="how an NLL term averages a batch: 'tokens' - one mean over all the batch's answer tokens "
        "(OpenUnlearning / TOFU, HF outputs.loss); 'answers' - the mean of each answer's per-token mean",
    )


def reference_labels(batch: QABatch) -> torch.Tensor:
    """Where the reference's unshifted ``labels`` are not -100 [B, L]: the answer tokens (QA batches), every token
    but the first (plain sequences)."""
    labels = batch.target_mask.clone()
    labels[:, 0] = 0
    return labels


def answer_lengths(batch: QABatch) -> torch.Tensor:
    """|y| per row [B] as SimNPO's reference counts it: ``(labels != -100).sum(-1)``."""
    return reference_labels(batch).sum(dim=1)


def reduce_token_nll(nll: torch.Tensor, batch: QABatch, reduction: NLLReduction) -> torch.Tensor:
    """One scalar from the batch's next-token NLL [B, L-1] (zero outside its targets), reduced by ``reduction``."""
    if reduction == "answers":
        return per_target_mean(nll, batch.target_mask).mean()
    if reduction == "tokens":
        return nll.sum() / batch.target_mask[:, 1:].sum().clamp_min(1)
    raise ValueError(f"nll_reduction must be 'tokens' or 'answers', not {reduction!r}")


def batch_nll(model: torch.nn.Module, batch: QABatch, reduction: NLLReduction) -> torch.Tensor:
    """``model``'s NLL on the batch's target tokens, one scalar, reduced by ``reduction`` (from the final hidden
    states in chunks: no [B, L, V] logits)."""
    return reduce_token_nll(answer_token_nll(model, batch), batch, reduction)
