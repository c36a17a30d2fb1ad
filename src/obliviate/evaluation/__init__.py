"""Evaluations of what unlearning must not break: zero-shot multiple choice and perplexity."""

from obliviate.evaluation.utility import (
    MultipleChoiceItem,
    evaluate_utility,
    load_multiple_choice,
    multiple_choice_accuracy,
    perplexity,
    score_continuations,
)

__all__ = [
    "MultipleChoiceItem",
    "evaluate_utility",
    "load_multiple_choice",
    "multiple_choice_accuracy",
    "perplexity",
    "score_continuations",
]
