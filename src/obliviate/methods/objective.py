"""What an objective method is: a small class that turns a forget batch (and, where it has them, a retain batch
and a batch of alternative answers - 'I don't know', or anti-samples) into one scalar loss composed from
``preference_losses``; the engine steps on it (``Engine.objective_step``). The frozen reference model is the model
before unlearning. Batches are chat-formatted question-answer rows, or plain sequences whose every token is a
target (the memorization benchmark), so every objective method runs on both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from obliviate.methods.reductions import NLLReduction, batch_nll
from obliviate.metrics.answers import (  # noqa: F401  (the batch types every objective method takes)
    QABatch,
    answer_logprob,
    answer_nll,
    encode_qa,
    logits_of,
    reference_logprob,
    sequence_batch,
)

IDK_ANSWERS = (
    "I don't know.", "I'm not sure.", "I have no information about that.", "I can't answer that.",
    "That is not something I know.", "I'm afraid I don't have that information.",
)  # fmt: skip


def idk_pairs(questions: Sequence[str], seed: int = 0) -> list[tuple[str, str]]:
    """Each question with one of the 'I don't know' answers, chosen deterministically."""
    return [(q, IDK_ANSWERS[(k + seed) % len(IDK_ANSWERS)]) for k, q in enumerate(questions)]


class ObjectiveMethod:
    """Base class. ``loss`` gets the model being trained, the frozen reference, and the batches."""

    name: ClassVar[str] = "objective"
    needs_reference: ClassVar[bool] = False
    needs_idk: ClassVar[bool] = False

    def __init__(self, retain_weight: float = 1.0, nll_reduction: NLLReduction = "tokens") -> None:
        self.retain_weight, self.nll_reduction = retain_weight, nll_reduction

    def loss(self, model: torch.nn.Module, reference: torch.nn.Module | None, forget: QABatch,
             retain: QABatch | None = None, idk: QABatch | None = None) -> torch.Tensor:  # fmt: skip
        raise NotImplementedError

    def nll(self, model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
        """``model``'s NLL on the batch's answers (every token of a plain sequence), reduced as configured."""
        return batch_nll(model, batch, self.nll_reduction)

    def retain_nll(self, model: torch.nn.Module, retain: QABatch | None) -> torch.Tensor:
        if retain is None or self.retain_weight == 0:
            return torch.zeros((), device=next(model.parameters()).device)
        return self.retain_weight * self.nll(model, retain)
