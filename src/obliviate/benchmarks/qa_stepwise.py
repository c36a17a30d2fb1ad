"""The step-wise methods (SGA, TA, TAU) on question-answer facts: each fact is judged on its own by its
answer-token MA (the share of answer tokens the model predicts greedily under teacher forcing), against the same
score on never-trained facts (``benchmark.holdout``): the never-seen band mu +- k sigma, the per-sample selection
and the stop rule work as on sequences, with the loss on the answer tokens only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.benchmarks.spec import RunContext
from obliviate.config import TrainingConfig
from obliviate.data import FactSet
from obliviate.methods.rules import Thresholds
from obliviate.metrics.reference import ReferenceStats
from obliviate.models.chat import encode_chat_examples
from obliviate.training.engine import Engine
from obliviate.unlearning.loop import UnlearningLoop


def _encoded(tokenizer: PreTrainedTokenizerBase, facts: Sequence) -> tuple[list[list[int]], list[list[int]]]:
    return encode_chat_examples(tokenizer, [(f.question, f.answer) for f in facts])


def unlearn_stepwise_qa(ctx: RunContext, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                        forget: FactSet, holdout: FactSet) -> tuple[torch.nn.Module, dict[str, Any]]:  # fmt: skip
    """Run ctx's step-wise method on ``forget``; returns (the resulting model, what the run records)."""
    b = ctx.benchmark
    windows, masks = _encoded(tokenizer, forget)
    ref_windows, ref_masks = _encoded(tokenizer, holdout)
    training = TrainingConfig(learning_rate=b.learning_rate, max_steps=b.max_steps, seed=ctx.seed)
    engine = Engine(model, tokenizer.pad_token_id, training, cpu=next(model.parameters()).device.type == "cpu")
    reference = engine.score_ma(engine.unwrapped, ref_windows, 8, ref_masks)
    thresholds = Thresholds.from_reference(ReferenceStats.from_values(reference.tolist()), b.k_sigma)
    method = ctx.method_spec.stepwise(ctx.method, b.stop, thresholds)
    method.calibrate(engine, windows, ref_windows, masks, ref_masks)
    loop = UnlearningLoop(engine, method, windows, list(forget.ids), rule=b.stop, thresholds=thresholds,
                          max_steps=b.max_steps, progress=ctx.progress, masks=masks)  # fmt: skip
    result = loop.run()
    unlearned = method.result(engine).eval()
    after = engine.score_ma(unlearned, windows, 8, masks)
    return unlearned, {
        "answer_ma": {"before": result.trace[0]["ma"], "after": dict(zip(forget.ids, after.tolist()))},
        "thresholds": {"tau": thresholds.tau, "band": [thresholds.lower, thresholds.upper],
                       "reference_mean": float(reference.mean())},
        "stop_reason": result.stop_reason, "steps": result.steps,
        "losses": [r["terms"]["loss"] for r in result.trace if "terms" in r],
    }  # fmt: skip
