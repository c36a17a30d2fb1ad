"""The chunked full-vocabulary statistics equal the whole-tensor ones: values AND gradients, on ragged rows with
padding, on the tiny model; so do MATCH's objective and the audit's token statistics built on them."""

from __future__ import annotations

import pytest
import torch

from obliviate.methods.match_objective import RowGoals, TermSettings, flip_term, lowest_fraction_mean, row_terms
from obliviate.metrics.teacher_forcing import forward_token_stats, model_position_stats, token_stats_from_logits
from obliviate.metrics.tokens import length_groups, right_pad
from obliviate.metrics.vocab_stats import positions_per_chunk, vocab_stats
from obliviate.models import load_model

ROWS = [[5, 17, 33, 2, 90, 41, 7, 7, 12, 60, 3], [8, 8, 150, 21], [99, 1, 45, 77, 13, 200, 6], [30, 31]]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model("tiny:0", device="cpu", dtype="float32")


def _whole(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The whole-tensor definitions, written out as the code before chunking had them."""
    logits = logits.float()
    logprobs = logits.log_softmax(-1)
    probs = logprobs.exp()
    expected = (probs * logprobs).sum(-1)
    other = logits.scatter(-1, targets[..., None], float("-inf")).amax(-1)
    return {
        "target_logprob": logprobs.gather(-1, targets[..., None]).squeeze(-1),
        "expected_logprob": expected,
        "second_moment": (probs * logprobs * logprobs).sum(-1),
        "margin": logits.gather(-1, targets[..., None]).squeeze(-1) - other,
        "argmax": logprobs.argmax(-1),
    }


def _batch(tiny):
    return right_pad(ROWS, tiny.tokenizer.pad_token_id, torch.device("cpu"))


def _grads(model, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(torch.autograd.grad(loss, params), params)]


def _mixed_loss(stats, weights: torch.Tensor) -> torch.Tensor:
    """A loss touching every differentiable statistic, as MATCH's does."""
    std = (stats["second_moment"] - stats["expected_logprob"].square()).clamp_min(1e-8).sqrt()
    terms = stats["target_logprob"] + 0.3 * stats["expected_logprob"] + 0.2 * std + 0.1 * stats["margin"]
    return (terms * weights).sum()


@pytest.mark.parametrize("chunk", [1, 5, 13, None])
def test_model_position_stats_equal_the_whole_logits_values_and_gradients(tiny, chunk):
    model = tiny.model
    ids, mask = _batch(tiny)
    weights = mask[:, 1:].float()
    whole = _whole(model(input_ids=ids, attention_mask=mask).logits[:, :-1], ids[:, 1:])
    stats, _ = model_position_stats(model, ids, mask, chunk=chunk)
    chunked = {k: getattr(stats, k) for k in whole}
    for key in whole:
        counted = weights.bool()
        torch.testing.assert_close(chunked[key][counted], whole[key][counted], rtol=1e-5, atol=1e-5)
    for got, want in zip(_grads(model, _mixed_loss(chunked, weights)), _grads(model, _mixed_loss(whole, weights))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=3e-5)


def test_vocab_stats_from_logits_and_greedy_only_agree(tiny):
    ids, mask = _batch(tiny)
    logits = tiny.model(input_ids=ids, attention_mask=mask).logits[:, :-1].detach().requires_grad_(True)
    whole = _whole(logits, ids[:, 1:])
    stats = vocab_stats(logits, ids[:, 1:], chunk=7)
    torch.testing.assert_close(stats.target_logprob, whole["target_logprob"])
    (got,) = torch.autograd.grad(_mixed_loss({k: getattr(stats, k) for k in whole}, mask[:, 1:].float()), logits)
    (want,) = torch.autograd.grad(_mixed_loss(whole, mask[:, 1:].float()), logits)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=3e-5)
    greedy = vocab_stats(logits, ids[:, 1:], chunk=7, greedy_only=True)
    assert greedy.target_logprob is None and torch.equal(greedy.argmax, whole["argmax"])


def test_audit_token_stats_are_unchanged_by_the_chunk(tiny):
    ids, mask = _batch(tiny)
    lengths = [len(r) for r in ROWS]
    with torch.no_grad():
        plain = token_stats_from_logits(tiny.model(input_ids=ids, attention_mask=mask).logits, ids, lengths)
    for chunk in (1, 6, None):
        chunked, _ = forward_token_stats(tiny.model, ids, mask, lengths, chunk=chunk)
        for a, b in zip(chunked, plain):
            assert (a.argmax == b.argmax).all() and len(a.argmax) == len(b.argmax)
            for key in ("target_logprob", "expected_logprob"):
                assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-5, abs=1e-5)
            # std = sqrt(E[(log p)^2] - E[log p]^2) cancels in float32 (in both paths): they differ by rounding only
            assert a.logprob_std == pytest.approx(b.logprob_std, rel=1e-3, abs=1e-4)


def test_positions_per_chunk_follows_the_vocabulary_budget():
    assert positions_per_chunk(128_256) == 2**24 // 128_256 == 130
    assert positions_per_chunk(10**9) == 1


def test_length_groups_cover_every_row_once_and_pad_less():
    lengths = [167, 40, 150, 60, 140, 120, 110, 100]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert padded < len(lengths) * max(lengths)
    assert length_groups([10] * 8) == [list(range(8))]  # equal lengths: one batch, no padding to remove


def _old_match_objective(model, rows, goals: RowGoals, settings: TermSettings, pad_id):
    """MATCH's objective as it was before chunking (one padded batch, whole logits), per row."""
    ids, attention = right_pad(rows, pad_id, torch.device("cpu"))
    targets, weights = ids[:, 1:], attention[:, 1:].float()
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logprobs = logits.log_softmax(-1)
    target_logprob = logprobs.gather(-1, targets[..., None]).squeeze(-1)
    token = -target_logprob * weights
    nll = token.sum(1) / weights.sum(1).clamp(min=1)
    probs = logprobs.exp()
    expected = (probs * logprobs).sum(-1)
    entropy = (-expected * weights).sum(1) / weights.sum(1).clamp(min=1)
    capped = token.clamp(max=settings.cap).sum(1) / weights.sum(1).clamp(min=1)
    steer = torch.where(nll < goals.loss, capped + (nll - capped).detach(), nll)
    target_logit = logits.gather(-1, targets[..., None]).squeeze(-1)
    other = logits.scatter(-1, targets[..., None], float("-inf")).amax(-1)
    flips = flip_term(target_logit - other, weights.bool(), goals.excess, settings.margin)
    spread_sd = ((probs * logprobs.square()).sum(-1) - expected.square()).clamp_min(1e-8).sqrt()
    minkpp = lowest_fraction_mean((target_logprob - expected) / spread_sd, weights.bool(), settings.tail)
    return {"nll": nll, "steer": (steer - goals.loss).square() * goals.pull, "flip": flips,
            "spread": (entropy - goals.entropy).square(), "minkpp": minkpp}  # fmt: skip


def test_match_objective_in_length_groups_equals_the_whole_tensor_one(tiny):
    """In float64, where the std's cancellation is negligible, so the comparison is tight."""
    import copy

    model, pad = copy.deepcopy(tiny.model).double(), tiny.tokenizer.pad_token_id
    goals = RowGoals(loss=torch.tensor([5.0, 6.0, 5.5, 4.0]), entropy=torch.tensor([4.0, 5.0, 3.0, 4.5]),
                     pull=torch.tensor([1.0, 1.0, 0.0, 1.0]), excess=torch.tensor([2, -1, 0, 1]),
                     minkpp=torch.tensor([-1.0, -0.5, -2.0, 0.0]))  # fmt: skip
    settings = TermSettings(cap=5.6, margin=0.1, tail=0.2)

    def total(terms):
        rows = terms["steer"] + 2 * terms["flip"] + terms["spread"]
        return rows.mean() + (terms["minkpp"] - goals.minkpp).square().mean()

    old = _old_match_objective(model, ROWS, goals, settings, pad)
    groups = length_groups([len(r) for r in ROWS], rows_overhead_tokens=0)
    assert len(groups) > 1  # the grouped path is the one under test
    order = [k for g in groups for k in g]
    parts = [row_terms(model, [ROWS[k] for k in g], None, goals.rows(g), settings, pad) for g in groups]
    new = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    restore = torch.tensor(order).argsort()
    new = {key: value[restore] for key, value in new.items()}
    for key in old:
        torch.testing.assert_close(new[key], old[key], rtol=1e-6, atol=1e-6, msg=key)
    for got, want in zip(_grads(model, total(new)), _grads(model, total(old))):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
