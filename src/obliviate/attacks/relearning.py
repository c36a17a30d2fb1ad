"""Relearning attack: fine-tune a copy of the unlearned model for a few steps on part of the forget set (the true
answers) and measure the forget metric on the rest. If forgetting only hid the answers, they come back fast.
``recovery`` = (after - before) / (before_unlearning - before): 0 nothing came back, 1 all of it; not reported
when unlearning lost less than MIN_LOST (nothing to recover)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.spec import AttackSpec, register
from obliviate.config import AntiSampleTrainingConfig
from obliviate.metrics.answers import answer_probability, answer_probability_of
from obliviate.training.engine import Engine
from obliviate.training.sft import sft

MIN_LOST = 0.05  # below this loss of the forget metric there is nothing to recover

register(AttackSpec("relearning", "do a few fine-tuning steps on part of the forget set bring the rest back?",
                    frozenset({"qa", "associations", "tofu", "muse-news"})))  # fmt: skip


def relearning_attack(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, train: Sequence[tuple[str, str]],
    measure: Callable[[torch.nn.Module], float], *, steps: int, learning_rate: float, seed: int = 0,
    before: float | None = None, before_unlearning: float | None = None, batch_size: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """SFT a copy of ``model`` on the ``train`` (question, answer) pairs: ``steps`` optimizer steps, each on
    ``batch_size`` pairs (default: all of them); ``measure(model)`` scores the held-back part before and after.
    ``before``: ``measure(model)`` when already known; ``before_unlearning``: the same score of the model before
    unlearning (for ``recovery``)."""
    if not train or steps == 0:
        return {"skipped": "no relearning steps" if steps == 0 else "nothing to train on"}
    before = measure(model) if before is None else before
    engine = Engine(copy.deepcopy(model), tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=learning_rate),
                    cpu=next(model.parameters()).device.type == "cpu")  # fmt: skip
    size = batch_size or len(train)
    passes = max(1, -(-steps * size // len(train)))
    losses = sft(engine, tokenizer, list(train), passes=passes, batch_size=size, seed=seed)[:steps]
    return _outcome(len(losses), len(train), before, measure(engine.unwrapped), before_unlearning)


def _outcome(steps: int, trained_on: int, before: float, after: float,
             before_unlearning: float | None) -> dict[str, Any]:  # fmt: skip
    """The attack's record: the score before and after relearning and, against the score before unlearning, the
    share of what unlearning took that came back (``recovery``)."""
    out: dict[str, Any] = {"steps": steps, "trained_on": trained_on, "before": before, "after": after,
                           "before_unlearning": before_unlearning, "recovery": None}  # fmt: skip
    if before_unlearning is not None:
        lost = before_unlearning - before
        if lost >= MIN_LOST:
            out["recovery"] = (after - before) / lost
        else:
            out["note"] = f"unlearning lowered the score by {lost:.3f} (< {MIN_LOST}): nothing to recover"
    return out


def relearning_on_texts(
    model: torch.nn.Module, pad_id: int, windows: Sequence[list[int]], measure: Callable[[torch.nn.Module], float],
    *, steps: int, learning_rate: float, before: float, before_unlearning: float | None, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The relearning attack on documents (MUSE): ``steps`` full-batch next-token steps on a copy of ``model`` over
    the token ``windows`` (part of the forget texts), then ``measure`` on the held-back part."""
    from obliviate.training.finetune import finetune_on_windows

    if not windows or steps == 0:
        return {"skipped": "no relearning steps" if steps == 0 else "nothing to train on"}
    trained = copy.deepcopy(model)
    stream = [w for _ in range(steps) for w in windows]  # one step per pass over the windows
    losses = finetune_on_windows(trained, stream, pad_id=pad_id, batch_size=len(windows),
                                 learning_rate=learning_rate, seed=seed, progress=False, desc="relearning")  # fmt: skip
    return _outcome(len(losses), len(windows), before, measure(trained), before_unlearning)


def relearning_on_answers(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], *,
    before_unlearning: float | None, steps: int, learning_rate: float, seed: int = 0,
    nlls: Sequence[float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The relearning attack on question-answer pairs (qa, TOFU): full-batch SFT on the first half, answer
    probability on the second half. ``before_unlearning``: that probability for the model before unlearning;
    ``nlls``: ``model``'s answer NLLs on ``pairs`` when already computed (no second forward pass)."""
    half = len(pairs) // 2
    if half == 0 and steps:
        return {"skipped": "fewer than 2 forget pairs"}
    train, test = list(pairs[:half]), list(pairs[half:])
    before = answer_probability(np.asarray(nlls[half:], dtype=float)) if nlls is not None else None
    out = relearning_attack(model, tokenizer, train, lambda m: answer_probability_of(m, tokenizer, test), steps=steps,
                            learning_rate=learning_rate, seed=seed, before=before,
                            before_unlearning=before_unlearning)  # fmt: skip
    return out if "skipped" in out else {**out, "measured_on": len(test)}
