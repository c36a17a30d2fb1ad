"""Scoring answers: chat-formatted (question, answer) batches whose loss counts the answer tokens only, each
answer's log-likelihood and per-token NLL (from the final hidden states, a chunk of positions at a time), TOFU's
answer probability and ROUGE recall. Shared by the methods (their losses), the evaluations and the attacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.losses import per_target_mean
from obliviate.metrics.teacher_forcing import final_states
from obliviate.metrics.tokens import right_pad
from obliviate.metrics.vocab_stats import target_nll
from obliviate.models.chat import encode_chat_examples


@dataclass(frozen=True)
class QABatch:
    """Chat-formatted (question, answer) rows, right-padded; ``target_mask`` marks the answer tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_mask: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def encode_qa(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], device: torch.device) -> QABatch:
    windows, masks = encode_chat_examples(tokenizer, pairs)
    input_ids, attention = right_pad(windows, tokenizer.pad_token_id or 0, device)
    target = right_pad(masks, 0, device)[0]
    return QABatch(input_ids, attention, target)


def logits_of(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def answer_token_nll(model: torch.nn.Module, batch: QABatch, *, chunk: int | None = None) -> torch.Tensor:
    """Next-token NLL [B, L-1], zero outside ``target_mask``: :func:`token_nll` of the model's logits, computed from
    the final hidden states ``chunk`` positions at a time (checkpointed), so the [B, L, V] logits never exist."""
    states, head, _ = final_states(model, batch.input_ids, batch.attention_mask)
    nll = target_nll(states[:, :-1], batch.input_ids[:, 1:], head, chunk=chunk)
    return nll * batch.target_mask[:, 1:].to(nll.dtype)


def answer_logprob(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Summed log-likelihood of each row's answer tokens [B] (<= 0)."""
    return -answer_token_nll(model, batch).sum(dim=1)


def answer_nll(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Per-token mean NLL of each row's answer [B] (>= 0)."""
    return per_target_mean(answer_token_nll(model, batch), batch.target_mask)


@torch.no_grad()
def reference_logprob(reference: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return answer_logprob(reference, batch)


def sequence_batch(windows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> QABatch:
    """Plain token windows as a batch whose every token after the first is a target (memorization benchmark)."""
    input_ids, attention = right_pad([list(w) for w in windows], pad_id, device)
    return QABatch(input_ids, attention, attention)


@torch.no_grad()
def answer_nlls(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], batch_size: int = 16
) -> np.ndarray:
    """Per-token mean NLL of each answer given its question (chat-formatted, answer tokens only)."""
    device = next(model.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))  # less padding
    values = np.zeros(len(pairs))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        values[rows] = answer_nll(model, encode_qa(tokenizer, [pairs[i] for i in rows], device)).float().cpu().numpy()
    return values


def answer_probability(answer_nll: Sequence[float]) -> float:
    """Retain / forget split: mean P(a|q)^(1/|a|)."""
    return float(np.mean(np.exp(-np.asarray(answer_nll, dtype=float))))


def answer_probability_of(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                          pairs: Sequence[tuple[str, str]]) -> float:  # fmt: skip
    """TOFU's answer probability of ``model`` on (question, answer) pairs."""
    return answer_probability(answer_nlls(model, tokenizer, pairs))


def rouge_recalls(
    predictions: Sequence[str], references: Sequence[str], rouge_types: Sequence[str] = ("rougeL",)
) -> dict[str, np.ndarray]:
    """Per generation its ROUGE recall against its reference answer for each of ``rouge_types`` (rouge-score's
    names: 'rouge1', 'rougeL'), stemmed, as TOFU and OpenUnlearning."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=True)
    scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references, strict=True)]
    return {kind: np.array([score[kind].recall for score in scores]) for kind in rouge_types}


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L recall of generations against the reference answers (rouge-score, stemmed, as TOFU)."""
    return float(np.mean(rouge_recalls(predictions, references)["rougeL"]))
