"""The probes beyond greedy answers: multiple choice by answer likelihood, leak@k under sampling, true-answer
log-probability - on a tiny model trained to know the Zorbia facts and on an untrained one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ZORBIA
from obliviate.metrics.answer_probes import (
    Choice,
    answer_span_example,
    continuation_logprobs,
    frame_of,
    leak_at_k,
    multiple_choice,
    true_answer_logprob,
)
from obliviate.metrics.answers import answer_nlls
from obliviate.models.loading import load_model
from obliviate.unstar.judge import ExactJudge


class Always:
    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict

    def matches(self, replies, answers):
        return [self.verdict] * len(replies)


def test_multiple_choice_picks_the_likeliest_continuation_and_counts_ranks(knowing_model):
    tok = knowing_model.tokenizer
    items = [Choice(q, "Quell", ("Lyon", "Marseille")) for q in (ZORBIA.question, *ZORBIA.heldout)]
    items.append(Choice("What color is the sky?", "Zorbish", ("blue",)))  # a wrong "true" answer: rank 1
    items.append(Choice("no distractors", "x", ()))  # skipped
    out = multiple_choice(knowing_model.model, tok, items)
    assert out["n"] == 4 and out["chance"] == pytest.approx((3 * (1 / 3) + 1 / 2) / 4)
    by_hand = continuation_logprobs(knowing_model.model, tok, [(ZORBIA.question, None, a)
                                                               for a in ("Quell", "Lyon", "Marseille")])  # fmt: skip
    assert out["items"][0]["logprob"] == pytest.approx(by_hand.round(4).tolist(), abs=1e-4)
    assert out["items"][0]["rank"] == int((by_hand[1:] > by_hand[0]).sum()) == 0  # the trained answer wins
    assert out["items"][3]["rank"] == 1
    assert out["accuracy"] == 0.75


def test_answers_are_scored_as_the_continuation_of_the_model_s_own_reply(knowing_model):
    tok, model = knowing_model.tokenizer, knowing_model.model
    assert frame_of("The capital of Zorbia is Quell.", "quell") == "The capital of Zorbia is"
    assert frame_of("Quell.", "Quell") is None and frame_of("No idea.", "Quell") is None
    # by hand: the answer's tokens after the frame, summed - the same as scoring the whole framed reply's tail
    frame = "The capital is"
    (got,) = continuation_logprobs(model, tok, [(ZORBIA.question, frame, "Quell")])
    window, mask = answer_span_example(tok, ZORBIA.question, f"{frame} Quell", "Quell")
    ids = torch.tensor([window])
    logprobs = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
    expected = sum(logprobs[t - 1, window[t]].item() for t in range(1, len(window)) if mask[t])
    assert got == pytest.approx(expected, abs=1e-4) and sum(mask) == len(tok(" Quell").input_ids)
    framed = true_answer_logprob(model, tok, [(ZORBIA.question, "Quell")], frames=[frame])
    assert framed["values"] == pytest.approx([round(got, 4)], abs=1e-4)


def test_leak_at_k_counts_questions_with_any_correct_sample(knowing_model):
    tok = knowing_model.tokenizer
    facts = [(q, ZORBIA.answer) for q in ZORBIA.heldout]
    assert leak_at_k(knowing_model.model, tok, facts, Always(True), k=3)["leak"] == 1.0
    assert leak_at_k(knowing_model.model, tok, facts, Always(False), k=3)["leak"] == 0.0
    known = leak_at_k(knowing_model.model, tok, facts, ExactJudge(), k=8, max_new_tokens=8)
    assert known["leak"] == 1.0 and all(i["hits"] >= 1 for i in known["items"])  # the trained model says Quell
    blank = load_model("tiny:5", device="cpu", dtype="float32")  # never trained: random characters
    never = leak_at_k(blank.model, tok, facts, ExactJudge(), k=8, max_new_tokens=8)
    assert never["leak"] == 0.0 and never["n"] == 2
    again = leak_at_k(knowing_model.model, tok, facts, ExactJudge(), k=8, max_new_tokens=8)
    assert again["items"] == known["items"]  # seeded


def test_true_answer_logprob_is_minus_the_answer_nll(knowing_model):
    tok = knowing_model.tokenizer
    facts = [(ZORBIA.question, "Quell"), (ZORBIA.question, "Lyon")]
    out = true_answer_logprob(knowing_model.model, tok, facts)
    assert out["values"] == pytest.approx((-answer_nlls(knowing_model.model, tok, facts)).round(4).tolist(), abs=1e-4)
    assert out["values"][0] > out["values"][1] and out["mean"] == pytest.approx(np.mean(out["values"]), abs=1e-4)
