"""Known answers for the unseen-reference statistics, outlier counts and the ROC summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obliviate.errors import DataError
from obliviate.metrics.reference import (
    ReferenceStats,
    calibrated_outlier_count,
    fixed_outlier_count,
    two_sided_outlier_score,
)
from obliviate.metrics.roc import roc_summary


def test_fixed_outlier_count_is_inclusive() -> None:
    assert fixed_outlier_count([0.1, 0.15, 0.3, 0.6, 0.9]) == {"low": 2, "high": 2, "total": 4, "n": 5}
    assert fixed_outlier_count([], low=0.2, high=0.8) == {"low": 0, "high": 0, "total": 0, "n": 0}


def test_reference_stats_population_std_and_band() -> None:
    ref = ReferenceStats.from_values([0.2, 0.4])
    assert ref.mean == pytest.approx(0.3)
    assert ref.std == pytest.approx(0.1)  # ddof=0
    assert ref.values == (0.2, 0.4)
    lo, hi = ref.band(2.0)
    assert lo == pytest.approx(0.1)
    assert hi == pytest.approx(0.5)


def test_reference_stats_to_dict() -> None:
    d = ReferenceStats.from_values([0.0, 0.25, 0.5, 0.75, 1.0]).to_dict()
    assert d["n"] == 5
    assert d["mean"] == pytest.approx(0.5)
    assert d["min"] == 0.0 and d["max"] == 1.0
    assert d["quantiles"]["q50"] == pytest.approx(0.5)
    assert d["quantiles"]["q25"] == pytest.approx(0.25)
    assert d["values"] == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("bad", [[], [0.1, float("nan")], [float("inf")]])
def test_reference_stats_rejects_bad_input(bad: list[float]) -> None:
    with pytest.raises(DataError):
        ReferenceStats.from_values(bad)


def test_calibrated_outlier_count_is_strict() -> None:
    ref = ReferenceStats(mean=0.3, std=0.1, values=(0.2, 0.4))
    out = calibrated_outlier_count([0.05, 0.3, 0.55, 0.5], ref, k=2.0)
    assert out["low"] == 1
    assert out["high"] == 1  # 0.5 is on the edge, not above it
    assert out["total"] == 2 and out["n"] == 4
    assert out["band"] == pytest.approx([0.1, 0.5])
    assert out["k"] == 2.0


def test_two_sided_outlier_score() -> None:
    ref = ReferenceStats(mean=0.3, std=0.1, values=(0.2, 0.4))
    np.testing.assert_allclose(two_sided_outlier_score([0.0, 0.3, 0.9], ref), [0.3, 0.0, 0.6])


def test_roc_perfect_separation() -> None:
    s = roc_summary([0.9, 0.8, 0.7], [0.1, 0.2, 0.3])
    assert s["auc"] == 1.0
    assert s["tpr_at_1pct_fpr"] == 1.0
    assert s["tpr_at_5pct_fpr"] == 1.0
    assert s["n_members"] == 3 and s["n_nonmembers"] == 3
    assert len(s["curve"]["fpr"]) == len(s["curve"]["tpr"])
    assert s["curve"]["fpr"][0] == 0.0 and s["curve"]["tpr"][-1] == 1.0


def test_roc_identical_and_reversed() -> None:
    assert roc_summary([0.1, 0.5, 0.9], [0.1, 0.5, 0.9])["auc"] == pytest.approx(0.5)
    rev = roc_summary([0.1, 0.2], [0.8, 0.9])
    assert rev["auc"] == 0.0
    assert rev["tpr_at_1pct_fpr"] == 0.0


def test_roc_hand_computed() -> None:
    # pairs (m, n): (0.9,0.5) (0.9,0.1) (0.4,0.1) win, (0.4,0.5) loses -> 3/4
    s = roc_summary([0.9, 0.4], [0.5, 0.1])
    assert s["auc"] == pytest.approx(0.75)
    # at FPR 0 only the member at 0.9 is caught
    assert s["tpr_at_1pct_fpr"] == pytest.approx(0.5)
    assert s["tpr_at_5pct_fpr"] == pytest.approx(0.5)


def test_roc_tpr_at_low_fpr_with_many_nonmembers() -> None:
    nonmembers = np.linspace(0.0, 1.0, 100)  # one non-member above 0.985 -> FPR 1% at threshold 1.0
    members = [0.995, 0.5, 0.2]
    s = roc_summary(members, nonmembers)
    assert s["tpr_at_1pct_fpr"] == pytest.approx(1 / 3)
    assert math.isfinite(s["tpr_at_5pct_fpr"])


@pytest.mark.parametrize(
    ("members", "nonmembers"),
    [([], [0.1]), ([0.1], []), ([float("nan")], [0.1]), ([0.1], [float("inf")])],
)
def test_roc_rejects_bad_input(members: list[float], nonmembers: list[float]) -> None:
    with pytest.raises(DataError):
        roc_summary(members, nonmembers)


def test_an_inverted_attack_counts_in_its_best_direction():
    """Members that score lower than every non-member (over-unlearned): the raw AUC is 0, which the attacker reads
    as perfect separation by flipping the score - auc_either 1.0, direction 'lower', TPR 1.0 at 1% FPR."""
    out = roc_summary([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
    assert out["auc"] == 0.0 and out["tpr_at_1pct_fpr"] == 0.0
    assert out["auc_either"] == 1.0 and out["direction"] == "lower" and out["tpr_at_1pct_fpr_either"] == 1.0
    same = roc_summary([0.7, 0.8, 0.9], [0.1, 0.2, 0.3])
    assert same["auc_either"] == same["auc"] == 1.0 and same["direction"] == "higher"
    mixed = roc_summary([0.1, 0.6, 0.3], [0.5, 0.2, 0.9])  # 3 of 9 member/non-member pairs ordered: AUC 1/3
    assert mixed["auc"] == pytest.approx(1 / 3) and mixed["auc_either"] == pytest.approx(2 / 3)
