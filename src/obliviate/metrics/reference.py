"""Statistics of the "unseen reference" memorization distribution and outlier counts against it.

The unseen reference is text the model has never been trained on; its per-sequence exact-memorization
(MA) values describe what "not memorized" looks like for this model.  After unlearning, a forget set
should look like this reference: neither far more memorized (not forgotten) nor far less memorized
(an over-unlearning signature the attacker can also detect).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from obliviate.errors import DataError

_QUANTILES = (5, 25, 50, 75, 95)


def _as_finite_array(values: Iterable[float], what: str = "values") -> np.ndarray:
    """Return ``values`` as a 1-D float array, raising :class:`DataError` on non-finite entries."""
    arr = np.asarray(list(values), dtype=float).reshape(-1)
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise DataError(f"{what} contain a non-finite value at position {bad}: {arr[bad]!r}")
    return arr


@dataclass(frozen=True)
class ReferenceStats:
    """Mean, population standard deviation and the raw values of a reference distribution."""

    mean: float
    std: float
    values: tuple[float, ...]

    @classmethod
    def from_values(cls, values: Iterable[float]) -> ReferenceStats:
        """Build the statistics from raw per-sequence values (population std, ``ddof=0``).

        Raises :class:`DataError` when ``values`` is empty or holds a NaN/inf.
        """
        arr = _as_finite_array(values, "reference values")
        if arr.size == 0:
            raise DataError("the unseen reference set is empty: cannot compute reference statistics")
        return cls(mean=float(arr.mean()), std=float(arr.std(ddof=0)), values=tuple(float(v) for v in arr))

    def band(self, k: float = 2.0) -> tuple[float, float]:
        """The interval ``(mean - k*std, mean + k*std)``."""
        return (self.mean - k * self.std, self.mean + k * self.std)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary: mean, std, n, min, max, quantiles (5/25/50/75/95) and the values."""
        arr = np.asarray(self.values, dtype=float)
        if arr.size:
            qs = {f"q{q:02d}": float(np.percentile(arr, q)) for q in _QUANTILES}
            lo, hi = float(arr.min()), float(arr.max())
        else:
            qs = {f"q{q:02d}": math.nan for q in _QUANTILES}
            lo = hi = math.nan
        return {
            "mean": self.mean,
            "std": self.std,
            "n": int(arr.size),
            "min": lo,
            "max": hi,
            "quantiles": qs,
            "values": [float(v) for v in arr],
        }


def fixed_outlier_count(values: Iterable[float], low: float = 0.15, high: float = 0.60) -> dict[str, int]:
    """c(D_f), fixed rule: values at or below ``low`` plus values at or above ``high`` (``n`` = set size)."""
    arr = _as_finite_array(values)
    below, above = int(np.count_nonzero(arr <= low)), int(np.count_nonzero(arr >= high))
    return {"low": below, "high": above, "total": below + above, "n": int(arr.size)}


def calibrated_outlier_count(values: Iterable[float], reference: ReferenceStats, k: float = 2.0) -> dict[str, Any]:
    """Count values strictly outside the reference band ``mean ± k*std``.

    Returns ``{"low", "high", "total" (= low + high), "n", "band": [lo, hi], "k"}``; values exactly on an
    edge are inside.
    """
    arr = _as_finite_array(values)
    lo, hi = reference.band(k)
    below, above = int(np.count_nonzero(arr < lo)), int(np.count_nonzero(arr > hi))
    return {
        "low": below,
        "high": above,
        "total": below + above,
        "n": int(arr.size),
        "band": [float(lo), float(hi)],
        "k": float(k),
    }


def two_sided_outlier_score(values: Iterable[float], reference: ReferenceStats) -> np.ndarray:
    """Distance ``|v - reference.mean|`` of each value: high means unlike never-seen text, either way."""
    arr = _as_finite_array(values)
    return np.abs(arr - reference.mean)
