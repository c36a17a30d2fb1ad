"""Question-answer unlearning baselines as small classes: each turns a forget batch (and, where it has one, a
retain batch and an 'I don't know' batch) into one scalar loss, composed from ``preference_losses``. The engine
steps on it (``Engine.objective_step``); the frozen reference model is the model before unlearning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.methods.losses import sequence_nll, token_nll
from obliviate.methods.preference_losses import (
    activation_mse,
    dpo_loss,
    grad_diff_loss,
    npo_loss,
    rmu_control_vector,
    rmu_loss,
    simnpo_loss,
    token_kl,
)
from obliviate.metrics.tokens import right_pad
from obliviate.training.sft import encode_chat_examples

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


def _logits(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def answer_logprob(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Summed log-likelihood of each row's answer tokens [B] (<= 0)."""
    return -token_nll(_logits(model, batch), batch.input_ids, batch.target_mask).sum(dim=1)


def answer_nll(model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    """Per-token mean NLL of each row's answer [B] (>= 0)."""
    return sequence_nll(_logits(model, batch), batch.input_ids, batch.target_mask)


@torch.no_grad()
def reference_logprob(reference: torch.nn.Module, batch: QABatch) -> torch.Tensor:
    return answer_logprob(reference, batch)


class QAMethod:
    """Base class. ``loss`` gets the model being trained, the frozen reference, and the batches."""

    name: ClassVar[str] = "qa"
    needs_reference: ClassVar[bool] = False
    needs_idk: ClassVar[bool] = False

    def __init__(self, retain_weight: float = 1.0) -> None:
        self.retain_weight = retain_weight

    def loss(self, model: torch.nn.Module, reference: torch.nn.Module | None, forget: QABatch,
             retain: QABatch | None = None, idk: QABatch | None = None) -> torch.Tensor:  # fmt: skip
        raise NotImplementedError

    def _retain_nll(self, model: torch.nn.Module, retain: QABatch | None) -> torch.Tensor:
        if retain is None or self.retain_weight == 0:
            return torch.zeros((), device=next(model.parameters()).device)
        return self.retain_weight * answer_nll(model, retain).mean()


class GradientAscentQA(QAMethod):
    """Ascend the forget answers' NLL; no retain term."""

    name = "ga"

    def loss(self, model, reference, forget, retain=None, idk=None):
        return -answer_nll(model, forget).mean()


class GradDiff(QAMethod):
    """Ascend on forget, descend on retain: the retain term is the NLL, or KL(reference || model)."""

    name = "graddiff"

    def __init__(self, retain_weight: float = 1.0, retain_term: str = "nll") -> None:
        super().__init__(retain_weight)
        if retain_term not in ("nll", "kl"):
            raise ValueError(f"retain_term must be 'nll' or 'kl', not {retain_term!r}")
        self.retain_term = retain_term

    @property  # type: ignore[override]
    def needs_reference(self) -> bool:
        """Only the KL retain term compares with the frozen model."""
        return self.retain_term == "kl"

    def loss(self, model, reference, forget, retain=None, idk=None):
        forget_nll = answer_nll(model, forget).mean()
        if retain is None:
            return grad_diff_loss(forget_nll, torch.zeros_like(forget_nll), retain_weight=0.0)
        if self.retain_term == "nll":
            term = answer_nll(model, retain).mean()
        else:
            with torch.no_grad():
                ref_logits = _logits(reference, retain)
            term = token_kl(_logits(model, retain)[:, :-1], ref_logits[:, :-1], retain.target_mask[:, 1:])
        return grad_diff_loss(forget_nll, term, retain_weight=self.retain_weight)


class NPO(QAMethod):
    """Negative preference optimisation on forget answers, plus the retain NLL."""

    name = "npo"
    needs_reference = True

    def __init__(self, beta: float = 0.1, retain_weight: float = 1.0) -> None:
        super().__init__(retain_weight)
        self.beta = beta

    def loss(self, model, reference, forget, retain=None, idk=None):
        forget_term = npo_loss(answer_logprob(model, forget), reference_logprob(reference, forget), self.beta)
        return forget_term + self._retain_nll(model, retain)


class SimNPO(QAMethod):
    """Reference-free, length-normalised NPO, plus the retain NLL."""

    name = "simnpo"

    def __init__(self, beta: float = 4.5, gamma: float = 0.0, retain_weight: float = 1.0) -> None:
        super().__init__(retain_weight)
        self.beta, self.gamma = beta, gamma

    def loss(self, model, reference, forget, retain=None, idk=None):
        return simnpo_loss(answer_nll(model, forget), self.beta, self.gamma) + self._retain_nll(model, retain)


class IdkNLL(QAMethod):
    """Fine-tune the forget questions towards 'I don't know' answers, plus the retain NLL."""

    name = "idknll"
    needs_idk = True

    def loss(self, model, reference, forget, retain=None, idk=None):
        if idk is None:
            raise ValueError("IdkNLL needs the 'I don't know' batch")
        return answer_nll(model, idk).mean() + self._retain_nll(model, retain)


class AntiSampleNLL(IdkNLL):
    """UnSTAR's training step on a QA benchmark: fine-tune the forget questions towards anti-samples (wrong
    answers, or misleading rationales ending in one), passed as the alternative batch, plus the retain NLL."""

    name = "antisample"


class IdkDPO(QAMethod):
    """DPO preferring 'I don't know' (chosen) over the forget answer (rejected), plus the retain NLL."""

    name = "idkdpo"
    needs_reference = True
    needs_idk = True

    def __init__(self, beta: float = 0.1, retain_weight: float = 1.0) -> None:
        super().__init__(retain_weight)
        self.beta = beta

    def loss(self, model, reference, forget, retain=None, idk=None):
        if idk is None:
            raise ValueError("IdkDPO needs the 'I don't know' batch")
        chosen = answer_logprob(model, idk), reference_logprob(reference, idk)
        rejected = answer_logprob(model, forget), reference_logprob(reference, forget)
        preference = dpo_loss(*chosen, *rejected, self.beta)
        return preference + self._retain_nll(model, retain)


class RMU(QAMethod):
    """Representation misdirection at one layer: forget activations towards c * u, retain activations kept
    at the reference's (the authors also update only a few layers; here every trainable weight moves)."""

    name = "rmu"
    needs_reference = True

    def __init__(self, layer: int = 7, coefficient: float = 20.0, retain_weight: float = 100.0, seed: int = 0) -> None:
        super().__init__(retain_weight)
        self.layer, self.coefficient, self.seed = layer, coefficient, seed
        self._control: torch.Tensor | None = None

    def _hidden(self, model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        if not 0 < self.layer < len(out.hidden_states):
            raise ValueError(f"RMU layer must be in 1..{len(out.hidden_states) - 1}, got {self.layer}")
        return out.hidden_states[self.layer]

    def loss(self, model, reference, forget, retain=None, idk=None):
        h_forget = self._hidden(model, forget)
        if self._control is None:
            self._control = rmu_control_vector(h_forget.shape[-1], self.coefficient, self.seed)
        control = self._control.to(h_forget.device, h_forget.dtype)
        if retain is None:
            return activation_mse(h_forget, control.expand_as(h_forget), forget.attention_mask)
        with torch.no_grad():
            h_ref = self._hidden(reference, retain)
        return rmu_loss(h_forget, control, self._hidden(model, retain), h_ref, self.retain_weight,
                        forget_mask=forget.attention_mask, retain_mask=retain.attention_mask)  # fmt: skip


QA_METHODS: dict[str, type[QAMethod]] = {
    cls.name: cls for cls in (GradientAscentQA, GradDiff, NPO, SimNPO, IdkNLL, AntiSampleNLL, IdkDPO, RMU)
}
