"""What the commands print after a run: the headline numbers of each benchmark's metrics, as rich tables. The
console has markup off, so user text (ids, paths, model names) is printed as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from obliviate.cli.common import console
from obliviate.render.markdown import interval


def print_run(run_dir: Path | None, metrics: dict[str, Any]) -> None:
    """The result of any ``obliviate unlearn`` run, by benchmark."""
    if run_dir is None:  # not the main process
        return
    printers = {"memorization": print_memorization_run, "associations": print_associations_run, "qa": print_qa_run,
                "tofu": print_tofu_run, "muse-news": print_muse_run}  # fmt: skip
    printer = printers.get(metrics.get("benchmark", "memorization"), print_summary_sets)
    printer(metrics)
    print_guardrails(metrics)
    console.print(f"\nRun directory: {run_dir} (report.html, summary.md, metrics.json)")


def print_guardrails(metrics: dict[str, Any]) -> None:
    verdicts = metrics.get("guardrails") or []
    if not verdicts:
        return
    table = Table(title="Guardrails")
    for column in ("guardrail", "verdict", "detail"):
        table.add_column(column)
    for v in verdicts:
        table.add_row(v["guardrail"], v["verdict"].upper(), v["detail"])
    console.print(table)


def print_associations_run(metrics: dict[str, Any]) -> None:
    name = "UnSTAR" if metrics["method"] == "unstar" else metrics["method"]
    table = Table(title=f"{name} on {metrics['model']}: accuracy")
    for column in ("set", "before", "after", "after / before"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, v in metrics["sets"].items():
        kept = "-" if v["retained"] is None else f"{v['retained']:.2f}"
        table.add_row(name, f"{v['before']:.3f}", f"{v['after']:.3f}", kept)
    console.print(table)
    console.print(f"{metrics['steps']} steps, {len(metrics['rounds'])} rounds, {metrics['seconds']:.0f} s")


def print_qa_run(metrics: dict[str, Any]) -> None:
    table = Table(title=f"{metrics['method']} on {metrics['forget']}: accuracy / answer probability")
    for column in ("set", "accuracy before", "after", "probability before", "after", "n"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, v in metrics["sets"].items():
        pb, pa = (metrics[w][name]["aggregate"]["probability"] for w in ("before", "after"))
        table.add_row(name, f"{v['before']:.3f}", f"{v['after']:.3f}", f"{pb:.3f}", f"{pa:.3f}", str(v["n"]))
    console.print(table)
    console.print(f"{metrics['steps']} steps, unlearning {metrics['seconds_unlearning']:.0f} s")


def print_tofu_run(metrics: dict[str, Any]) -> None:
    title = f"TOFU-mini: {metrics['method']} ({metrics['steps']} steps, {metrics['seconds']:.0f} s)"
    table = Table(title=title)
    columns = {"forget_quality": "forget quality", "model_utility": "model utility",
               "forget_truth_ratio_mean": "forget TR", "forget_probability": "forget prob.",
               "retain_probability": "retain prob."}  # fmt: skip
    table.add_column("model")
    for label in columns.values():
        table.add_column(label, justify="right")
    for name, row in metrics["models"].items():
        table.add_row(name, *(f"{row[key]:.3g}" for key in columns))
    console.print(table)


def print_memorization_run(metrics: dict[str, Any]) -> None:
    before, after = metrics["before"]["target"]["per_sample"], metrics["after"]["target"]["per_sample"]
    table = Table(title=f"{metrics['method'].upper()} on {metrics['model']}: per-sequence MA")
    for column in ("id", "MA before", "MA after"):
        table.add_column(column, justify="left" if column == "id" else "right")
    for sid in before:
        table.add_row(sid, f"{before[sid]['ma']:.4f}", f"{after[sid]['ma']:.4f}")
    console.print(table)
    low, high = metrics["thresholds"]["band"]
    b, a = metrics["outliers"]["before"]["calibrated"], metrics["outliers"]["after_vs_start_band"]
    rescored = metrics["outliers"]["after"]["calibrated"]
    edges = b.get("intervals") or {}
    best = metrics["after"]["miau_best"]
    n_ref = metrics["before"]["reference"]["distribution"]["ma"]["n"]
    console.print(
        f"{metrics['steps']} steps ({metrics['stop_reason']}); never-seen band [{low:.4f}, {high:.4f}] from {n_ref} "
        f"passages (95% intervals of its edges:{interval(edges.get('lower'))},{interval(edges.get('upper'))}); "
        "c(D_f) "
        f"calibrated high/low: before {b['high']}/{b['low']}, after {a['high']}/{a['low']} (start band), "
        f"{rescored['high']}/{rescored['low']} (band re-scored after)"
    )
    console.print(
        f"MIAU best AUC either way after {best['auc_either']:.4f}{interval(best.get('auc_either_ci'))} "
        f"({best['score']}, members {best['direction']} than never-seen); raw AUCs from {best['auc_min']:.4f} to "
        f"{best['auc_max']:.4f}"
    )
    gold = metrics.get("gold_standard")
    if gold:
        leak, quality = gold["privleak_best"], gold["forget_quality"]
        value = "undefined" if leak["value"] is None else f"{leak['value']:+.3f} ({leak['score']})"
        console.print(
            f"Against the retain-only model: PrivLeak {value} (MUSE's sign: < 0 still memorized, > 0 "
            f"over-unlearned); KS forget quality "
            f"p = {quality['ma']['p_value']:.3g} (MA), {quality['loss']['p_value']:.3g} (loss)"
        )
    for key, value in (metrics["utility"].get("after") or {}).items():
        if key == "fluency":
            if value.get("n"):
                console.print(f"utility fluency: distinct-2 {value['distinct_2']:.3f}, "
                              f"{value['repeating_share']:.0%} of continuations repeating")  # fmt: skip
            continue
        shown = value["accuracy"] if isinstance(value, dict) else value
        console.print(f"utility {key}: {shown:.4f}")


def print_audit(metrics: dict[str, Any]) -> None:
    per_sample = metrics["target"]["per_sample"]
    keys = [k for k in ("ma", "es", "loss") if k in next(iter(per_sample.values()))]
    keys += sorted(k for k in next(iter(per_sample.values())) if k.startswith("el_"))
    table = Table(title=f"Per-sequence memorization ({metrics['model']})")
    table.add_column("id")
    for key in keys:
        table.add_column(key, justify="right")
    for sid, values in per_sample.items():
        table.add_row(sid, *(f"{values[k]:.4f}" for k in keys))
    ref = metrics["reference"]["distribution"]["ma"]
    table.add_section()
    table.add_row("never-seen mean", *(f"{metrics['reference']['aggregate'][k]['mean']:.4f}" for k in keys))
    console.print(table)
    fixed, cal = metrics["outliers"]["fixed"], metrics["outliers"]["calibrated"]
    console.print(
        f"Unseen MA {ref['mean']:.4f} +- {ref['std']:.4f}; c(D_f) fixed: {fixed['total']} "
        f"(low {fixed['low']}, high {fixed['high']}); calibrated: {cal['total']} (low {cal['low']}, "
        f"high {cal['high']}) outside [{cal['band'][0]:.4f}, {cal['band'][1]:.4f}]"
    )
    miau = Table(title="MIAU: members vs never-seen")
    for column in ("score", "AUC", "AUC either way", "members", "TPR@1%FPR", "TPR@5%FPR"):
        miau.add_column(column, justify="right" if column != "score" else "left")
    for name, s in metrics["miau"].items():
        either = f"{s['auc_either']:.4f}{interval(s.get('auc_either_ci'), 2)}"
        miau.add_row(name, f"{s['auc']:.4f}", either, s["direction"],
                     f"{s['tpr_at_1pct_fpr_either']:.4f}", f"{s['tpr_at_5pct_fpr_either']:.4f}")
    console.print(miau)


def print_registry() -> None:
    from obliviate.registry_table import support_matrix

    names, rows = support_matrix()
    table = Table(title="methods x benchmarks (yes: runs; -: refused with a reason)")
    table.add_column("method")
    for name in names:
        table.add_column(name, justify="center")
    table.add_column("settings")
    for method, cells, settings in rows:
        table.add_row(method, *("yes" if c is None else "-" for c in cells), ", ".join(settings) or "-")
    console.print(table)


def print_summary_sets(metrics: dict[str, Any]) -> None:
    """Any benchmark: each set's numbers before and after, from the common summary."""
    table = Table(title=f"{metrics['method']} on the {metrics['benchmark']} benchmark")
    for column in ("set", "metric", "before", "after"):
        table.add_column(column)
    for name, values in metrics["summary"]["sets"].items():
        for key in values.get("after") or {}:
            pair = ((values.get("before") or {}).get(key), values["after"][key])
            table.add_row(name, key, *("-" if v is None else f"{v:.4g}" for v in pair))
    console.print(table)


def print_muse_run(metrics: dict[str, Any]) -> None:
    """The per-sequence audit (as a memorization run), then MUSE's metrics against the retain-only model."""
    print_memorization_run(metrics)
    muse = metrics["muse"]
    table = Table(title=f"MUSE-News-mini: request {muse['request']}, scale {muse['scale']} (ROUGE-L F1)")
    for column in ("metric", "before", "after", "retain-only", "n"):
        table.add_column(column)
    for name in ("verbmem", "knowmem_forget", "knowmem_retain"):
        row = [f"{muse[when][name]['mean']:.3f}" for when in ("before", "after", "retain_only")]
        table.add_row(name, *row, str(muse["after"][name]["n"]))
    console.print(table)
    leak = muse.get("privleak")
    console.print("PrivLeak (Min-K%, MUSE's sign: < 0 still memorized, > 0 over-unlearned): "
                  + ("undefined" if leak is None else f"{leak:+.3f}"))
