"""Probes of a fact beyond the greedy answer - what an unlearned model still holds when its first reply is wrong:

- multiple choice: the true answer against same-type distractors, chosen by answer likelihood (per-token mean
  NLL of each candidate given the question); an association that is removed, not hidden, falls to chance;
- leakage under sampling (leak@k): the share of questions for which any of ``k`` replies sampled at temperature
  1 gives the true answer;
- the true answer's mean per-token log-probability.

Each works on plain (question, answer) facts with any judge that has ``matches(replies, answers)``, so every
benchmark with question-answer facts can use them. Everything is batched across all questions at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.answers import answer_nlls
from obliviate.models.generation import Sampling, chat_prompt, generate


class AnswerJudge(Protocol):
    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]: ...


@dataclass(frozen=True)
class Choice:
    """A question, its true answer and wrong answers of the same type."""

    question: str
    answer: str
    distractors: tuple[str, ...]


@torch.no_grad()
def multiple_choice(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items: Sequence[Choice],
                    batch_size: int = 32) -> dict[str, Any]:  # fmt: skip
    """Accuracy of picking the true answer (lowest per-token NLL among the candidates), the chance level (mean of
    1 / candidates) and per item the true answer's rank (0: picked) - one batched pass over every candidate."""
    items = [c for c in items if c.distractors]
    if not items:
        return {"accuracy": float("nan"), "chance": float("nan"), "n": 0, "items": []}
    pairs = [(c.question, candidate) for c in items for candidate in (c.answer, *c.distractors)]
    nll = answer_nlls(model, tokenizer, pairs, batch_size=batch_size)
    out, start = [], 0
    for c in items:
        scores = nll[start : start + 1 + len(c.distractors)]
        start += len(scores)
        out.append({"question": c.question, "answer": c.answer, "rank": int((scores[1:] < scores[0]).sum()),
                    "nll": scores.round(4).tolist()})  # fmt: skip
    return {
        "accuracy": float(np.mean([o["rank"] == 0 for o in out])),
        "chance": float(np.mean([1 / (1 + len(c.distractors)) for c in items])),
        "n": len(out), "items": out,
    }  # fmt: skip


@torch.no_grad()
def leak_at_k(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, facts: Sequence[tuple[str, str]],
              judge: AnswerJudge, k: int = 16, *, temperature: float = 1.0, max_new_tokens: int = 32, seed: int = 0,
              batch_size: int = 32) -> dict[str, Any]:  # fmt: skip
    """leak@k: share of questions for which at least one of ``k`` sampled replies gives the true answer, and per
    question how many did."""
    if not facts:
        return {"leak": float("nan"), "k": k, "n": 0, "items": []}
    sampling = Sampling(temperature=temperature, max_new_tokens=max_new_tokens, n=k)
    prompts = [chat_prompt(tokenizer, q) for q, _ in facts]
    replies = generate(model, tokenizer, prompts, sampling, batch_size=max(1, batch_size // k), seed=seed)
    flat = judge.matches([r for rs in replies for r in rs], [a for (_, a), rs in zip(facts, replies) for _ in rs])
    hits = np.asarray(flat, dtype=bool).reshape(len(facts), k).sum(1)
    items = [{"question": q, "answer": a, "hits": int(h)} for (q, a), h in zip(facts, hits)]
    return {"leak": float((hits > 0).mean()), "k": k, "n": len(facts), "mean_hit_rate": float(hits.mean() / k),
            "items": items}  # fmt: skip


@torch.no_grad()
def true_answer_logprob(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                        facts: Sequence[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    """Mean per-token log-probability of each true answer given its question, and their mean."""
    if not facts:
        return {"mean": float("nan"), "n": 0, "values": []}
    values = -answer_nlls(model, tokenizer, list(facts))
    return {"mean": float(values.mean()), "n": len(values), "values": values.round(4).tolist()}
