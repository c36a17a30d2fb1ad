"""Loss pieces, selection and stop rules, and task vectors against hand-computed values on toy inputs."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from obliviate.editing import TaskVector, effective_weights
from obliviate.methods.rules import Thresholds, select_memorized, select_outliers, should_stop
from obliviate.metrics.losses import sequence_nll, token_nll, weighted_mean
from obliviate.metrics.reference import ReferenceStats
from obliviate.models.tiny import build_tiny_model


def _toy_logits():
    # position 0: uniform over 2 tokens -> p(target=1) = 1/2; position 1: logits [ln 3, 0] -> p(target=0) = 3/4
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    return logits, torch.tensor([[0, 1, 0]])


def test_token_and_sequence_nll_match_hand_values():
    logits, ids = _toy_logits()
    full = torch.ones_like(ids)
    assert torch.allclose(token_nll(logits, ids, full), torch.tensor([[math.log(2), math.log(4 / 3)]]))
    assert sequence_nll(logits, ids, full).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    padded = torch.tensor([[1, 1, 0]])  # the last target is padding: only the first counts
    assert sequence_nll(logits, ids, padded).item() == pytest.approx(math.log(2))


def test_weighted_mean_is_the_share_of_a_global_mean():
    values = torch.tensor([1.0, 3.0])
    assert weighted_mean(values, torch.tensor([1.0, 1.0]), 4).item() == pytest.approx(1.0)
    assert weighted_mean(values, torch.tensor([0.0, 1.0]), 3).item() == pytest.approx(1.0)


THRESHOLDS = Thresholds(tau=0.30, upper=0.40, lower=0.20)


def test_thresholds_come_from_the_unseen_reference():
    ref = ReferenceStats.from_values([0.2, 0.3, 0.4])  # mean 0.3, population std sqrt(2/3)/10
    t = Thresholds.from_reference(ref, k_sigma=2.0)
    std = math.sqrt(2 / 3) / 10
    assert (t.tau, t.lower, t.upper) == pytest.approx((0.3, 0.3 - 2 * std, 0.3 + 2 * std))
    assert Thresholds.from_reference(ref, 2.0, tau=0.25).tau == 0.25


def test_mean_stop_rule_fires_below_tau_only():
    assert not should_stop(np.array([0.9, 0.1]), "mean", THRESHOLDS)  # mean 0.5
    assert should_stop(np.array([0.5, 0.05]), "mean", THRESHOLDS)  # mean 0.275 < 0.30
    assert not should_stop(np.array([0.3, 0.3]), "mean", THRESHOLDS)  # equal is not below


def test_outlier_stop_rule_needs_every_sequence_at_or_below_the_upper_edge():
    assert should_stop(np.array([0.40, 0.10, 0.0]), "outliers", THRESHOLDS)  # the low side does not block
    assert not should_stop(np.array([0.41, 0.10]), "outliers", THRESHOLDS)
    # the mean rule can be met while an outlier remains: the per-sequence rule is stricter
    ma = np.array([0.9, 0.0, 0.0, 0.0])
    assert should_stop(ma, "mean", THRESHOLDS) and not should_stop(ma, "outliers", THRESHOLDS)


def test_sga_selection_authors_rule_adds_the_most_memorized():
    ma = np.array([0.75, 0.50, 0.69, 0.71])
    assert select_memorized(ma, gamma=0.70).tolist() == [0, 3]
    assert select_memorized(np.array([0.5, 0.6, 0.55]), gamma=0.70).tolist() == [1]  # none above: top one


def test_sga_selection_per_sequence_rule_never_goes_inside_the_band():
    ma = np.array([0.75, 0.35, 0.45, 0.41])
    assert select_memorized(ma, gamma=0.40, band_upper=0.40).tolist() == [0, 2, 3]
    assert select_memorized(np.array([0.3, 0.39]), gamma=0.40, band_upper=0.40).tolist() == []
    assert select_outliers(ma, 0.44).tolist() == [0, 2]


def test_task_vector_algebra():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    b = {"w": torch.tensor([2.0, 0.0]), "b": torch.tensor([1.0])}
    tv = TaskVector.between(a, b)
    assert torch.equal(tv.deltas["w"], torch.tensor([1.0, -2.0]))
    assert torch.equal((-tv).deltas["w"], torch.tensor([-1.0, 2.0]))
    assert torch.equal((tv * 3).deltas["b"], torch.tensor([1.5])) and torch.equal(
        (3 * tv).deltas["b"], torch.tensor([1.5])
    )
    assert torch.equal((tv + tv).deltas["w"], torch.tensor([2.0, -4.0]))
    assert tv.norm() == pytest.approx(math.sqrt(1 + 4 + 0.25))
    with pytest.raises(ValueError, match="shape"):
        TaskVector.between(a, {"w": torch.zeros(3)})
    with pytest.raises(KeyError):
        TaskVector.between(a, {"z": torch.zeros(1)})


def test_task_arithmetic_edit_equals_the_hand_computed_weights():
    theta_s = build_tiny_model(1)
    theta_t = copy.deepcopy(theta_s)
    with torch.no_grad():
        for p in theta_t.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    base = {k: v.clone() for k, v in theta_s.state_dict().items()}
    tuned = {k: v.clone() for k, v in theta_t.state_dict().items()}
    edited = TaskVector.between(effective_weights(theta_s), effective_weights(theta_t)).apply_to(
        copy.deepcopy(theta_t), scale=-3.0, base=effective_weights(theta_s)
    )
    for name, value in edited.state_dict().items():
        expected = base[name] + -3.0 * (tuned[name] - base[name])
        assert torch.allclose(value, expected, atol=1e-6), name


def test_lora_effective_weights_are_base_plus_scaled_b_a():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(build_tiny_model(2), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    weights = effective_weights(model)
    assert set(weights) == {f"model.layers.{i}.self_attn.q_proj.weight" for i in range(2)}
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = layer.base_layer.weight + (8 / 4) * b @ a
    assert torch.allclose(weights["model.layers.0.self_attn.q_proj.weight"], expected, atol=1e-6)
    merged = copy.deepcopy(model).merge_and_unload()
    assert torch.allclose(merged.model.layers[0].self_attn.q_proj.weight, expected, atol=1e-6)
