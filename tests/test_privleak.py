"""One PrivLeak, MUSE's, on every benchmark: the memorization audit, muse-news and tofu give the same value on the
same scores, and that value is MUSE's released formula (muse_bench privleak/scripts/get_ppl.py: its Min-k score is
-mean of the lowest log-probabilities, the ROC is taken on minus that score with the holdout set labelled 1, and
PrivLeak = (AUC_unlearned - AUC_retrain) / AUC_retrain) written here independently with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, roc_curve

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.config import ScoringConfig
from obliviate.data import SequenceSet
from obliviate.data.sequences import Sequence
from obliviate.metrics.audit import against_retain_only, audit_memorization
from obliviate.metrics.uncertainty import privleak
from obliviate.models import load_model
from obliviate.muse.attacks import privleak_min_k
from obliviate.tofu.report import membership_privleak


def _muse_auc(forget_mink: np.ndarray, holdout_mink: np.ndarray) -> float:
    """MUSE's AUC of its Min-k% score (loss-like: -our likelihood score), forget labelled 0, holdout 1."""
    ppl = np.concatenate([-forget_mink, -holdout_mink])
    labels = np.array([0] * len(forget_mink) + [1] * len(holdout_mink))
    fpr, tpr, _ = roc_curve(labels, -ppl)
    return float(auc(fpr, tpr))


def _muse_privleak(unlearned, retrain) -> float:
    mine = _muse_auc(unlearned.target.values["mia_mink"], unlearned.reference.values["mia_mink"])
    gold = _muse_auc(retrain.target.values["mia_mink"], retrain.reference.values["mia_mink"])
    return (mine - gold) / gold


def test_privleak_by_hand_has_muses_sign_and_denominator():
    assert privleak(0.5, 0.5) == 0.0  # as the retain-only model
    assert privleak(1.0, 0.5) == pytest.approx(-1.0)  # forget all more likely than holdout: still memorized
    assert privleak(0.0, 0.5) == pytest.approx(1.0)  # all less likely: over-unlearned
    assert privleak(0.9, 0.6) == pytest.approx((0.1 - 0.4) / 0.4)  # denominator: the retain-only MUSE AUC
    assert privleak(0.7, 1.0) is None  # retain-only MUSE AUC 0: undefined


def test_memorization_muse_news_and_tofu_give_the_same_privleak_as_muses_code(memorizing_model):
    sets = [SequenceSet(n, tuple(Sequence(f"{n}{i}", t) for i, t in enumerate(texts)))
            for n, texts in (("forget", TRAINED_TEXTS), ("holdout", UNSEEN_TEXTS))]  # fmt: skip
    scoring = ScoringConfig(max_tokens=48, el_n=[], neighbours=0, bootstrap=0)
    unlearned = audit_memorization(memorizing_model, *sets, scoring, progress=False)
    retrain = audit_memorization(load_model("tiny:9", device="cpu", dtype="float32"), *sets, scoring, progress=False)
    expected = _muse_privleak(unlearned, retrain)

    gold = against_retain_only(unlearned, retrain, "retain-only")  # the memorization benchmark (and muse-news's audit)
    memorization = gold["privleak"]["mink"]
    muse_news = privleak_min_k({"after": unlearned.to_dict(), "gold_standard": gold})
    membership = {"unlearned": unlearned.miau()["mink"], "retain-only": retrain.miau()["mink"]}
    tofu = membership_privleak(membership)  # tofu's membership attack has the same AUC layout
    assert memorization == pytest.approx(expected, abs=1e-12)
    assert muse_news == pytest.approx(expected, abs=1e-12) and tofu == pytest.approx(expected, abs=1e-12)
    assert expected < -0.5  # a model that memorized the forget texts: strongly negative in MUSE's sign
