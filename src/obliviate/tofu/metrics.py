"""TOFU's metrics (Maini et al. 2024) on per-question numbers, written to match the reference implementation
(locuslab/TOFU, and OpenUnlearning after it) value for value.

Inputs are per-token MEAN negative log-likelihoods of answers given their question ("avg NLL"), so that
exp(-avg_nll) = P(a|q)^(1/|a|), the length-normalised answer probability that TOFU uses everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from scipy.stats import hmean, ks_2samp

from obliviate.metrics.answers import answer_probability, rouge_l_recall

__all__ = ["answer_probability", "rouge_l_recall"]  # re-exported: TOFU's metric set

TruthRatioMean = Literal["geometric", "arithmetic"]

UTILITY_PARTS = tuple(
    f"{split} {metric}"
    for split in ("retain", "real_authors", "world_facts")
    for metric in ("probability", "rouge_l_recall", "truth_ratio")
)


def truth_ratios(
    paraphrased_nll: Sequence[float], perturbed_nll: Sequence[Sequence[float]], mean: TruthRatioMean = "geometric"
) -> np.ndarray:
    """Per question R = M_k P(a_k perturbed)^(1/|a_k|) / P(a paraphrased)^(1/|a|), R > 1: the wrong answers are
    the likelier. ``mean`` M over the k perturbed answers: 'geometric' = exp(avg_nll(paraphrased) - mean_k
    avg_nll(perturbed_k)), as TOFU's and OpenUnlearning's code (and forget quality, always); 'arithmetic' = the
    mean of the length-normalised probabilities, as the TOFU paper writes it."""
    para = np.asarray(paraphrased_nll, dtype=float)
    pert = np.asarray(perturbed_nll, dtype=float)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"perturbed_nll must be [questions, k]; got {pert.shape} for {para.shape[0]} questions")
    if mean == "arithmetic":
        return np.exp(para[:, None] - pert).mean(axis=1)
    return np.exp(para - pert.mean(axis=1))


def forget_truth_ratio(ratios: Sequence[float]) -> float:
    """Forget split: best when true and false answers are equally likely, mean(min(R, 1/R)) (symmetric: TOFU's
    code takes it of 1/R, OpenUnlearning of R)."""
    r = np.asarray(ratios, dtype=float)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def retain_truth_ratio(ratios: Sequence[float]) -> float:
    """Retain, real authors, world facts: best when the true answer is much likelier, mean(max(0, 1 - R)) (TOFU's
    code: max(0, 1 - 1/x) of its x = 1/R; OpenUnlearning: max(0, 1 - R))."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=float))))


def forget_quality(unlearned_ratios: Sequence[float], retain_model_ratios: Sequence[float]) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test between the truth ratios of the unlearned model and of
    the model never trained on the forget split, on the forget split (high: indistinguishable)."""
    return float(ks_2samp(np.asarray(unlearned_ratios), np.asarray(retain_model_ratios)).pvalue)


def normalised_answer_probability(correct_nll: Sequence[float], wrong_nll: Sequence[Sequence[float]]) -> float:
    """Real authors / world facts: mean of P(correct) / (P(correct) + sum_k P(wrong_k)), each length-normalised."""
    correct = np.exp(-np.asarray(correct_nll, dtype=float))
    wrong = np.exp(-np.asarray(wrong_nll, dtype=float)).sum(axis=1)
    return float(np.mean(correct / (correct + wrong)))


def model_utility(parts: Mapping[str, float]) -> float:
    """Harmonic mean of the nine utility numbers (probability, ROUGE-L recall, truth ratio on retain, real
    authors and world facts); 0 when any of them is 0."""
    missing = [name for name in UTILITY_PARTS if name not in parts]
    if missing:
        raise ValueError(f"model utility needs all nine parts; missing {missing}")
    values = np.asarray([parts[name] for name in UTILITY_PARTS], dtype=float)
    if (values < 0).any():
        raise ValueError("utility parts must be >= 0")
    return 0.0 if (values == 0).any() else float(hmean(values))
