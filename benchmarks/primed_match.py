"""A MATCH method primed with fixed per-sequence targets and current scores, ready to take one step without the
calibration pass that would set them: the benchmarks that time or measure one MATCH step use it."""

from __future__ import annotations

import numpy as np


def primed_match(n: int, *, thresholds: tuple[float, float, float], loss: tuple[float, float],
                 entropy: tuple[float, float], ma: tuple[float, float], tol: float, cap: float):  # fmt: skip
    """MATCH on ``n`` sequences: ``thresholds`` (tau, upper, lower) of the band; ``loss`` / ``entropy`` / ``ma``:
    (target, current value) of every sequence; ``tol`` the targets' tolerance, ``cap`` the steer cap. Returns
    (method, selected indices)."""
    from obliviate.methods.match import NeverSeenMatching
    from obliviate.methods.rules import Thresholds

    tau, upper, lower = thresholds
    method = NeverSeenMatching("outliers", Thresholds(tau=tau, upper=upper, lower=lower))
    method.targets, method.ma_targets = np.full(n, loss[0]), np.full(n, ma[0])
    method.entropy_targets, method.minkpp_targets = np.full(n, entropy[0]), np.full(n, -1.0)
    method.tol = method.entropy_tol = method.minkpp_tol = tol
    method.cap = cap
    method.scores = {"loss": np.full(n, loss[1]), "entropy": np.full(n, entropy[1]), "ma": np.full(n, ma[1])}
    return method, [int(i) for i in method.select(np.full(n, ma[1]))]
