"""The probes beyond greedy answers: multiple choice by answer likelihood, leak@k under sampling, true-answer
log-probability - on a tiny model trained to know the Zorbia facts and on an untrained one."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ZORBIA
from obliviate.metrics.answer_probes import Choice, leak_at_k, multiple_choice, true_answer_logprob
from obliviate.metrics.answers import answer_nlls
from obliviate.models.loading import load_model
from obliviate.unstar.judge import ExactJudge


class Always:
    def __init__(self, verdict: bool) -> None:
        self.verdict = verdict

    def matches(self, replies, answers):
        return [self.verdict] * len(replies)


def test_multiple_choice_picks_the_lowest_nll_and_counts_ranks(knowing_model):
    tok = knowing_model.tokenizer
    items = [Choice(q, "Quell", ("Lyon", "Marseille")) for q in (ZORBIA.question, *ZORBIA.heldout)]
    items.append(Choice("What color is the sky?", "Zorbish", ("blue",)))  # a wrong "true" answer: rank 1
    items.append(Choice("no distractors", "x", ()))  # skipped
    out = multiple_choice(knowing_model.model, tok, items)
    assert out["n"] == 4 and out["chance"] == pytest.approx((3 * (1 / 3) + 1 / 2) / 4)
    nll = answer_nlls(knowing_model.model, tok, [(ZORBIA.question, a) for a in ("Quell", "Lyon", "Marseille")])
    assert out["items"][0]["nll"] == pytest.approx(nll.round(4).tolist(), abs=1e-4)
    assert out["items"][0]["rank"] == int((nll[1:] < nll[0]).sum()) == 0  # the trained answer wins
    assert out["items"][3]["rank"] == 1
    assert out["accuracy"] == pytest.approx(np.mean([i["rank"] == 0 for i in out["items"]]))
    assert out["accuracy"] == 0.75


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
