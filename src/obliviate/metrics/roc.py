"""ROC summary of a membership-inference attack: members are labelled 1, higher score = more likely member."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from obliviate.errors import DataError


def _scores(values: Iterable[float], side: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float).reshape(-1)
    if arr.size == 0:
        raise DataError(f"no {side} scores: an ROC needs at least one member and one non-member")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{side} score at position {bad} is not finite: {arr[bad]!r}")
    return arr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """Largest TPR on the curve among points whose FPR is at most ``level``."""
    mask = fpr <= level + 1e-12
    return float(tpr[mask].max()) if np.any(mask) else 0.0


def roc_summary(member_scores: Iterable[float], nonmember_scores: Iterable[float]) -> dict[str, Any]:
    """AUC, TPR at 1% and 5% FPR, the sample sizes and the curve itself (for plotting), and the same from the
    attacker's best direction: an AUC below 0.5 separates members just as well by flipping the score (members
    score *lower* than non-members - the over-unlearning signature), so ``auc_either`` = max(AUC, 1 - AUC),
    ``direction`` says which way ('higher' or 'lower'), and the TPRs at low FPR are taken in that direction.

    Raises :class:`DataError` if either side is empty or contains a non-finite score.
    """
    members = _scores(member_scores, "member")
    nonmembers = _scores(nonmember_scores, "non-member")
    y_true = np.concatenate([np.ones(members.size, dtype=int), np.zeros(nonmembers.size, dtype=int)])
    y_score = np.concatenate([members, nonmembers])
    auc = float(roc_auc_score(y_true, y_score))
    fpr, tpr, _ = roc_curve(y_true, y_score, drop_intermediate=False)
    flipped_fpr, flipped_tpr, _ = roc_curve(y_true, -y_score, drop_intermediate=False)
    best_fpr, best_tpr = (fpr, tpr) if auc >= 0.5 else (flipped_fpr, flipped_tpr)
    return {
        "auc": auc,
        "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(fpr, tpr, 0.05),
        "auc_either": max(auc, 1.0 - auc),
        "direction": "higher" if auc >= 0.5 else "lower",  # members score higher / lower than non-members
        "tpr_at_1pct_fpr_either": tpr_at_fpr(best_fpr, best_tpr, 0.01),
        "tpr_at_5pct_fpr_either": tpr_at_fpr(best_fpr, best_tpr, 0.05),
        "n_members": int(members.size),
        "n_nonmembers": int(nonmembers.size),
        "curve": {"fpr": [float(x) for x in fpr], "tpr": [float(x) for x in tpr]},
    }
