"""Zero-shot multiple choice and perplexity: known answers on a tiny model, real files, clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import TRAINED_TEXTS
from obliviate.errors import DataError
from obliviate.evaluation import load_multiple_choice, multiple_choice_accuracy, perplexity, score_continuations


def test_continuation_scores_equal_the_summed_token_logprobs(memorizing_model):
    tok, model = memorizing_model.tokenizer, memorizing_model.model
    context, continuation = "the quick brown", " fox jumps"
    got = score_continuations(memorizing_model, [(context, continuation), ("lorem", "ipsum")])
    ids = tok(context + continuation).input_ids
    start = len(tok(context).input_ids)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    expected = sum(logprobs[t - 1, ids[t]].item() for t in range(start, len(ids)))
    assert got[0] == pytest.approx(expected, abs=1e-4)
    assert got[1] < 0


def test_a_model_that_memorized_the_text_picks_the_true_continuations(memorizing_model, tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = []
    for i, text in enumerate(TRAINED_TEXTS):
        words = text.split()
        true = " ".join(words[4:8])
        choices = ["zebra quantum pickle harbour", true]
        if i % 2:
            choices.reverse()
        rows.append({"query": " ".join(words[:4]), "choices": choices, "gold": choices.index(true)})
    rows.append({"context_options": ["lorem ipsum", "zebra quantum"], "continuation": "dolor sit amet", "gold": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_multiple_choice(path)
    assert multiple_choice_accuracy(memorizing_model, items) == {"accuracy": 1.0, "n": 5}


def test_limit_takes_a_fixed_seeded_subset(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(
        "".join(json.dumps({"query": f"q{i}", "choices": ["a", "b"], "gold": i % 2}) + "\n" for i in range(50))
    )
    first, again = load_multiple_choice(path, limit=10, seed=1), load_multiple_choice(path, limit=10, seed=1)
    assert first == again and len(first) == 10
    assert load_multiple_choice(path, limit=10, seed=2) != first


def test_bad_multiple_choice_files_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"query": "q", "choices": ["a", "b"], "gold": 0}) + "\n" + json.dumps({"query": "q"}) + "\n"
    )
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_multiple_choice(path)
    path.write_text(json.dumps({"query": "q", "choices": ["a", "b"], "gold": 5}) + "\n")
    with pytest.raises(DataError, match="out of range"):
        load_multiple_choice(path)
    with pytest.raises(DataError, match="does not exist"):
        load_multiple_choice(tmp_path / "missing.jsonl")


def test_perplexity_is_exp_of_the_mean_token_nll(memorizing_model):
    tok, model = memorizing_model.tokenizer, memorizing_model.model
    windows = [tok(t).input_ids[:30] for t in TRAINED_TEXTS[:2]]
    with torch.no_grad():
        losses = [model(torch.tensor([w]), labels=torch.tensor([w])).loss.item() for w in windows]
    expected = math.exp(np.mean(losses))  # equal lengths: the token mean is the mean of the means
    assert perplexity(memorizing_model, windows) == pytest.approx(expected, rel=1e-5)
