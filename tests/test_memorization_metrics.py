"""MA, EL_n and ES from the fast path must equal the per-prefix generate() reference; toy cases by hand."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.metrics.extraction import extraction_strength, ngram_overlap, prefixes_for
from obliviate.metrics.mia import mia_scores
from obliviate.metrics.naive import (
    naive_exact_memorization,
    naive_extraction_likelihood,
    naive_extraction_strength,
)
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.teacher_forcing import TokenStats, token_stats_from_logits


def _windows(loaded, texts, length):
    return [loaded.tokenizer(t).input_ids[:length] for t in texts]


@pytest.fixture(scope="module")
def equal_windows(memorizing_model):
    return _windows(memorizing_model, TRAINED_TEXTS + UNSEEN_TEXTS, 40)


@pytest.fixture(scope="module")
def fast_scores(memorizing_model, equal_windows):
    return score_windows(
        memorizing_model.model,
        equal_windows,
        pad_id=256,
        batch_size=3,
        el_ns=(3, 5, 10),
        decode_batch_size=5,
        progress=False,
    ).memorization()


def test_fixture_model_memorizes_partially(fast_scores):
    trained, unseen = fast_scores["ma"][:4], fast_scores["ma"][4:]
    assert trained.mean() > unseen.mean() + 0.2
    assert (fast_scores["el_3"][:4] > 0).any() and (fast_scores["es"][:4] > 0).any()
    assert fast_scores["ma"].min() < 0.95  # not everything trivially perfect: the decode path is exercised


def test_exact_memorization_equals_per_prefix_generate(memorizing_model, equal_windows, fast_scores):
    reference = naive_exact_memorization(memorizing_model.model, torch.tensor(equal_windows))
    np.testing.assert_allclose(fast_scores["ma"], reference, atol=1e-12)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_extraction_likelihood_equals_per_prefix_generate(memorizing_model, equal_windows, fast_scores, n):
    reference = naive_extraction_likelihood(memorizing_model.model, torch.tensor(equal_windows), n)
    np.testing.assert_allclose(fast_scores[f"el_{n}"], reference, atol=1e-12)


def test_extraction_strength_equals_per_prefix_generate(memorizing_model, equal_windows, fast_scores):
    reference = naive_extraction_strength(memorizing_model.model, torch.tensor(equal_windows))
    np.testing.assert_allclose(fast_scores["es"], reference, atol=1e-12)


def test_argmax_only_mode_gives_the_same_memorization(memorizing_model, equal_windows, fast_scores):
    light = score_windows(
        memorizing_model.model, equal_windows, pad_id=256, el_ns=(5,), full_stats=False, progress=False
    ).memorization()
    assert "loss" not in light
    np.testing.assert_array_equal(light["ma"], fast_scores["ma"])
    np.testing.assert_array_equal(light["el_5"], fast_scores["el_5"])


def test_chunked_head_equals_model_logits(memorizing_model, equal_windows):
    from obliviate.metrics.teacher_forcing import forward_token_stats
    from obliviate.metrics.tokens import right_pad

    ids, mask = right_pad(equal_windows[:3], 256, torch.device("cpu"))
    chunked, _ = forward_token_stats(memorizing_model.model, ids, mask, [40, 40, 40])
    plain = token_stats_from_logits(memorizing_model.model(ids).logits, ids, [40, 40, 40])
    for a, b in zip(chunked, plain):
        np.testing.assert_array_equal(a.argmax, b.argmax)
        np.testing.assert_allclose(a.target_logprob, b.target_logprob, rtol=1e-5)


def test_prefix_stride_and_unequal_lengths_match_reference(memorizing_model):
    """Windows of different lengths share a right-padded batch; each must equal its own reference."""
    windows = [w[:length] for w, length in zip(_windows(memorizing_model, TRAINED_TEXTS, 48), (48, 31, 40, 22))]
    fast = score_windows(
        memorizing_model.model, windows, pad_id=256, batch_size=4, el_ns=(5,), el_stride=3, progress=False
    ).memorization()
    for row, window in enumerate(windows):
        tensor = torch.tensor([window])
        assert fast["ma"][row] == pytest.approx(naive_exact_memorization(memorizing_model.model, tensor)[0])
        expected = naive_extraction_likelihood(memorizing_model.model, tensor, 5, stride=3)[0]
        assert fast["el_5"][row] == pytest.approx(expected, abs=1e-12)


def _stats(tokens, argmax, logprob=None):
    tokens = np.array(tokens)
    size = len(tokens) - 1
    logprob = np.full(size, -1.0) if logprob is None else np.array(logprob, dtype=float)
    return TokenStats(
        tokens=tokens,
        argmax=np.array(argmax),
        target_logprob=logprob,
        expected_logprob=np.full(size, -2.0),
        logprob_std=np.full(size, 0.5),
    )


def test_extraction_strength_by_hand():
    # T = 5; matches for prefix lengths 1..4: [F, T, T, T] -> greedy from prefix 2 reproduces x3..x5: ES = 1 - 2/5
    assert extraction_strength(_stats([1, 2, 3, 4, 5], [9, 3, 4, 5])) == pytest.approx(0.6)
    assert extraction_strength(_stats([1, 2, 3, 4, 5], [2, 3, 4, 5])) == pytest.approx(0.8)  # from prefix 1
    assert extraction_strength(_stats([1, 2, 3, 4, 5], [2, 3, 4, 9])) == 0.0  # last token never reproduced


def test_ngram_overlap_and_prefixes_by_hand():
    truth = np.array([1, 2, 3, 4, 1, 2])
    # true bigrams {12, 23, 34, 41} (5 with repeats); generated bigrams 12, 29, 94, 41, 12 -> 3 hits of 5
    assert ngram_overlap(np.array([1, 2, 9, 4, 1, 2]), truth, 2) == pytest.approx(3 / 5)
    assert ngram_overlap(np.array([7, 7]), np.array([7]), 2) == 0.0
    assert prefixes_for(12, 10, 1) == [1, 2]
    assert prefixes_for(20, 3, 5) == [1, 6, 11, 16]


def test_token_stats_from_logits_by_hand():
    logits = torch.tensor([[[0.0, 0.0, np.log(2.0)], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    stats = token_stats_from_logits(logits, torch.tensor([[0, 2, 1]]), [3])[0]
    p = np.array([0.25, 0.25, 0.5])  # position 0: softmax of (0, 0, ln 2)
    np.testing.assert_allclose(stats.target_logprob[0], np.log(0.5), rtol=1e-6)
    expected = (p * np.log(p)).sum()
    np.testing.assert_allclose(stats.expected_logprob[0], expected, rtol=1e-6)
    np.testing.assert_allclose(stats.logprob_std[0], np.sqrt((p * np.log(p) ** 2).sum() - expected**2), rtol=1e-5)
    assert stats.argmax.tolist() == [2, 0] and stats.matches.tolist() == [True, False]


def test_mia_scores_by_hand():
    logprob = [-0.1, -3.0, -0.5, -2.0, -0.2]
    stats = _stats([1, 2, 3, 4, 5, 6], [0] * 5, logprob)  # expected logprob -2, std 0.5
    scores = mia_scores(stats, "hello hello", k=0.4)  # the 2 lowest tokens: -3.0 and -2.0
    assert scores["mia_loss"] == pytest.approx(np.mean(logprob))
    assert scores["mia_zlib"] == pytest.approx(np.mean(logprob) / len(zlib.compress(b"hello hello")))
    assert scores["mia_mink"] == pytest.approx(-2.5)
    assert scores["mia_minkpp"] == pytest.approx(((-3.0 + 2) / 0.5 + (-2.0 + 2) / 0.5) / 2)
