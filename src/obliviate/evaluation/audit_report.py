"""Write a memorization audit into a run directory: metrics.json, summary.md and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.metrics.audit import MemorizationAudit
from obliviate.render.markdown import interval, markdown_table
from obliviate.render.plots import plot_memorization_histogram, plot_roc_curves


def audit_tables(audit: MemorizationAudit, metrics: dict[str, Any]) -> str:
    """Markdown tables: aggregates per set, outlier counts and MIAU."""
    target, reference = metrics["target"]["aggregate"], metrics["reference"]["aggregate"]
    rows = [
        [
            name,
            target[name]["mean"],
            target[name]["std"],
            target[name]["min"],
            target[name]["max"],
            reference.get(name, {}).get("mean"),
            reference.get(name, {}).get("std"),
        ]
        for name in target
    ]
    text = "## Per-sequence metrics (target vs never-seen reference)\n\n" + markdown_table(
        ["metric", "target mean", "target std", "target min", "target max", "unseen mean", "unseen std"], rows
    )
    fixed, calibrated = metrics["outliers"]["fixed"], metrics["outliers"]["calibrated"]
    low, high = calibrated["band"]
    text += f"\n## Outlier count c(D_f) over {len(audit.target.ids)} sequences\n\n" + markdown_table(
        ["definition", "low side", "high side", "total"],
        [
            [
                f"fixed (MA <= {audit.cfg.fixed_low} or >= {audit.cfg.fixed_high})",
                fixed["low"],
                fixed["high"],
                fixed["total"],
            ],
            [
                f"calibrated (outside unseen band [{low:.4f}, {high:.4f}], k={calibrated['k']})",
                calibrated["low"],
                calibrated["high"],
                calibrated["total"],
            ],
            *_interval_row(calibrated),
        ],
    )
    text += "\n## MIAU: target members vs never-seen non-members\n\n" + markdown_table(
        ["attack score", "ROC-AUC", "AUC either way [95% CI]", "members score", "TPR @ 1% FPR", "TPR @ 5% FPR"],
        [[name, s["auc"], f"{s['auc_either']:.4f}" + interval(s.get("auc_either_ci"), 2), s["direction"],
          s["tpr_at_1pct_fpr_either"], s["tpr_at_5pct_fpr_either"]] for name, s in metrics["miau"].items()],
    )
    if audit.cfg.bootstrap:
        text += (f"\nIntervals: percentile bootstrap, {audit.cfg.bootstrap} resamples (AUCs: members and non-members "
                 "resampled apart; band edges and counts: the never-seen set resampled).\n")  # fmt: skip
    return text


def _interval_row(calibrated: dict[str, Any]) -> list[list[Any]]:
    """The calibrated counts' 95% intervals and the band edges' (none without bootstrap)."""
    iv = calibrated.get("intervals")
    if not iv:
        return []
    return [[f"95% interval (band edges [{iv['lower'][0]:.4f}, {iv['lower'][1]:.4f}] / [{iv['upper'][0]:.4f}, "
             f"{iv['upper'][1]:.4f}])", f"{iv['low'][0]:.0f}-{iv['low'][1]:.0f}", f"{iv['high'][0]:.0f}-"
             f"{iv['high'][1]:.0f}", ""]]  # fmt: skip


def write_memorization_report(run_dir: Path, audit: MemorizationAudit, header: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json (aggregate + per sample), summary.md, ma_histogram.png and miau_roc.png."""
    metrics = {**header, **audit.to_dict()}
    write_json_atomic(run_dir / "metrics.json", metrics)
    ref = audit.reference_stats("ma")
    plot_memorization_histogram(
        run_dir / "ma_histogram.png",
        {"target": audit.target.values["ma"].tolist(), "never-seen": audit.reference.values["ma"].tolist()},
        band=ref.band(audit.cfg.k_sigma),
        reference_mean=ref.mean,
        title=f"Per-sequence exact memorization, {header.get('model', '')}",
    )
    plot_roc_curves(run_dir / "miau_roc.png", audit.miau(), title="MIAU: target vs never-seen")
    summary = (
        f"# Memorization audit\n\n- model: `{header.get('model')}`\n- target: `{header.get('sequences')}`"
        f" ({len(audit.target.ids)} sequences)\n- never-seen reference: `{header.get('reference')}`"
        f" ({len(audit.reference.ids)} sequences)\n- window: {audit.cfg.max_tokens} tokens\n\n"
        + audit_tables(audit, metrics)
        + "\n![MA histogram](ma_histogram.png)\n\n![MIAU ROC](miau_roc.png)\n"
    )
    write_text_atomic(run_dir / "summary.md", summary)
    return metrics
