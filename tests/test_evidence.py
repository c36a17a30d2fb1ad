"""Evidence that cannot mislead, on constructed numbers: an inverted attack counts (and fails the over-unlearned
guardrail), PrivLeak and the KS forget quality against a retain-only model equal hand-computed values, and the
bootstrap intervals behave as intervals must."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from obliviate.config import GuardrailConfig, ScoringConfig
from obliviate.guardrails import FAIL, PASS, WARN, membership_verdicts
from obliviate.metrics.audit import MemorizationAudit, SetScores, against_retain_only
from obliviate.metrics.roc import roc_summary
from obliviate.metrics.uncertainty import auc_intervals, auc_values, band_intervals, ks_forget_quality, privleak


def _verdicts(auc=None, low=None, high=None, **extra):
    membership = {"auc": auc, **extra} if auc is not None else {}
    after = {k: v for k, v in (("outliers_low", low), ("outliers_high", high)) if v is not None}
    metrics = {"summary": {"attacks": {"membership": membership}, "sets": {"forget": {"after": after}}}}
    return {v.guardrail: v for v in membership_verdicts(metrics, GuardrailConfig())}


def test_inverted_attack_is_reported_and_fails_the_over_unlearned_guardrail():
    # members score lower than every non-member: raw AUC 0, which separates them perfectly
    s = roc_summary([0.1, 0.2, 0.3], [0.5, 0.6, 0.7, 0.8])
    assert s["auc"] == 0.0 and s["auc_either"] == 1.0 and s["direction"] == "lower"
    verdicts = _verdicts(auc=s["auc"], low=0, high=0)
    assert verdicts["over-unlearned"].verdict == FAIL
    assert "members less likely" in verdicts["over-unlearned"].detail and "1.000" in verdicts["over-unlearned"].detail
    assert verdicts["still extractable"].verdict == PASS
    # the mirror image: members more likely -> still extractable fails, over-unlearned passes
    mirrored = _verdicts(auc=0.9, low=0, high=0)
    assert mirrored["still extractable"].verdict == FAIL and mirrored["over-unlearned"].verdict == PASS
    # 0.35 is 0.65 either way: a warning; a sequence below the band fails whatever the attacks say
    assert _verdicts(auc=0.35)["over-unlearned"].verdict == WARN
    assert _verdicts(auc=0.5, low=2, high=0)["over-unlearned"].verdict == FAIL
    # several scores: the lowest and highest raw AUC are each judged in their own direction
    both = _verdicts(auc=0.9, auc_min=0.2, auc_max=0.9)
    assert both["over-unlearned"].verdict == FAIL and both["still extractable"].verdict == FAIL
    assert _verdicts() == {}  # nothing to judge: no verdict


def test_guardrail_thresholds_come_from_config():
    metrics = {"summary": {"attacks": {"membership": {"auc": 0.35}}, "sets": {}}}
    strict = GuardrailConfig(membership_auc_warn=0.55, membership_auc_fail=0.6)
    assert membership_verdicts(metrics, strict)[0].verdict == FAIL
    with pytest.raises(ValueError):
        GuardrailConfig(membership_auc_fail=1.5)


def _audit(member_loss, nonmember_loss, member_ma, nonmember_ma):
    def scores(prefix, loss, ma):
        loss, ma = np.asarray(loss, float), np.asarray(ma, float)
        values = {"ma": ma, "loss": loss, "mia_loss": -loss, "mia_zlib": -loss / 100, "mia_mink": -2 * loss,
                  "mia_minkpp": -loss}  # fmt: skip
        return SetScores([f"{prefix}{i}" for i in range(len(loss))], values)

    return MemorizationAudit(scores("m", member_loss, member_ma), scores("n", nonmember_loss, nonmember_ma),
                             ScoringConfig(bootstrap=0))  # fmt: skip


def test_privleak_and_ks_forget_quality_against_the_retain_only_model_by_hand():
    # MUSE: (AUC_unlearn - AUC_retain) / AUC_retain on its AUCs, 1 - ours (forget = members): (0.7 - 0.5) / 0.5
    assert privleak(0.3, 0.5) == pytest.approx(0.4)
    # unlearned: member losses 1, 2 vs non-members 3, 4 -> the loss score -loss separates them: AUC 1
    unlearned = _audit([1.0, 2.0], [3.0, 4.0], [0.3, 0.4], [0.3, 0.35])
    # retain-only: member losses 3.5, 1.5 vs 3, 4 -> of 4 pairs, 3.5 beats only 4, 1.5 beats both: AUC 3/4
    gold = _audit([3.5, 1.5], [3.0, 4.0], [0.3, 0.4], [0.3, 0.35])
    result = against_retain_only(unlearned, gold, "retain-only")
    assert result["auc_retain_only"]["loss"] == pytest.approx(0.75)
    assert result["privleak"]["loss"] == pytest.approx((0.0 - 0.25) / 0.25)  # still memorized: -1
    assert result["privleak_best"]["value"] == pytest.approx(max(result["privleak"].values(), key=abs))
    # same MA values under both models: KS statistic 0, p-value 1; losses {1,2} vs {3.5,1.5}: D = 1/2
    assert result["forget_quality"]["ma"] == {"statistic": 0.0, "p_value": 1.0}
    assert result["forget_quality"]["loss"]["statistic"] == pytest.approx(0.5)
    assert ks_forget_quality([1, 2, 3], [10, 11, 12])["p_value"] < 0.2


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(0.5, 1, 12), rng.normal(0, 1, 30)
    rows_m, rows_n = rng.normal(size=(5, 7)), rng.normal(size=(5, 9))
    for row in range(5):  # the vectorised rank-sum AUC is sklearn's
        want = roc_auc_score([1] * 7 + [0] * 9, np.concatenate([rows_m[row], rows_n[row]]))
        assert auc_values(rows_m[row : row + 1], rows_n[row : row + 1])[0] == pytest.approx(want)
    point = roc_summary(members, nonmembers)
    ci = auc_intervals(members, nonmembers, seed=1)
    assert ci["auc"][0] < point["auc"] < ci["auc"][1] and ci["auc"][1] - ci["auc"][0] > 0.1  # 12 vs 30: wide
    assert ci["auc_either"][0] >= 0.5
    assert auc_intervals([5, 6], [1, 2, 3], seed=0) == {"auc": [1.0, 1.0], "auc_either": [1.0, 1.0]}
    assert auc_intervals(members, nonmembers, seed=1) == ci  # seeded
    reference = rng.normal(0.3, 0.05, 40)
    band = band_intervals(reference, [0.30, 0.9, 0.0], k=2.0, seed=0)
    lower, upper = reference.mean() - 2 * reference.std(), reference.mean() + 2 * reference.std()
    assert band["lower"][0] < lower < band["lower"][1] and band["upper"][0] < upper < band["upper"][1]
    assert band["low"] == [1.0, 1.0] and band["high"] == [1.0, 1.0]  # far outside on every resample
    few = band_intervals(reference[:8], [0.3], k=2.0, seed=0)
    assert few["upper"][1] - few["upper"][0] > band["upper"][1] - band["upper"][0]  # fewer never-seen: wider
