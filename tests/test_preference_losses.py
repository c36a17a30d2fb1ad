"""The QA baselines' losses against values computed by hand, with the sign conventions pinned: minimising each
forget term must LOWER the forget answer's likelihood, and NPO must tend to gradient ascent as beta -> 0."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.methods.preference_losses import (
    dpo_loss,
    grad_diff_loss,
    npo_loss,
    rmu_control_vector,
    rmu_loss,
    simnpo_loss,
    token_kl,
)


def test_npo_value_and_direction():
    theta = torch.tensor([-2.0, -1.0], requires_grad=True)
    ref = torch.tensor([-2.0, -3.0])
    loss = npo_loss(theta, ref, beta=0.5)
    # (2 / beta) * mean(log(1 + ratio^beta)), ratios e^0 and e^2: 4 * (ln 2 + ln(1 + e)) / 2
    assert loss.item() == pytest.approx(2 * (math.log(2) + math.log(1 + math.e)), abs=1e-6)
    loss.backward()
    # d loss / d log pi_theta = 2 sigmoid(beta * log ratio) / N > 0: descent lowers the forget likelihood
    expected = [2 * torch.sigmoid(torch.tensor(0.5 * r)).item() / 2 for r in (0.0, 2.0)]
    assert theta.grad.tolist() == pytest.approx(expected, abs=1e-6)
    assert all(g > 0 for g in theta.grad)


def test_npo_tends_to_gradient_ascent_as_beta_goes_to_zero():
    theta = torch.tensor([-4.0, -0.5, -9.0], requires_grad=True)
    npo_loss(theta, torch.tensor([-1.0, -2.0, -3.0]), beta=1e-6).backward()
    ga = torch.tensor([-4.0, -0.5, -9.0], requires_grad=True)
    ga.mean().backward()  # gradient ascent on the NLL = descent on the mean log-likelihood
    assert theta.grad.tolist() == pytest.approx(ga.grad.tolist(), abs=1e-5)


def test_simnpo_value_and_direction():
    nll = torch.tensor([1.0, 3.0], requires_grad=True)
    # the paper's writing: -(2 / 2) * mean(log sigmoid(2 * [1, 3] - 1)) = -(log sigmoid(1) + log sigmoid(5)) / 2
    paper = simnpo_loss(nll, beta=2.0, gamma=1.0, margin_convention="paper")
    assert paper.item() == pytest.approx(0.15998851800367048, abs=1e-6)
    # the reference code's: -(2 / 2) * mean(log sigmoid(2 * ([1, 3] - 1))) = -(log sigmoid(0) + log sigmoid(4)) / 2
    loss = simnpo_loss(nll, beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx((math.log(2) + math.log1p(math.exp(-4))) / 2, abs=1e-6)
    loss.backward()
    assert all(g < 0 for g in nll.grad)  # descent raises the forget NLL


def test_dpo_value_and_direction():
    chosen = torch.tensor([-1.0], requires_grad=True)
    rejected = torch.tensor([-3.0], requires_grad=True)
    loss = dpo_loss(chosen, torch.tensor([-2.0]), rejected, torch.tensor([-1.0]), beta=1.0)
    # margin (-1 + 2) - (-3 + 1) = 3; -(2 / 1) * log sigmoid(3)
    assert loss.item() == pytest.approx(0.09717470314748412, abs=1e-6)
    loss.backward()
    assert chosen.grad.item() < 0 < rejected.grad.item()  # descent favours 'I don't know', drops the answer


def test_token_kl_is_kl_of_reference_to_model_on_masked_positions():
    theta = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    ref = torch.tensor([[[math.log(3.0), 0.0], [-5.0, 5.0]]])
    mask = torch.tensor([[1, 0]])  # the second position (very different) is padding
    # KL([.75, .25] || [.5, .5]) = .75 ln 1.5 + .25 ln .5
    assert token_kl(theta, ref, mask).item() == pytest.approx(0.13081203594113697, abs=1e-6)
    assert token_kl(ref, ref, torch.ones(1, 2)).item() == pytest.approx(0.0, abs=1e-7)


def test_grad_diff_ascends_forget_and_descends_retain():
    forget = torch.tensor(2.0, requires_grad=True)
    retain = torch.tensor(0.5, requires_grad=True)
    loss = grad_diff_loss(forget, retain, forget_weight=1.0, retain_weight=3.0)
    assert loss.item() == pytest.approx(-2.0 + 1.5)
    loss.backward()
    assert forget.grad.item() == -1.0 and retain.grad.item() == 3.0


def test_rmu_loss_and_control_vector():
    forget = torch.tensor([[[1.0, 1.0]]])
    retain = torch.tensor([[[1.0, 0.0], [7.0, 7.0]]])
    retain_ref = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    control = torch.tensor([0.0, 2.0])
    # forget: ((1-0)^2 + (1-2)^2) / 2 = 1; retain (second token masked out): (1 + 0) / 2 = 0.5, weighted 10
    loss = rmu_loss(forget, control, retain, retain_ref, retain_weight=10.0, retain_mask=torch.tensor([[1, 0]]))
    assert loss.item() == pytest.approx(1.0 + 5.0)
    u = rmu_control_vector(16, coefficient=6.5, seed=3)
    assert u.norm().item() == pytest.approx(6.5, rel=1e-6) and (u >= 0).all()
    assert torch.equal(u, rmu_control_vector(16, coefficient=6.5, seed=3))
    assert not torch.equal(u, rmu_control_vector(16, coefficient=6.5, seed=4))


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_beta_must_be_positive(bad):
    with pytest.raises(ValueError, match="beta must be > 0"):
        npo_loss(torch.zeros(1), torch.zeros(1), beta=bad)
