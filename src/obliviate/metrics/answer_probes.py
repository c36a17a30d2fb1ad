"""Probes of a fact beyond the greedy answer - what an unlearned model still holds when its first reply is wrong:

- multiple choice: the true answer against same-type distractors, chosen by answer likelihood (per-token mean
  NLL of each candidate given the question); an association that is removed, not hidden, falls to chance;
- leakage under sampling (leak@k): the share of questions for which any of ``k`` replies sampled at temperature
  1 gives the true answer;
- the true answer's mean per-token log-probability.

Each works on plain (question, answer) facts with any judge that has ``matches(replies, answers)``, so every
benchmark with question-answer facts can use them. Everything is batched across all questions at once.

Likelihoods are read in the model's own words where a ``frame`` is known: the start of the model's reply up to
the answer (``frame_of``: "The capital of France is" from "The capital of France is Paris."), each candidate
scored as its continuation (summed log-probability of the candidate's tokens). A chat model rarely replies with a
bare answer, so a bare answer's likelihood says little about what it knows."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.answers import answer_nlls
from obliviate.metrics.losses import token_nll
from obliviate.metrics.tokens import right_pad
from obliviate.models.generation import Sampling, chat_prompt, generate


class AnswerJudge(Protocol):
    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]: ...


@dataclass(frozen=True)
class Choice:
    """A question, its true answer, wrong answers of the same type and (optionally) the frame they continue."""

    question: str
    answer: str
    distractors: tuple[str, ...]
    frame: str | None = None


def _mention(text: str, answer: str) -> re.Match | None:
    return re.search(rf"(?<!\w){re.escape(answer)}(?!\w)", text, flags=re.IGNORECASE)


def frame_of(reply: str, answer: str) -> str | None:
    """The reply's text before the answer's first whole-word mention (stripped); None when it does not name it
    or names it first."""
    found = _mention(reply, answer)
    frame = reply[: found.start()].strip() if found else ""
    return frame or None


def answer_span_example(tokenizer: PreTrainedTokenizerBase, question: str, reply: str,
                        answer: str) -> tuple[list[int], list[int]] | None:  # fmt: skip
    """(window, mask): the chat prompt and ``reply`` up to the end of the answer's first mention, with the mask
    on the answer's own tokens; None when the reply does not name the answer."""
    found = _mention(reply, answer)
    if not found:
        return None
    start, end = found.span()
    cut = start - 1 if start and reply[start - 1] == " " else start  # BPE puts the space in the answer's token
    prompt = tokenizer(chat_prompt(tokenizer, question), add_special_tokens=False).input_ids
    before = tokenizer(reply[:cut], add_special_tokens=False).input_ids if cut else []
    upto = tokenizer(reply[:end], add_special_tokens=False).input_ids
    first = len(before) if upto[: len(before)] == before else max(0, len(before) - 1)
    return prompt + upto, [0] * (len(prompt) + first) + [1] * (len(upto) - first)


@torch.no_grad()
def continuation_logprobs(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                          items: Sequence[tuple[str, str | None, str]],
                          batch_size: int = 32) -> np.ndarray:  # fmt: skip
    """Per (question, frame, answer): the summed log-probability of the answer's tokens as the continuation of
    ``frame`` in the reply (frame None: as the whole reply, the answer's tokens only)."""
    device = next(model.parameters()).device
    examples = [answer_span_example(tokenizer, q, f"{frame} {a}" if frame else a, a) for q, frame, a in items]
    out = np.zeros(len(items))
    for start in range(0, len(items), batch_size):
        rows = examples[start : start + batch_size]
        ids, attention = right_pad([w for w, _ in rows], tokenizer.pad_token_id or 0, device)
        mask = right_pad([m for _, m in rows], 0, device)[0]
        nll = token_nll(model(input_ids=ids, attention_mask=attention).logits, ids, mask).sum(1)
        out[start : start + len(rows)] = -nll.float().cpu().numpy()
    return out


@torch.no_grad()
def multiple_choice(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, items: Sequence[Choice],
                    batch_size: int = 32) -> dict[str, Any]:  # fmt: skip
    """Accuracy of picking the true answer (the candidate of highest log-probability as the continuation of the
    item's frame, or as the whole reply without one), the chance level (mean of 1 / candidates) and per item the
    true answer's rank (0: picked) - batched over every candidate of every item."""
    items = [c for c in items if c.distractors]
    if not items:
        return {"accuracy": float("nan"), "chance": float("nan"), "n": 0, "items": []}
    candidates = [(c.question, c.frame, candidate) for c in items for candidate in (c.answer, *c.distractors)]
    scores_all = continuation_logprobs(model, tokenizer, candidates, batch_size=batch_size)
    out, start = [], 0
    for c in items:
        scores = scores_all[start : start + 1 + len(c.distractors)]
        start += len(scores)
        out.append({"question": c.question, "answer": c.answer, "rank": int((scores[1:] > scores[0]).sum()),
                    "logprob": scores.round(4).tolist()})  # fmt: skip
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
def true_answer_logprob(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, facts: Sequence[tuple[str, str]],
                        frames: Sequence[str | None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Per fact the true answer's log-probability: summed over its tokens as the continuation of its frame where
    ``frames`` gives one, else the per-token mean as the whole reply; and their mean."""
    if not facts:
        return {"mean": float("nan"), "n": 0, "values": []}
    if frames is None:
        values = -answer_nlls(model, tokenizer, list(facts))
    else:
        values = continuation_logprobs(model, tokenizer, [(q, f, a) for (q, a), f in zip(facts, frames)])
    return {"mean": float(values.mean()), "n": len(values), "values": values.round(4).tolist()}
