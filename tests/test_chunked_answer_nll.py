"""The objective methods' answer NLL from the final hidden states, a chunk of positions at a time, equals the one
from the model's whole logits (``token_nll``): values and gradients, for the trained model and the frozen
reference, with a prompt that is context only and with padding (to float32 rounding: the LM head's matmul over
chunks and the cross-entropy over [N, V] instead of [B, V, L] round differently, by about one ulp); and the
no-gradient statistics (products reusing one buffer in place) equal the autograd ones bit for bit."""

from __future__ import annotations

import pytest
import torch

from obliviate.metrics import answers
from obliviate.metrics.answers import QABatch, answer_logprob, answer_nll, answer_token_nll
from obliviate.metrics.losses import sequence_nll, token_nll
from obliviate.metrics.teacher_forcing import model_position_stats
from obliviate.metrics.tokens import right_pad
from obliviate.metrics.vocab_stats import target_nll, vocab_stats
from obliviate.models import load_model

ROWS = [[5, 17, 33, 2, 90, 41, 7, 7, 12, 60, 3], [8, 8, 150, 21], [99, 1, 45, 77, 13, 200, 6], [30, 31]]
PROMPTS = [4, 2, 3, 1]  # the first tokens of each row are context only


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("tiny:0", device="cpu", dtype="float32")


def _batch(tiny) -> QABatch:
    ids, attention = right_pad(ROWS, tiny.tokenizer.pad_token_id, torch.device("cpu"))
    masks = [[0] * p + [1] * (len(r) - p) for r, p in zip(ROWS, PROMPTS)]
    return QABatch(ids, attention, right_pad(masks, 0, torch.device("cpu"))[0])


def _grads(model, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(torch.autograd.grad(loss, params), params)]


def _whole_logits(model, batch: QABatch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


@pytest.mark.parametrize("chunk", [1, 5, None])
def test_answer_token_nll_equals_token_nll_of_the_whole_logits(tiny, chunk):
    model, batch = tiny.model, _batch(tiny)
    whole = token_nll(_whole_logits(model, batch), batch.input_ids, batch.target_mask)
    chunked = answer_token_nll(model, batch, chunk=chunk)
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)
    assert (chunked[batch.target_mask[:, 1:] == 0] == 0).all()
    weights = torch.linspace(0.5, 2.0, chunked.shape[1])
    for got, want in zip(_grads(model, (chunked * weights).sum()), _grads(model, (whole * weights).sum())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_answer_logprob_and_nll_equal_the_whole_logit_definitions(tiny):
    """NPO's forget term reads answer_logprob of the model and of the frozen reference; SimNPO's answer_logprob /
    |y|; the evaluations answer_nll."""
    model, batch = tiny.model, _batch(tiny)
    logits = _whole_logits(model, batch)
    old_logprob = -token_nll(logits, batch.input_ids, batch.target_mask).sum(dim=1)
    old_nll = sequence_nll(logits, batch.input_ids, batch.target_mask)
    new_logprob, new_nll = answer_logprob(model, batch), answer_nll(model, batch)
    torch.testing.assert_close(new_logprob, old_logprob, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(new_nll, old_nll, rtol=1e-6, atol=1e-6)
    npo_like = torch.nn.functional.logsigmoid(-0.1 * new_logprob).sum() + new_nll.sum()
    old_like = torch.nn.functional.logsigmoid(-0.1 * old_logprob).sum() + old_nll.sum()
    for got, want in zip(_grads(model, npo_like), _grads(model, old_like)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(answers.reference_logprob(model, batch), old_logprob.detach(), rtol=1e-6, atol=1e-6)


def test_answer_nll_without_a_plain_head_takes_the_model_logits(tiny, monkeypatch):
    """A sharded or unusual head: the model's own logits, chunked through the cross-entropy."""
    model, batch = tiny.model, _batch(tiny)
    expected = answer_token_nll(model, batch).detach()
    monkeypatch.setattr("obliviate.metrics.teacher_forcing.logits_head", lambda _model: None)
    torch.testing.assert_close(answer_token_nll(model, batch, chunk=3).detach(), expected, rtol=1e-6, atol=1e-6)


def test_target_nll_from_logits_matches_cross_entropy_and_its_gradient():
    torch.manual_seed(1)
    logits = torch.randn(3, 9, 50, requires_grad=True)
    targets = torch.randint(0, 50, (3, 9))
    whole = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    chunked = target_nll(logits, targets, chunk=4)
    torch.testing.assert_close(chunked, whole)
    (got,) = torch.autograd.grad(chunked.sum(), logits)
    (want,) = torch.autograd.grad(whole.sum(), logits)
    torch.testing.assert_close(got, want)


def test_statistics_without_gradients_equal_the_autograd_ones_exactly(tiny):
    """The audit's pass (no graph: the products reuse one buffer in place) and MATCH's (autograd, checkpointed)."""
    model, batch = tiny.model, _batch(tiny)
    with_graph, _ = model_position_stats(model, batch.input_ids, batch.attention_mask, chunk=5)
    with torch.no_grad():
        without, _ = model_position_stats(model, batch.input_ids, batch.attention_mask, chunk=5)
    for name in ("target_logprob", "expected_logprob", "second_moment", "margin", "argmax"):
        assert torch.equal(getattr(with_graph, name).detach(), getattr(without, name)), name


def test_margin_at_a_tie_with_the_target_is_zero():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 1.0, 2.0], [0.0, 1.0, 5.0, 4.0]])
    targets = torch.tensor([2, 0, 3])
    stats = vocab_stats(logits, targets, chunk=2)
    torch.testing.assert_close(stats.margin, torch.tensor([0.0, 0.0, -1.0]))
