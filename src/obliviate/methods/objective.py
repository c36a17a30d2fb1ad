"""What an objective method is: a small class that turns a forget batch (and, where it has them, a retain batch
and a batch of alternative answers - 'I don't know', or anti-samples) into one scalar loss composed from
``preference_losses``; the engine steps on it (``Engine.objective_step``). The frozen reference model is the model
before unlearning. Batches are chat-formatted question-answer rows, or plain sequences whose every token is a
target (the memorization benchmark), so every objective method runs on both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.losses import sequence_nll, token_nll
from obliviate.metrics.tokens import right_pad
from obliviate.models.chat import encode_chat_examples

IDK_ANSWERS = (
    "I don't know.", "I'm not sure.", "I have no information about that.", "I can't answer that.",
    "That is not something I know.", "I'm afraid I don't have that information.",
)  # fmt: skip


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


def idk_pairs(questions: Sequence[str], seed: int = 0) -> list[tuple[str, str]]:
    """Each question with one of the 'I don't know' answers, chosen deterministically."""
    return [(q, IDK_ANSWERS[(k + seed) % len(IDK_ANSWERS)]) for k, q in enumerate(questions)]


def logits_of(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def answer_logprob(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Summed log-likelihood of each row's answer tokens [B] (<= 0)."""
    return -token_nll(logits_of(model, batch), batch.input_ids, batch.target_mask).sum(dim=1)


def answer_nll(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Per-token mean NLL of each row's answer [B] (>= 0)."""
    return sequence_nll(logits_of(model, batch), batch.input_ids, batch.target_mask)


@torch.no_grad()
def reference_logprob(reference: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return answer_logprob(reference, batch)


class ObjectiveMethod:
    """Base class. ``loss`` gets the model being trained, the frozen reference, and the batches."""

    name: ClassVar[str] = "objective"
    needs_reference: ClassVar[bool] = False
    needs_idk: ClassVar[bool] = False

    def __init__(self, retain_weight: float = 1.0) -> None:
        self.retain_weight = retain_weight

    def loss(self, model: torch.nn.Module, reference: torch.nn.Module | None, forget: QABatch,
             retain: QABatch | None = None, idk: QABatch | None = None) -> torch.Tensor:  # fmt: skip
        raise NotImplementedError

    def retain_nll(self, model: torch.nn.Module, retain: QABatch | None) -> torch.Tensor:
        if retain is None or self.retain_weight == 0:
            return torch.zeros((), device=next(model.parameters()).device)
        return self.retain_weight * answer_nll(model, retain).mean()


def sequence_batch(windows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> QABatch:
    """Plain token windows as a batch whose every token after the first is a target (memorization benchmark)."""
    input_ids, attention = right_pad([list(w) for w in windows], pad_id, device)
    return QABatch(input_ids, attention, attention)
