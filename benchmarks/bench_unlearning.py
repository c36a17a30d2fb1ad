"""GA, SGA, TA and TAU (both stop rules) and MATCH on the SmolLM2 memorization testbed: one table.

Run: python benchmarks/bench_unlearning.py --testbed runs/testbed-... [--utility-limit 100] [--retain-only]
(without --testbed a testbed is built first, about 10 minutes). Writes benchmarks/results/unlearning.md after
every run (a partial table until all are done); --collect reuses finished run directories.
Each row is a real ``obliviate unlearn`` run (obliviate.api.run_unlearning) with the authors'
defaults (Adam 5e-5, betas 0.9/0.98, cap 150 steps); the run directories are kept under --output-dir."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

from _common import SHARED_DATA, write_result
from obliviate.api import run_unlearning
from obliviate.config import ModelConfig, TestbedConfig, UnlearnConfig

RUNS = [("ga", "mean"), ("sga", "mean"), ("sga", "outliers"), ("ta", "mean"), ("ta", "outliers"),
        ("tau", "mean"), ("tau", "outliers"), ("match", "own")]  # fmt: skip
OWN = "own"  # a method with its own stop rule (match): no --stop


def _testbed(args) -> Path:
    if args.testbed:
        return Path(args.testbed)
    from obliviate.testbed.build import build_testbed

    source = str(SHARED_DATA / "text" / "pile_validation.csv")
    cfg = TestbedConfig(model=ModelConfig(model="embedded", device=args.device, dtype="float32"), source=source,
                        tokens=128, output_dir=args.output_dir, progress=False)  # fmt: skip
    return build_testbed(cfg)[0]


def _cells(metrics: dict, seconds: float) -> list[str]:
    fixed, start = metrics["outliers"]["after"]["fixed"], metrics["outliers"]["after_vs_start_band"]
    rescored = metrics["outliers"]["after"]["calibrated"]
    forget = metrics["after"]["target"]["aggregate"]["ma"]
    best = metrics["after"]["miau_best"]
    utility = metrics["utility"]["after"]
    gold = metrics.get("gold_standard")
    leak = f"{gold['privleak_best']['value']:+.3f} ({gold['privleak_best']['score']})" if gold else "-"
    quality = gold["forget_quality"] if gold else None
    ks = f"{quality['ma']['p_value']:.3g} / {quality['loss']['p_value']:.3g}" if quality else "-"
    ci = best.get("auc_either_ci")
    return [
        str(metrics["steps"]),
        f"{fixed['high']} / {fixed['low']}",
        f"{start['high']} / {start['low']}",
        f"{rescored['high']} / {rescored['low']}",
        f"{forget['mean']:.4f} ± {forget['std']:.4f}",
        f"{metrics['after']['reference']['aggregate']['ma']['mean']:.4f}",
        f"{best['auc_either']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + f" ({best['score']}, "
        f"members {best['direction']})",
        leak,
        ks,
        f"{utility.get('perplexity', float('nan')):.2f}",
        *(f"{utility[name]['accuracy']:.3f}" if name in utility else "-" for name in BENCHMARKS),
        f"{metrics['seconds_unlearning']:.0f} / {seconds:.0f}",
    ]


BENCHMARKS = ["piqa", "arc_easy"]


def _wall_seconds(run_dir: Path) -> float:
    """Whole-run wall time from the first and last time stamps of the run's log."""
    stamps = [line[:23] for line in (run_dir / "run.log").read_text().splitlines() if line[:4].isdigit()]
    first, last = (datetime.strptime(x, "%Y-%m-%d %H:%M:%S,%f") for x in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def _before_row(metrics: dict) -> list[str]:
    b = metrics["before"]
    fixed, cal = b["outliers"]["fixed"], b["outliers"]["calibrated"]
    utility = metrics["utility"]["before"] or {}
    return ["memorized (before)", "-", "0", f"{fixed['high']} / {fixed['low']}", f"{cal['high']} / {cal['low']}",
            f"{cal['high']} / {cal['low']}",
            f"{b['target']['aggregate']['ma']['mean']:.4f} ± {b['target']['aggregate']['ma']['std']:.4f}",
            f"{b['reference']['aggregate']['ma']['mean']:.4f}",
            f"{b['miau_best']['auc_either']:.3f} ({b['miau_best']['score']}, members {b['miau_best']['direction']})",
            "-", "-",
            f"{utility.get('perplexity', float('nan')):.2f}",
            *(f"{utility[n]['accuracy']:.3f}" if n in utility else "-" for n in BENCHMARKS), "-"]  # fmt: skip


def _write_table(args, testbed: Path, done: dict[str, Path], pairs: list[str]) -> Path:
    metrics = {pair: json.loads((run_dir / "metrics.json").read_text()) for pair, run_dir in done.items()}
    first = next((m for m in metrics.values() if m["utility"]["before"]), next(iter(metrics.values())))
    rows = [_before_row(first)]
    notes = []
    for pair in pairs:
        if pair not in metrics:
            continue
        method, stop = pair.split(":")
        rows.append([method.upper(), stop, *_cells(metrics[pair], _wall_seconds(done[pair]))])
        notes.append(f"- {method.upper()} / {stop}: {metrics[pair]['stop_reason']}; run `{done[pair]}`")
    missing = [p for p in pairs if p not in metrics]
    headers = ["method", "stop", "steps", "c(D_f) fixed high/low", "c(D_f) calibrated high/low (start band)",
               "c(D_f) calibrated high/low (re-scored band)", "forget MA mean ± std", "held-out MA",
               "MIAU best AUC either way [95% CI] (score)", "PrivLeak vs retain-only (score)",
               "KS forget quality p vs retain-only (MA / loss)", "held-out ppl", *BENCHMARKS,
               "wall s (unlearning / run)"]  # fmt: skip
    table = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    table += "".join("| " + " | ".join(row) + " |\n" for row in rows)
    band, tau = first["thresholds"]["band"], first["thresholds"]["tau"]
    body = (
        f"Testbed `{testbed}`: 32 forget + 32 held-out Pile sequences of 128 tokens injected into SmolLM2-135M-"
        f"Instruct (see testbed.md). fp32 on the machine named above. Authors' defaults: Adam lr 5e-5, betas "
        "(0.9, 0.98), one "
        "step = one pass over the selected forget sequences, MA re-scored after every step, cap 150 steps. "
        f"Unseen (held-out) MA on the memorized model: tau = {tau:.4f}, band mu ± 2 sigma = [{band[0]:.4f}, "
        f"{band[1]:.4f}]. Stop `mean`: mean forget MA < tau (authors); `outliers`: no sequence above the band "
        "(ours; SGA/TA then also never train on a sequence already inside the band). SGA/TAU gamma: 0.70 "
        "under `mean` (authors), the band's upper edge under `outliers`. c(D_f) after unlearning is counted "
        "against the start band (what the stop rule targets) and against the band of the held-out set re-scored "
        f"on the unlearned model. MATCH has its own stop rule (every sequence at its never-seen loss and entropy "
        "quantile and inside the band on both sides). MIAU: forget vs held-out, the best AUC either way "
        "(max(AUC, 1 - AUC)) with its 95% bootstrap interval, over the two-sided MA score, "
        f"neighbourhood ({args.neighbours} word-level perturbations), LOSS, zlib, Min-K%, Min-K%++. Utility: "
        "PrivLeak (MUSE): (AUC unlearned - AUC retain-only) / AUC retain-only, the score with the largest "
        "magnitude; KS forget quality: two-sample KS p-value of the forget set's per-sequence MA / loss under the "
        "unlearned vs the retain-only model (the testbed's filler-only fine-tune). Utility: "
        f"zero-shot accuracy by summed log-likelihood on a fixed seeded subset of {args.utility_limit} items of "
        "each benchmark; perplexity on the held-out sequences. Wall time: the unlearning loop / the whole run "
        "(audits and utility before and after included).\n\n" + table + "\n" + "\n".join(notes) + "\n"
    )
    if missing:
        body += f"\nPartial table: {', '.join(missing)} not run yet.\n"
    if args.note:
        body += f"\nNote: {args.note}\n"
    print(body, flush=True)
    return write_result("unlearning", "Memorization unlearning on the SmolLM2 testbed", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testbed", help="testbed run directory (memorized/, splits/); built when absent")
    parser.add_argument("--utility-data", default=str(SHARED_DATA / "utility"))
    parser.add_argument("--utility-limit", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (the committed tables), cuda or auto; fp32 throughout")
    parser.add_argument("--retain-only", action="store_true",
                        help="judge every run against the testbed's retain-only model (trained first when absent)")
    parser.add_argument("--runs", nargs="*", default=[f"{m}:{s}" for m, s in RUNS], help="method:stop pairs")
    parser.add_argument("--collect", nargs="*", default=[],
                        help="finished `obliviate unlearn` run directories to reuse instead of re-running")  # fmt: skip
    parser.add_argument("--output-dir", default="runs/bench_unlearning")
    parser.add_argument("--note", help="a remark to print under the table (e.g. on the measuring conditions)")
    parser.add_argument("--no-run", action="store_true", help="only tabulate the --collect run directories")
    args = parser.parse_args()
    testbed = _testbed(args)
    retain_only = None
    if args.retain_only:
        from obliviate.testbed.build import add_retain_only

        retain_only = testbed / "retain_only"
        if not retain_only.is_dir():
            add_retain_only(testbed, progress=False)
    done: dict[str, Path] = {}
    for path in map(Path, args.collect):
        m = json.loads((path / "metrics.json").read_text())
        rule = m["stop_rule"] if m["stop_rule"] in ("mean", "outliers") else OWN
        done[f"{m['method']}:{rule}"] = path
    for pair in args.runs:
        if pair in done or args.no_run:
            continue
        method, stop = pair.split(":")
        cfg = UnlearnConfig.model_validate({
            "model": {"model": str(testbed / "memorized"), "device": args.device, "dtype": "float32"},
            "method": method, **({} if stop == OWN else {"stop": stop}),
            "forget": str(testbed / "splits" / "forget.jsonl"), "reference": str(testbed / "splits" / "heldout.jsonl"),
            "scoring": {"max_tokens": 128, "el_n": [], "neighbours": args.neighbours},
            "utility": {"data_dir": args.utility_data, "benchmarks": BENCHMARKS, "limit": args.utility_limit,
                        "before": not done},
            "save_model": False, "progress": False, "output_dir": args.output_dir,
            "retain_only_model": str(retain_only) if retain_only else None,
        })  # fmt: skip
        print(f"== {method} (stop: {stop})", flush=True)
        run_dir, _ = run_unlearning(cfg)
        done[pair] = run_dir
        _write_table(args, testbed, done, args.runs)  # after every run, so a long benchmark loses nothing
    print("wrote", _write_table(args, testbed, done, args.runs))


if __name__ == "__main__":
    main()
