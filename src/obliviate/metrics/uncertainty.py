"""How certain the audit's figures are: bootstrap intervals for the never-seen band's edges, the outlier counts
c(D_f) and every attack's AUC; the comparison with a retain-only (gold standard) model - MUSE's PrivLeak and
two-sample KS tests of the forget set's per-sequence distributions.

Percentile bootstrap, seeded. The band edges and c(D_f) resample the never-seen reference (the forget set is the
fixed set being judged: what is uncertain is where never-seen text lies); an AUC resamples members and
non-members separately (stratified), so every resample keeps both classes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.stats import ks_2samp, rankdata

DEFAULT_RESAMPLES = 1000


def _interval(samples: np.ndarray, confidence: float) -> list[float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


def band_intervals(reference: Iterable[float], target: Iterable[float], k: float, *, resamples: int = DEFAULT_RESAMPLES,
                   confidence: float = 0.95, seed: int = 0) -> dict[str, list[float]]:  # fmt: skip
    """Intervals for the band's lower and upper edges (mean -+ k std, population std) and for the number of
    ``target`` values below / above the band, over bootstrap resamples of ``reference``."""
    ref, tgt = np.asarray(list(reference), float), np.asarray(list(target), float)
    rng = np.random.default_rng(seed)
    draws = ref[rng.integers(0, ref.size, size=(resamples, ref.size))]
    mean, std = draws.mean(1), draws.std(1)
    lower, upper = mean - k * std, mean + k * std
    low_counts = (tgt[None, :] < lower[:, None]).sum(1)
    high_counts = (tgt[None, :] > upper[:, None]).sum(1)
    return {"lower": _interval(lower, confidence), "upper": _interval(upper, confidence),
            "low": _interval(low_counts, confidence), "high": _interval(high_counts, confidence)}  # fmt: skip


def auc_values(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row pair (members [R, m], non-members [R, n]) by the Mann-Whitney rank sum, ties halved."""
    m = members.shape[1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)
    return (ranks[:, :m].sum(1) - m * (m + 1) / 2) / (m * nonmembers.shape[1])


def auc_intervals(members: Iterable[float], nonmembers: Iterable[float], *, resamples: int = DEFAULT_RESAMPLES,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, list[float]]:  # fmt: skip
    """Stratified bootstrap intervals for the AUC and for auc_either = max(AUC, 1 - AUC)."""
    mem, non = np.asarray(list(members), float), np.asarray(list(nonmembers), float)
    rng = np.random.default_rng(seed)
    aucs = auc_values(mem[rng.integers(0, mem.size, size=(resamples, mem.size))],
                      non[rng.integers(0, non.size, size=(resamples, non.size))])  # fmt: skip
    return {"auc": _interval(aucs, confidence), "auc_either": _interval(np.maximum(aucs, 1 - aucs), confidence)}


def privleak(auc_unlearned: float, auc_retain_only: float) -> float | None:
    """MUSE's PrivLeak, the one obliviate reports on every benchmark, as a fraction (MUSE prints it x100).

    The arguments are obliviate's AUCs, forget samples as members (1: every forget sample more likely than every
    never-seen one). MUSE's released code (muse_bench's PrivLeak) labels the holdout set positive, so its AUC is
    1 - ours, and PrivLeak = (AUC_unlearned - AUC_retain-only) / AUC_retain-only on its AUCs:
    0 as if never trained on, < 0 the forget set still looks seen (a model that memorized it: about -1), > 0 it
    looks less seen than never-seen text (over-unlearned). None when the retain-only model's MUSE AUC is 0 (its
    forget samples all more likely than never-seen ones): the ratio is undefined."""
    ours, gold = 1.0 - auc_unlearned, 1.0 - auc_retain_only
    return (ours - gold) / gold if gold > 0 else None


def ks_forget_quality(unlearned: Iterable[float], retain_only: Iterable[float]) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov test of a per-sequence metric of the forget set under the unlearned model
    against the same under the retain-only model (as TOFU's forget quality does for truth ratios): a high p-value
    means the two cannot be told apart."""
    result = ks_2samp(np.asarray(list(unlearned), float), np.asarray(list(retain_only), float))
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue)}
