"""PNG plots for reports: memorization histograms against the unseen band, and attack ROC curves.

Figures are built with matplotlib's object API (``Figure``, rendered by Agg when saved), never through pyplot, so
the caller's matplotlib backend and pyplot state are untouched; every figure is rendered into memory and written
atomically.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from obliviate.io import write_bytes_atomic

_DPI = 120


def subplots(rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], squeeze: bool = True) -> tuple[Figure, Any]:
    """A new figure and its axes, outside pyplot (no global figure registry, no backend switch)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, squeeze=squeeze)


def save_png(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically to ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


def plot_memorization_histogram(
    path: str | Path,
    series: Mapping[str, Sequence[float]],
    band: tuple[float, float] | None,
    reference_mean: float | None,
    title: str,
    xlabel: str = "exact memorization (MA)",
    bins: int = 20,
) -> Path:
    """Overlaid histograms of per-sequence MA values over ``[0, 1]``, one per named series.

    ``band`` (the unseen-reference ``mean ± k*std``) is shaded and ``reference_mean`` drawn dashed.
    Returns the path written.
    """
    fig, ax = subplots(figsize=(7, 4.2))
    edges = np.linspace(0.0, 1.0, bins + 1)
    if band is not None:
        lo, hi = max(0.0, float(band[0])), min(1.0, float(band[1]))
        ax.axvspan(lo, hi, color="0.6", alpha=0.25, label=f"unseen band [{band[0]:.3f}, {band[1]:.3f}]")
    for name, values in series.items():
        arr = np.clip(np.asarray(list(values), dtype=float), 0.0, 1.0)
        arr = arr[np.isfinite(arr)]
        ax.hist(arr, bins=edges, alpha=0.5, label=f"{name} (n={arr.size})", edgecolor="none")
    if reference_mean is not None:
        ax.axvline(
            float(reference_mean),
            color="k",
            linestyle="--",
            linewidth=1.2,
            label=f"unseen mean {reference_mean:.3f}",
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sequences")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)


def plot_roc_curves(path: str | Path, curves: Mapping[str, Mapping[str, Any]], title: str = "ROC") -> Path:
    """ROC curves of several attacks; each value is a :func:`obliviate.metrics.roc.roc_summary` dict."""
    fig, ax = subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.5", linestyle=":", linewidth=1, label="chance")
    for name, summary in curves.items():
        curve = summary["curve"]
        ax.plot(curve["fpr"], curve["tpr"], linewidth=1.5, label=f"{name} (AUC {summary['auc']:.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return save_png(fig, path)


def plot_unlearning_trace(
    path: str | Path, trace: Sequence[Mapping[str, Any]], band: tuple[float, float], title: str
) -> Path:
    """Per-sequence MA over optimizer steps (thin lines), their mean (thick) and the unseen band."""
    steps = [record["step"] for record in trace]
    ids = list(trace[0]["ma"]) if trace else []
    fig, ax = subplots(figsize=(7, 4.2))
    ax.axhspan(band[0], band[1], color="0.6", alpha=0.25, label=f"unseen band [{band[0]:.3f}, {band[1]:.3f}]")
    for sid in ids:
        ax.plot(steps, [record["ma"][sid] for record in trace], color="tab:blue", alpha=0.25, linewidth=0.8)
    ax.plot(steps, [record["mean_ma"] for record in trace], color="k", linewidth=2, label="mean MA")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("exact memorization (MA)")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)


def plot_tradeoff(path: str | Path, steps: Sequence[int], series: Mapping[str, Sequence[float | None]], title: str,
                  ylabel: str, forget: str | None = None) -> Path:  # fmt: skip
    """Forget/retain trade-off over optimizer steps: one line per named series (None values are left out);
    the ``forget`` series is drawn thick and red, the others are what should stay put."""
    fig, ax = subplots(figsize=(7, 4.2))
    for name, values in series.items():
        points = [(s, v) for s, v in zip(steps, values, strict=True) if v is not None]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = {"color": "tab:red", "linewidth": 2.2} if name == forget else {"linewidth": 1.4}
        ax.plot(xs, ys, marker="o", markersize=3, label=name, **style)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)


def plot_value_histograms(path: str | Path, series: Mapping[str, Sequence[float]], title: str, xlabel: str,
                          bins: int = 20, log_x: bool = False) -> Path:  # fmt: skip
    """Overlaid histograms of several models' per-item values (e.g. TOFU truth ratios)."""
    fig, ax = subplots(figsize=(7, 4.2))
    arrays = {k: np.asarray([v for v in values if np.isfinite(v) and (v > 0 or not log_x)], dtype=float)
              for k, values in series.items()}  # fmt: skip
    pooled = np.concatenate([a for a in arrays.values() if a.size]) if any(a.size for a in arrays.values()) else None
    if pooled is not None:
        lo, hi = float(pooled.min()), float(pooled.max())
        edges = np.geomspace(lo, hi, bins + 1) if log_x and lo > 0 and hi > lo else np.linspace(lo, hi or 1.0, bins + 1)
        for name, arr in arrays.items():
            ax.hist(arr, bins=edges, alpha=0.45, label=f"{name} (n={arr.size})", edgecolor="none")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)
