"""The report of a TOFU run (``obliviate tofu``): summary.md tables, the attack lines and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.attacks.quantization import QUANTIZATION_NOTE
from obliviate.metrics.uncertainty import privleak
from obliviate.render.markdown import markdown_table
from obliviate.render.plots import plot_roc_curves, plot_tradeoff, plot_value_histograms


def write_tofu_plots(run_dir: Path, metrics: dict[str, Any], evaluations: dict[str, dict[str, Any]]) -> None:
    """tradeoff.png (when traced), truth_ratios.png and membership_roc.png (when the attack ran);
    ``evaluations``: the TOFU evaluations of the full, unlearned and retain-only models."""
    trace = metrics["trace"]
    steps = [r["step"] for r in trace]
    if trace:
        plot_tradeoff(
            run_dir / "tradeoff.png",
            steps,
            {
                "forget answer probability": [r["forget_probability"] for r in trace],
                "retain answer probability": [r["retain_probability"] for r in trace],
            },
            f"{metrics['method']}: forget / retain trade-off per epoch",
            "value",
            "forget answer probability",
        )
    plot_value_histograms(run_dir / "truth_ratios.png",
                          {name: e["forget"]["truth_ratios"] for name, e in evaluations.items()},
                          "forget truth ratios (forget quality compares unlearned with retain-only)",
                          "truth ratio R = P(perturbed)/P(paraphrased)", log_x=True)  # fmt: skip
    if metrics["attacks"]["membership"]:
        plot_roc_curves(run_dir / "membership_roc.png", metrics["attacks"]["membership"],
                        title="loss attack: forget authors vs never-trained authors")  # fmt: skip


def tofu_summary(metrics: dict[str, Any]) -> str:
    rows = [[name, r["forget_quality"], r["model_utility"], r["forget_truth_ratio_mean"],
             r["forget_truth_ratio_score"], r["forget_probability"], r.get("forget_rouge1_recall"),
             r["forget_rouge_l_recall"], r["retain_probability"], r.get("retain_rouge1_recall"),
             r["retain_rouge_l_recall"]] for name, r in metrics["models"].items()]  # fmt: skip
    mean = metrics.get("truth_ratio_mean", "geometric")
    trace_rows = [
        [r["epoch"] + 1, r["step"], r["forget_probability"], r["retain_probability"]] for r in metrics["trace"]
    ]
    attacks = metrics["attacks"]
    lines = [
        f"# TOFU-mini: {metrics['method']} on {metrics['model']}", "",
        f"Forget split {metrics['forget_split']} ({metrics['forget_items']} QA) against {metrics['retain_authors']} "
        f"retain authors; {metrics['steps']} optimizer steps, unlearning {metrics['seconds_unlearning']:.0f} s, "
        f"whole run {metrics['seconds']:.0f} s. Fine-tuned models: `{metrics['models_dir']}`.", "",
        "## TOFU metrics", "",
        markdown_table(["model", "forget quality (KS p)", "model utility", "forget truth ratio (mean R)",
                        "forget TR score", "forget prob.", "forget ROUGE-1", "forget ROUGE-L", "retain prob.",
                        "retain ROUGE-1", "retain ROUGE-L"], rows),
        "", "Forget quality: KS-test p-value of the forget truth ratios (perturbed answers averaged geometrically, "
        "as TOFU's code) against the retain-only model's (higher is better; the retain-only model scores 1). Model "
        "utility: harmonic mean of probability, ROUGE-L recall and truth ratio on retain authors, real authors and "
        f"world facts. The forget TR columns and model utility average the perturbed answers {mean}ally "
        "(`truth_ratio_mean`). ROUGE: recall of greedy replies (rouge-score, stemmed).", "",
        "## Forget / retain trade-off per epoch", "",
        markdown_table(["epoch", "step", "forget prob.", "retain prob."], trace_rows) if trace_rows else
        "(not traced: `trace: false`)", "",
        "![trade-off](tradeoff.png)" if trace_rows else "", "", "![truth ratios](truth_ratios.png)", "",
        "## Attacks", "",
    ]  # fmt: skip
    lines += _attack_lines(attacks, metrics["models"]["unlearned"]["forget_probability"])
    return "\n".join(lines) + "\n"


def _attack_lines(attacks: dict[str, Any], forget_probability_after: float) -> list[str]:
    relearn, paraphrase = attacks["relearning"], attacks["paraphrase"]
    lines = []
    if "skipped" in relearn:
        lines += [f"- Relearning: skipped ({relearn['skipped']})."]
    else:
        recovery = relearn["recovery"]
        recovered = f"not reported: {relearn['note']}" if recovery is None else f"{recovery:.2f}"
        lines += [f"- Relearning: {relearn['steps']} SFT steps on {relearn['trained_on']} forget pairs; answer "
                  f"probability on the other {relearn['measured_on']} {relearn['before']:.3f} -> "
                  f"{relearn['after']:.3f} (before unlearning {relearn['before_unlearning']:.3f}); "
                  f"recovery {recovered}."]  # fmt: skip
    if paraphrase and "skipped" not in paraphrase["unlearned"]:
        full, after = paraphrase["full"], paraphrase["unlearned"]
        lines += [f"- Paraphrase: forget questions as TOFU paraphrases them ({after['n']}): answer probability "
                  f"{full['probability']:.3f} -> {after['probability']:.3f}, ROUGE-L recall of greedy replies "
                  f"{full['rouge_l_recall']:.3f} -> {after['rouge_l_recall']:.3f} (full -> unlearned)."]  # fmt: skip
    if attacks["quantization"]:
        lines += ["- Quantization: forget answer probability with the linear weights rounded: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in attacks["quantization"].items())
                  + f" (unquantized {forget_probability_after:.3f}; the full model before unlearning at these "
                  + "widths: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in attacks.get("quantization_full", {}).items())
                  + f"; {QUANTIZATION_NOTE})."]  # fmt: skip
    if attacks["membership"]:
        lines += ["- Membership (loss attack, forget authors vs never-trained authors): AUC "
                  + ", ".join(f"{k} {v['auc']:.3f} (either way {max(v['auc'], 1 - v['auc']):.3f}, members "
                              f"{'higher' if v['auc'] >= 0.5 else 'lower'})" for k, v in attacks["membership"].items())
                  + " (0.5: cannot tell them apart)" + _privleak(attacks["membership"]) + ".", "",
                  "![membership ROC](membership_roc.png)"]  # fmt: skip
    return lines


def membership_privleak(membership: dict[str, Any]) -> float | None:
    """PrivLeak (MUSE's convention) of the unlearned model's membership attack against the retain-only model's."""
    mine, gold = (membership.get(k, {}).get("auc") for k in ("unlearned", "retain-only"))
    return privleak(mine, gold) if mine is not None and gold is not None else None


def _privleak(membership: dict[str, Any]) -> str:
    """'; PrivLeak ...' of the unlearned model against the retain-only one, when both were attacked."""
    if not membership.get("retain-only") or not membership.get("unlearned"):
        return ""
    leak = membership_privleak(membership)
    if leak is None:
        return "; PrivLeak against the retain-only model undefined (its MUSE AUC is 0)"
    return (f"; PrivLeak against the retain-only model {leak:+.3f} (MUSE's convention: 0 as if never trained on, "
            "< 0 still memorized, > 0 over-unlearned)")
