"""Attacks on a TOFU-unlearned model, each asking whether the forget answers are still in the weights:

- relearning: a few SFT steps on half the forget pairs; how much of the lost answer probability comes back on
  the other half (0: none, 1: back to the model before unlearning);
- paraphrase: the forget questions as TOFU paraphrases them; probability and ROUGE-L recall of the answers;
- quantization: answer probability with the linear weights rounded to 8 / 4 bits;
- membership: ROC of the answer log-likelihood, forget pairs (members) against never-trained authors' pairs."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.quantization import quantized_copy
from obliviate.config import AntiSampleTrainingConfig
from obliviate.metrics.roc import roc_summary
from obliviate.models.generation import chat_prompt, generate
from obliviate.tofu.data import TofuItem
from obliviate.tofu.evaluate import GREEDY, answer_nlls
from obliviate.tofu.metrics import answer_probability, rouge_l_recall
from obliviate.training.engine import Engine
from obliviate.training.sft import sft

# below this loss of answer probability there is nothing to recover: the recovery ratio is not reported
MIN_PROBABILITY_LOST = 0.05


def forget_probability(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                       pairs: Sequence[tuple[str, str]]) -> float:  # fmt: skip
    """TOFU's answer probability: mean over pairs of exp(-per-token NLL of the answer)."""
    return answer_probability(answer_nlls(model, tokenizer, pairs))


def relearning_attack(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
    probability_before_unlearning: float, *, steps: int, learning_rate: float, seed: int = 0,
    nlls: Sequence[float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """SFT a copy of ``model`` for ``steps`` full-batch steps on the first half of ``pairs``; measure the answer
    probability on the second half. ``probability_before_unlearning`` is that of the model before unlearning on
    the same second half. ``nlls``: ``model``'s answer NLLs on ``pairs`` when already computed. ``recovery`` is
    None when unlearning lost less than MIN_PROBABILITY_LOST."""
    half = len(pairs) // 2
    if half == 0 or steps == 0:
        return {"skipped": "no relearning steps" if steps == 0 else "fewer than 2 forget pairs"}
    train, test = pairs[:half], pairs[half:]
    if nlls is None:
        before = forget_probability(model, tokenizer, test)
    else:
        before = answer_probability(np.asarray(nlls[half:], dtype=float))
    engine = Engine(copy.deepcopy(model), tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=learning_rate))
    sft(engine, tokenizer, train, passes=steps, batch_size=len(train), seed=seed)
    after = forget_probability(engine.unwrapped, tokenizer, test)
    lost = probability_before_unlearning - before
    out = {"steps": steps, "trained_on": len(train), "measured_on": len(test),
           "probability_before_unlearning": probability_before_unlearning, "before": before, "after": after,
           "recovery": (after - before) / lost if lost >= MIN_PROBABILITY_LOST else None}  # fmt: skip
    if out["recovery"] is None:
        out["note"] = (
            f"unlearning lowered the answer probability by {lost:.3f} (< {MIN_PROBABILITY_LOST}): nothing to recover"
        )
    return out


def paraphrase_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      items: Sequence[TofuItem]) -> dict[str, Any]:  # fmt: skip
    """The answers' probability and ROUGE-L recall when the forget questions are asked as TOFU paraphrases
    them (items without a paraphrased question are skipped)."""
    asked = [x for x in items if x.paraphrased_question]
    if not asked:
        return {"skipped": "no paraphrased questions in the forget split"}
    pairs = [(x.paraphrased_question, x.answer) for x in asked]
    prompts = [chat_prompt(tokenizer, q) for q, _ in pairs]
    replies = [r[0] for r in generate(model, tokenizer, prompts, GREEDY)]
    return {"n": len(asked), "probability": forget_probability(model, tokenizer, pairs),
            "rouge_l_recall": rouge_l_recall(replies, [x.answer for x in asked])}  # fmt: skip


def quantization_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                        pairs: Sequence[tuple[str, str]], bits: Sequence[int]) -> dict[str, float]:  # fmt: skip
    """Forget-answer probability of round-to-nearest quantized copies of ``model``, per bit width."""
    return {f"{b}bit": forget_probability(quantized_copy(model, b), tokenizer, pairs) for b in bits}


def membership_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, members: Sequence[tuple[str, str]],
                      nonmembers: Sequence[tuple[str, str]],
                      member_nlls: Sequence[float] | None = None) -> dict[str, Any]:  # fmt: skip
    """ROC of the loss attack: score = minus the answer's per-token NLL (higher: more likely trained on).
    ``member_nlls``: the members' NLLs when already computed (e.g. by the TOFU evaluation)."""
    member = answer_nlls(model, tokenizer, members) if member_nlls is None else np.asarray(member_nlls, dtype=float)
    return roc_summary(-member, -answer_nlls(model, tokenizer, nonmembers))
