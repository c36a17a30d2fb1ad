"""Write an unlearning run's results: metrics.json (before/after per sequence), summary.md and plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.metrics.audit import MemorizationAudit
from obliviate.metrics.reference import calibrated_outlier_count
from obliviate.render.markdown import interval, markdown_table
from obliviate.render.plots import plot_memorization_histogram, plot_roc_curves, plot_unlearning_trace

if TYPE_CHECKING:
    from obliviate.config import UnlearnConfig
    from obliviate.methods.rules import Thresholds
    from obliviate.unlearning.loop import LoopResult


def unlearning_metrics(
    cfg: UnlearnConfig,
    *,
    before: MemorizationAudit,
    after: MemorizationAudit,
    result: LoopResult,
    thresholds: Thresholds,
    utility: dict[str, Any],
    model_path: Path | None,
    gold: dict[str, Any] | None = None,
) -> dict[str, Any]:
    b, a = before.to_dict(), after.to_dict()
    start_ref = before.reference_stats("ma")
    return {
        "model": cfg.model.model,
        "method": cfg.method,
        "preset": cfg.preset,
        "stop_rule": result.rule or cfg.stop_rule(),
        "forget": cfg.forget,
        "reference": cfg.reference or "builtin:fresh",
        "steps": result.steps,
        "stop_reason": result.stop_reason,
        "seconds_unlearning": sum(record.get("seconds", 0.0) for record in result.trace),
        "thresholds": {"tau": thresholds.tau, "band": [thresholds.lower, thresholds.upper]},
        "unlearned_model": str(model_path) if model_path else None,
        "before": b,
        "after": a,
        "outliers": {
            "before": b["outliers"],
            "after": a["outliers"],
            # the band the stop rule used (the starting model's unseen distribution)
            "after_vs_start_band": calibrated_outlier_count(after.target.values["ma"], start_ref, cfg.scoring.k_sigma),
        },
        "miau": a["miau"],
        "utility": utility,
        **({"gold_standard": gold} if gold else {}),
    }


def _row(name: str, before: Any, after: Any) -> list[Any]:
    return [name, before, after]


def _headline(value: Any) -> Any:
    """A utility entry's headline: a benchmark's accuracy, fluency's two numbers, or the value (perplexity)."""
    if isinstance(value, dict) and "repeating_share" in value:
        return f"distinct-2 {value['distinct_2']:.3f}, {value['repeating_share']:.0%} repeating"
    return value["accuracy"] if isinstance(value, dict) and "accuracy" in value else value


def _best(best: dict[str, Any]) -> str:
    """The strongest membership score, either way: 'members lower' is the over-unlearning signature."""
    either = f"{best['auc_either']:.4f}{interval(best.get('auc_either_ci'))}"
    return f"{either} ({best['score']}, members {best['direction']})"


def _count(outliers: dict[str, Any], side: str) -> str:
    """A calibrated count with the 95% interval it has over resamples of the never-seen set."""
    interval = (outliers.get("intervals") or {}).get(side)
    return f"{outliers[side]}" + (f" [{interval[0]:.0f}, {interval[1]:.0f}]" if interval else "")


def gold_section(gold: dict[str, Any] | None) -> str:
    """Markdown: PrivLeak per attack score and the KS forget quality against the retain-only model."""
    if not gold:
        return ""
    rows = [[name, gold["auc_retain_only"][name], value] for name, value in gold["privleak"].items()]
    quality = gold["forget_quality"]
    return (f"## Against the retain-only model (`{gold['model']}`)\n\nPrivLeak, MUSE's convention (a fraction; MUSE "
            "prints it x100): (AUC unlearned - AUC retain-only) / AUC retain-only with MUSE's AUC (never-seen text "
            "the positive class: 1 - the AUC above) on the same members and never-seen text - 0: as if never "
            "trained on; < 0: still memorized (about -1 for a model that memorized them); > 0: over-unlearned.\n\n"
            + markdown_table(["attack score", "AUC retain-only", "PrivLeak"], rows)
            + f"\nKS forget quality (forget set under the unlearned vs the retain-only model): MA p = "
            f"{quality['ma']['p_value']:.4g} (D {quality['ma']['statistic']:.3f}), loss p = "
            f"{quality['loss']['p_value']:.4g} (D {quality['loss']['statistic']:.3f}).\n\n")  # fmt: skip


def write_unlearning_report(run_dir: Path, cfg: UnlearnConfig, **parts: Any) -> dict[str, Any]:
    metrics = unlearning_metrics(cfg, **parts)
    write_json_atomic(run_dir / "metrics.json", metrics)
    before, after = parts["before"], parts["after"]
    result, thresholds = parts["result"], parts["thresholds"]
    band = (thresholds.lower, thresholds.upper)
    plot_memorization_histogram(
        run_dir / "ma_histogram.png",
        {
            "forget, before": before.target.values["ma"].tolist(),
            "forget, after": after.target.values["ma"].tolist(),
            "never-seen": before.reference.values["ma"].tolist(),
        },
        band=band, reference_mean=thresholds.tau, title=f"Per-sequence MA before/after {cfg.method.upper()}",
    )  # fmt: skip
    if result.trace:
        plot_unlearning_trace(run_dir / "trace.png", result.trace, band, f"{cfg.method.upper()}: MA per step")
    plot_roc_curves(run_dir / "miau_roc.png", after.miau(), title="MIAU after unlearning")
    b, a = metrics["before"], metrics["after"]
    edges = b["outliers"]["calibrated"].get("intervals") or {}
    rows = [
        _row("forget mean MA", b["target"]["aggregate"]["ma"]["mean"], a["target"]["aggregate"]["ma"]["mean"]),
        _row("forget std MA", b["target"]["aggregate"]["ma"]["std"], a["target"]["aggregate"]["ma"]["std"]),
        _row("forget max MA", b["target"]["aggregate"]["ma"]["max"], a["target"]["aggregate"]["ma"]["max"]),
        _row(
            "never-seen mean MA", b["reference"]["aggregate"]["ma"]["mean"], a["reference"]["aggregate"]["ma"]["mean"]
        ),
    ]
    start_band = metrics["outliers"]["after_vs_start_band"]
    for side in ("high", "low"):
        rows.append(_row(f"c(D_f) calibrated, {side} side (start band)", _count(b["outliers"]["calibrated"], side),
                         start_band[side]))  # fmt: skip
        rows.append(_row(f"c(D_f) calibrated, {side} side (band re-scored)", _count(b["outliers"]["calibrated"], side),
                         _count(a["outliers"]["calibrated"], side)))  # fmt: skip
        rows.append(_row(f"c(D_f) fixed, {side} side", b["outliers"]["fixed"][side], a["outliers"]["fixed"][side]))
    rows.append(_row("MIAU best AUC either way", _best(b["miau_best"]), _best(a["miau_best"])))
    utility = metrics["utility"]
    for key in utility.get("after") or {}:
        value_after = utility["after"][key]
        value_before = (utility.get("before") or {}).get(key)
        rows.append(_row(key, _headline(value_before), _headline(value_after)))
    text = (
        f"# Unlearning run: {cfg.method.upper()}\n\n- model: `{cfg.model.model}`\n- forget: `{cfg.forget}` "
        f"({len(before.target.ids)} sequences); never-seen reference: `{metrics['reference']}`\n"
        f"- stop rule: `{metrics['stop_rule']}` (tau {thresholds.tau:.4f}, band [{band[0]:.4f}, {band[1]:.4f}] "
        f"from {len(before.reference.ids)} never-seen sequences; 95% intervals of its edges:"
        f"{interval(edges.get('lower'))},{interval(edges.get('upper'))})\n"
        f"- optimizer steps: {result.steps}; stopped: {result.stop_reason}\n"
        f"- unlearned model: `{metrics['unlearned_model']}`\n\n## Before and after\n\n"
        + markdown_table(["metric", "before", "after"], rows)
        + "\n![MA before/after](ma_histogram.png)\n\n"
        + ("![MA per step](trace.png)\n\n" if result.trace else "")
        + "## MIAU after unlearning\n\n"
        + markdown_table(
            ["attack score", "ROC-AUC", "AUC either way [95% CI]", "members score", "TPR @ 1% FPR", "TPR @ 5% FPR"],
            [[n, s["auc"], f"{s['auc_either']:.4f}{interval(s.get('auc_either_ci'), 2)}", s["direction"],
              s["tpr_at_1pct_fpr_either"], s["tpr_at_5pct_fpr_either"]] for n, s in metrics["miau"].items()],
        )
        + f"\nIntervals: percentile bootstrap ({cfg.scoring.bootstrap} resamples; AUCs resample members and "
        "non-members, band edges and counts resample the never-seen set).\n\n![MIAU ROC](miau_roc.png)\n\n"
        + gold_section(metrics.get("gold_standard"))
    )
    write_text_atomic(run_dir / "summary.md", text)
    return metrics
