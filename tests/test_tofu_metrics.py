"""TOFU's metrics pinned to values worked out by hand (and to the reference code's own formula, re-typed here
in plain Python): truth ratio, KS forget quality, probabilities, ROUGE-L recall, model utility."""

from __future__ import annotations

import math

import pytest

from obliviate.tofu.metrics import (
    UTILITY_PARTS,
    answer_probability,
    forget_quality,
    forget_truth_ratio,
    model_utility,
    normalised_answer_probability,
    retain_truth_ratio,
    rouge_l_recall,
    truth_ratios,
)

PARA = [1.0, 2.0]
PERT = [[2.0, 4.0], [1.0, 1.0]]


def test_truth_ratio_by_hand_and_by_the_reference_formula():
    ratios = truth_ratios(PARA, PERT)
    assert list(ratios) == pytest.approx([math.exp(-2.0), math.e])  # exp(1 - 3), exp(2 - 1)
    assert forget_truth_ratio(ratios) == pytest.approx((math.exp(-2.0) + math.exp(-1.0)) / 2)
    assert retain_truth_ratio(ratios) == pytest.approx((1 - math.exp(-2.0)) / 2)
    # locuslab/TOFU: curr_stat_1 = exp(mean perturbed loss - paraphrased loss); forget: mean(min(s, 1/s));
    # others: mean(max(0, 1 - 1/s))
    stat = [math.exp(sum(p) / len(p) - q) for q, p in zip(PARA, PERT)]
    assert forget_truth_ratio(ratios) == pytest.approx(sum(min(s, 1 / s) for s in stat) / 2)
    assert retain_truth_ratio(ratios) == pytest.approx(sum(max(0.0, 1 - 1 / s) for s in stat) / 2)
    with pytest.raises(ValueError, match="questions, k"):
        truth_ratios(PARA, [1.0, 2.0])


def test_forget_quality_is_the_exact_ks_p_value():
    # fully separated samples of 3 and 3: D = 1, and exactly 2 of the C(6, 3) = 20 orderings are that extreme
    assert forget_quality([0.1, 0.2, 0.3], [0.7, 0.8, 0.9]) == pytest.approx(0.1)
    assert forget_quality([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    # the p-value depends only on the order of the values, so it is the same for R and 1/R
    a, b = [0.5, 0.9, 1.3, 2.0], [0.7, 1.1, 3.0, 4.0]
    assert forget_quality(a, b) == pytest.approx(forget_quality([1 / x for x in a], [1 / x for x in b]))


def test_probabilities():
    assert answer_probability([0.0, math.log(2)]) == pytest.approx(0.75)
    # P(correct) 1/2 against two wrong answers of 1/4 each
    assert normalised_answer_probability([math.log(2)], [[math.log(4), math.log(4)]]) == pytest.approx(0.5)


def test_rouge_l_recall():
    # LCS 'the cat sat' = 3 of the reference's 6 words
    assert rouge_l_recall(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx(0.5)
    assert rouge_l_recall(["on the mat", "x"], ["on the mat", "y z"]) == pytest.approx(0.5)


def test_model_utility_is_the_harmonic_mean_of_nine_parts():
    parts = dict.fromkeys(UTILITY_PARTS, 0.5) | {"world_facts truth_ratio": 0.25}
    assert model_utility(parts) == pytest.approx(9 / (8 / 0.5 + 1 / 0.25))  # 0.45
    assert model_utility(parts | {"retain probability": 0.0}) == 0.0
    with pytest.raises(ValueError, match="missing"):
        model_utility({"retain probability": 0.5})


def test_tofu_loader_reads_json_lines_and_arrays(shared_data, tmp_path):
    from obliviate.errors import DataError
    from obliviate.tofu.data import load_split

    tofu = shared_data / "tofu"
    forget = load_split("forget01_perturbed", tofu)
    assert len(forget) == 40 and forget[0].paraphrased_answer and len(forget[0].perturbed_answers) >= 3
    assert len(load_split("holdout01", tofu)) == 40  # this mirror ships it as one JSON array
    world = load_split("world_facts_perturbed", tofu)
    assert world[0].answer == "Paris" and world[0].perturbed_answers == ("Berlin", "London", "Madrid")
    (tmp_path / "forget01.json").write_text('{"question": "q", "answer": "a"}\n{"question": 3}\n')
    with pytest.raises(DataError, match="record 2"):
        load_split("forget01", tmp_path)
    with pytest.raises(DataError, match="unknown TOFU split"):
        load_split("forget02", tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_split("retain90", tmp_path)


def test_tofu_evaluation_on_a_tiny_model(knowing_model):
    import torch

    from obliviate.models.generation import chat_prompt
    from obliviate.tofu.data import TofuItem
    from obliviate.tofu.evaluate import TofuEvalSets, answer_nlls, evaluate_tofu, forget_quality_against

    model, tok = knowing_model.model, knowing_model.tokenizer
    # the answer NLL counts exactly the reply tokens after the chat prompt: check one by hand
    question, answer = "What is the capital of Zorbia?", "Quell."
    value = answer_nlls(model, tok, [(question, answer), ("What color is the sky?", "It is blue.")])[0]
    from obliviate.models.chat import encode_chat_examples

    (window,), (mask,) = encode_chat_examples(tok, [(question, answer)])
    prompt_len = len(tok(chat_prompt(tok, question), add_special_tokens=False).input_ids)
    assert mask == [0] * prompt_len + [1] * (len(window) - prompt_len)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([window])).logits[0].float(), dim=-1)
    by_hand = -sum(logp[t - 1, window[t]].item() for t in range(prompt_len, len(window))) / (len(window) - prompt_len)
    assert value == pytest.approx(by_hand, abs=1e-5)

    item = TofuItem(question, answer, "The capital is Quell.", ("Lyon.", "Osaka.", "Berlin."))
    other = TofuItem("What color is the sky?", "It is blue.", "Blue.", ("Red.", "Green.", "Pink."))
    sets = TofuEvalSets([item, other], [other], [item, other], [other])
    result = evaluate_tofu(model, tok, sets)
    assert 0 <= result["model_utility"] <= 1 and set(result["utility_parts"]) == set(UTILITY_PARTS)
    assert model_utility(result["utility_parts"]) == result["model_utility"]
    assert result["forget"]["truth_ratios"][0] < 1  # the model prefers the true capital to the wrong ones
    assert forget_quality_against(result, result) == pytest.approx(1.0)
