"""TOFU's evaluation of one model: per split the answer probability, ROUGE-1 and ROUGE-L recall of greedy
answers and the truth ratio (per question and aggregated), then model utility; forget quality compares two
evaluations.

As in the reference implementation: the forget and retain splits use the original answer for probability and
ROUGE and the paraphrased answer against the perturbed ones for the truth ratio; real authors and world facts
use the answer itself against the perturbed ones, and a probability normalised over the answer options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.answers import answer_nlls, rouge_recalls
from obliviate.models.generation import Sampling, chat_prompt, generate
from obliviate.tofu.data import TofuItem, load_split
from obliviate.tofu.metrics import (
    TruthRatioMean,
    answer_probability,
    forget_quality,
    forget_truth_ratio,
    model_utility,
    normalised_answer_probability,
    retain_truth_ratio,
    truth_ratios,
)

GREEDY = Sampling(max_new_tokens=64)


@dataclass(frozen=True)
class TofuEvalSets:
    forget: list[TofuItem]
    retain: list[TofuItem]
    real_authors: list[TofuItem]
    world_facts: list[TofuItem]

    @classmethod
    def load(cls, root: str, forget_split: str = "forget01", limit: int | None = None) -> TofuEvalSets:
        """The perturbed evaluation files of a TOFU folder, each cut to ``limit`` items (None: all)."""
        names = (f"{forget_split}_perturbed", "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")
        return cls(*(load_split(name, root)[:limit] for name in names))


def _perturbed_nlls(model, tokenizer, items: Sequence[TofuItem], batch_size: int) -> np.ndarray:
    k = min(len(x.perturbed_answers) for x in items)
    if k == 0:
        raise ValueError("every evaluation item needs perturbed answers")
    pairs = [(x.question, x.perturbed_answers[j]) for x in items for j in range(k)]
    return answer_nlls(model, tokenizer, pairs, batch_size).reshape(len(items), k)


def split_likelihoods(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items: Sequence[TofuItem], *, options: bool,
    batch_size: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """Answer probability and truth ratios on one split, from teacher-forced likelihoods only (no generation).
    ``options``: real authors / world facts (probability normalised over the answer and its perturbations; the
    answer itself is the 'true' side)."""
    answers = answer_nlls(model, tokenizer, [(x.question, x.answer) for x in items], batch_size)
    perturbed = _perturbed_nlls(model, tokenizer, items, batch_size)
    if options:
        probability = normalised_answer_probability(answers, perturbed)
        true_side = answers
    else:
        probability = answer_probability(answers)
        true_side = answer_nlls(model, tokenizer, [(x.question, x.paraphrased_answer or x.answer) for x in items],
                                batch_size)  # fmt: skip
    return {"probability": probability, "truth_ratios": truth_ratios(true_side, perturbed).tolist(),
            "truth_ratios_arithmetic": truth_ratios(true_side, perturbed, "arithmetic").tolist(), "n": len(items),
            "answer_nlls": answers.tolist()}  # fmt: skip


def evaluate_split(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items: Sequence[TofuItem], *, options: bool,
    batch_size: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """:func:`split_likelihoods` plus the ROUGE-1 and ROUGE-L recall of greedy answers (and the answers)."""
    out = split_likelihoods(model, tokenizer, items, options=options, batch_size=batch_size)
    prompts = [chat_prompt(tokenizer, x.question) for x in items]
    replies = [r[0] for r in generate(model, tokenizer, prompts, GREEDY, batch_size=batch_size)]
    recalls = rouge_recalls(replies, [x.answer for x in items], ("rouge1", "rougeL"))
    return {**out, "rouge1_recall": float(recalls["rouge1"].mean()), "rouge_l_recall": float(recalls["rougeL"].mean()),
            "replies": replies}  # fmt: skip


def scored_truth_ratios(split: dict[str, Any], mean: TruthRatioMean) -> list[float]:
    """A split's per-question truth ratios with the perturbed answers averaged the ``mean`` way."""
    return split["truth_ratios_arithmetic" if mean == "arithmetic" else "truth_ratios"]


def evaluate_tofu(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, sets: TofuEvalSets, batch_size: int = 16,
    truth_ratio_mean: TruthRatioMean = "geometric",
) -> dict[str, Any]:  # fmt: skip
    """Every split, the forget truth ratio score and model utility (their truth ratios averaging the perturbed
    answers the ``truth_ratio_mean`` way; forget quality's are always geometric)."""
    was_training = model.training
    model.eval()
    out: dict[str, Any] = {
        "forget": evaluate_split(model, tokenizer, sets.forget, options=False, batch_size=batch_size),
        "retain": evaluate_split(model, tokenizer, sets.retain, options=False, batch_size=batch_size),
        "real_authors": evaluate_split(model, tokenizer, sets.real_authors, options=True, batch_size=batch_size),
        "world_facts": evaluate_split(model, tokenizer, sets.world_facts, options=True, batch_size=batch_size),
    }
    model.train(was_training)
    out["truth_ratio_mean"] = truth_ratio_mean
    out["forget_truth_ratio"] = forget_truth_ratio(scored_truth_ratios(out["forget"], truth_ratio_mean))
    parts = {}
    for split in ("retain", "real_authors", "world_facts"):
        parts[f"{split} probability"] = out[split]["probability"]
        parts[f"{split} rouge_l_recall"] = out[split]["rouge_l_recall"]
        parts[f"{split} truth_ratio"] = retain_truth_ratio(scored_truth_ratios(out[split], truth_ratio_mean))
    out["utility_parts"] = parts
    out["model_utility"] = model_utility(parts)
    return out


def forget_quality_against(evaluation: dict[str, Any], retain_model_evaluation: dict[str, Any]) -> float:
    """KS-test forget quality of an evaluated model against the retain-only model's evaluation (geometric truth
    ratios, as TOFU's and OpenUnlearning's code, whatever the evaluation's ``truth_ratio_mean``)."""
    return forget_quality(evaluation["forget"]["truth_ratios"], retain_model_evaluation["forget"]["truth_ratios"])
