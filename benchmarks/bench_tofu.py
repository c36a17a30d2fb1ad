"""TOFU-mini on SmolLM2-135M-Instruct (CPU): GA, GradDiff, NPO, IdkDPO, RMU and UnSTAR, each against the
retain-only model, through the same code path as `obliviate tofu` (one run directory with report.html each).

Run: python benchmarks/bench_tofu.py [--tofu ../shared/data/tofu] [--methods ga,npo,...] [--output-dir DIR]
1. Fine-tune SmolLM2 on the first --retain-authors TOFU authors plus the forget01 authors (the full model) and
   on the retain authors alone (the retain-only model); both are cached under DIR/tofu-models and reused.
2. For each method: `run_tofu` (unlearn, trade-off per epoch, TOFU evaluation, attacks).
3. One table of all methods in benchmarks/results/tofu.md, rewritten after every method (a cut run keeps its
   rows)."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from _common import SHARED_DATA, write_result
from obliviate.api import run_tofu
from obliviate.config import TofuConfig

LABELS = {"ga": "GA", "graddiff": "GradDiff", "graddiff_kl": "GradDiff (KL)", "npo": "NPO", "simnpo": "SimNPO",
          "idknll": "IdkNLL", "idkdpo": "IdkDPO", "rmu": "RMU", "unstar": "UnSTAR (TOFU anti-samples)"}  # fmt: skip
HEADERS = ["model", "forget quality (KS p)", "model utility", "forget truth ratio (mean R)", "forget TR score",
           "forget prob.", "forget ROUGE-L", "retain prob.", "relearning recovery (prob.)", "paraphrased prob.",
           "4-bit prob.", "membership AUC", "steps", "wall s (unlearn / run)"]  # fmt: skip


def _f(value: float | None, digits: str = ".3f") -> str:
    return "-" if value is None else format(value, digits)


def _row(label: str, row: dict, metrics: dict | None = None, model: str = "unlearned") -> list[str]:
    cells = [label, _f(row["forget_quality"], ".3g"), _f(row["model_utility"]), _f(row["forget_truth_ratio_mean"]),
             _f(row["forget_truth_ratio_score"]), _f(row["forget_probability"]), _f(row["forget_rouge_l_recall"]),
             _f(row["retain_probability"])]  # fmt: skip
    if metrics is None:
        return [*cells, "-", "-", "-", "-", "-", "-"]
    attacks = metrics["attacks"]
    membership = attacks["membership"].get(model, {}).get("auc")
    if model != "unlearned":
        paraphrased = attacks["paraphrase"].get("full", {}).get("probability") if model == "full" else None
        quantized = attacks.get("quantization_full", {}).get("4bit") if model == "full" else None
        return [*cells, "-", _f(paraphrased), _f(quantized), _f(membership), "-", "-"]
    relearn = attacks["relearning"]
    recovery = "-" if "skipped" in relearn else (
        f"{_f(relearn['recovery'], '.2f') if relearn['recovery'] is not None else 'n/a'} "
        f"({relearn['before']:.3f} → {relearn['after']:.3f})")  # fmt: skip
    return [*cells, recovery, _f(attacks["paraphrase"].get("unlearned", {}).get("probability")),
            _f(attacks["quantization"].get("4bit")), _f(membership), str(metrics["steps"]),
            f"{metrics['seconds_unlearning']:.0f} / {metrics['seconds']:.0f}"]  # fmt: skip


def _finetune_facts(folder: str) -> str:
    parts = []
    for name in ("full", "retain"):
        path = Path(folder) / name / "finetune.json"
        if path.is_file():
            f = json.loads(path.read_text())
            parts.append(f"{name}: {f['steps']} steps, {f['seconds']:.0f} s, final loss {f['final_loss']:.3f}")
    return "; ".join(parts) or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", default=str(SHARED_DATA / "tofu"))
    parser.add_argument("--methods", default="ga,graddiff,npo,idkdpo,rmu,unstar")
    parser.add_argument("--retain-authors", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="unlearning epochs")
    parser.add_argument("--learning-rate", type=float, default=4e-5, help="unlearning learning rate (all methods)")
    parser.add_argument(
        "--attacks",
        default="relearning,quantization,membership",
        help="comma-separated; paraphrase (greedy replies to 40 paraphrased questions) adds ~1 min per method",
    )
    parser.add_argument("--quantization-bits", default="4")
    parser.add_argument("--trace", action="store_true", help="probe the trade-off after every epoch (~25 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/bench_tofu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    base = {
        "tofu": args.tofu,
        "retain_authors": args.retain_authors,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "output_dir": args.output_dir,
        "models_dir": str(Path(args.output_dir) / "tofu-models"),
        "trace": args.trace,
        "attacks": args.attacks.split(","),
        "quantization_bits": [int(b) for b in args.quantization_bits.split(",")],
    }
    rows: list[list[str]] = []
    runs: list[str] = []
    first: dict | None = None
    for name in args.methods.split(","):
        run_dir, metrics = run_tofu(TofuConfig.model_validate({**base, "method": name}))
        if first is None:
            first = metrics
            rows += [_row("full (before unlearning)", metrics["models"]["full"], metrics, "full"),
                     _row("retain-only", metrics["models"]["retain-only"], metrics, "retain-only")]  # fmt: skip
        rows.append(_row(LABELS.get(name, name), metrics["models"]["unlearned"], metrics))
        runs.append(f"{name}: `{run_dir}`")
        print(
            f"{name}: forget quality {metrics['models']['unlearned']['forget_quality']:.3g}, utility "
            f"{metrics['models']['unlearned']['model_utility']:.3f}, {metrics['seconds']:.0f} s",
            flush=True,
        )
        _write(args, first, rows, runs, started, final=False)
    _write(args, first, rows, runs, started, final=True)


def _write(args, first: dict, rows: list[list[str]], runs: list[str], started: float, final: bool) -> None:
    """(Re)write benchmarks/results/tofu.md with the rows so far."""
    table = "| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS) + "\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    cfg = TofuConfig()
    body = (
        f"TOFU-mini: SmolLM2-135M-Instruct fine-tuned (fp32, CPU, Adam {cfg.finetune_learning_rate:g}, "
        f"{cfg.finetune_epochs} epochs, batch 8) on the first {args.retain_authors} TOFU authors + the 2 forget01 "
        f"authors; retain-only model: the {args.retain_authors} authors alone ({_finetune_facts(first['models_dir'])}"
        "). Evaluation: forget01 (40 QA), 20 retain-author items, 10 real-author and 10 world-fact items. "
        f"Unlearning: {args.epochs} epochs over forget01 in batches of 8 (each with 8 retain pairs), Adam "
        f"{args.learning_rate:g} for every method (no per-method tuning); RMU steers layer {cfg.rmu_layer}. "
        "UnSTAR: the forget questions and TOFU's paraphrases of them trained towards TOFU's perturbed answers "
        "(whole sentences stating a wrong fact), a different pair every epoch - UnSTAR's dataset backend, not the "
        f"self-taught loop. Relearning: {cfg.relearn_steps} full-batch SFT steps on 20 forget pairs, recovery "
        "measured on the other 20 (0: none, 1: back to the full model; n/a when unlearning lost < 0.05 of answer "
        "probability). Paraphrased prob.: answer probability when the forget questions are asked as TOFU "
        "paraphrases them. 4-bit prob.: forget answer probability with the linear weights rounded to 4 bits. "
        "Membership AUC: loss attack, forget authors against never-trained (holdout01) authors (0.5: cannot tell). "
        "Forget quality: KS p-value of forget truth ratios against the retain-only model (higher is better). "
        f"{'Trade-off probed after every epoch. ' if args.trace else 'No per-epoch trade-off probes (--trace). '}"
        f"Attacks run: {args.attacks} (a '-' column was not run). "
        f"Whole benchmark: {time.perf_counter() - started:.0f} s{'' if final else ' so far (still running)'}, "
        "fine-tuning included when the models were not cached.\n\n" + table + "\nRun directories (report.html "
        "each):\n\n" + "".join(f"- {r}\n" for r in runs)
    )
    if final:
        print(body)
    print("wrote", write_result("tofu", "TOFU-mini: QA unlearning baselines and UnSTAR against the retain-only model",
                                body))  # fmt: skip


if __name__ == "__main__":
    main()
