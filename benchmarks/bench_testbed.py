"""Build the SmolLM2 memorization testbed and record how well it spreads memorization and how long it takes.

Run: python benchmarks/bench_testbed.py [--forget 32 --heldout 32 --tokens 128 --output-dir runs]
Writes benchmarks/results/testbed.md (the testbed itself lands in a new run directory)."""

from __future__ import annotations

import argparse

from _common import SHARED_DATA, write_result
from obliviate.config import ModelConfig, TestbedConfig
from obliviate.testbed.build import build_testbed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--source", default=str(SHARED_DATA / "text" / "pile_validation.csv"))
    parser.add_argument("--forget", type=int, default=32)
    parser.add_argument("--heldout", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs")
    args = parser.parse_args()
    cfg = TestbedConfig(
        model=ModelConfig(model=args.model), source=args.source, forget=args.forget, heldout=args.heldout,
        tokens=args.tokens, seed=args.seed, output_dir=args.output_dir, progress=False,
    )  # fmt: skip
    run_dir, metrics = build_testbed(cfg)
    s = metrics["summary"]
    memorized = metrics["models"]["memorized"]
    rows = [
        ("forget MA min / max / mean (memorized)",
         f"{s['forget_ma_min']:.4f} / {s['forget_ma_max']:.4f} / {s['forget_ma_mean']:.4f}"),
        ("forget MA mean (base model)", f"{metrics['models']['base']['target']['aggregate']['ma']['mean']:.4f}"),
        ("held-out MA mean: base -> memorized",
         f"{s['heldout_ma_base']:.4f} -> {s['heldout_ma_memorized']:.4f} ({s['heldout_ma_shift']:+.4f})"),
        ("Spearman(repetitions, forget MA)", f"{s['spearman_repetitions_vs_ma']:.4f}"),
        ("c(D_f) calibrated high / low", f"{memorized['outliers']['calibrated']['high']} / "
         f"{memorized['outliers']['calibrated']['low']}"),
        ("best MIAU AUC", f"{s['miau_best']['auc']:.4f} ({s['miau_best']['score']})"),
        ("training steps", str(metrics["training"]["memorized"]["steps"])),
        ("wall time (select, audit base, inject, save, audit memorized)", f"{s['wall_seconds']:.0f} s"),
    ]  # fmt: skip
    body = (
        f"{args.forget} forget + {args.heldout} held-out + {cfg.filler} filler sequences of {args.tokens} tokens "
        f"from `{args.source}`; repetitions {cfg.min_repeats}..{cfg.max_repeats}, AdamW lr {cfg.learning_rate}, "
        f"batch {cfg.batch_size}, model `{args.model}` on CPU. Run directory: `{run_dir}`.\n\n"
        "| quantity | value |\n|---|---|\n"
        + "".join(f"| {k} | {v} |\n" for k, v in rows)
        + "\n## MIAU on the memorized model (forget vs held-out)\n\n| score | AUC | TPR@1%FPR | TPR@5%FPR |\n"
        "|---|---|---|---|\n"
        + "".join(
            f"| {name} | {v['auc']:.4f} | {v['tpr_at_1pct_fpr']:.4f} | {v['tpr_at_5pct_fpr']:.4f} |\n"
            for name, v in memorized["miau"].items()
        )
    )
    print(body)
    print("wrote", write_result("testbed", "Memorization testbed on SmolLM2-135M-Instruct", body))


if __name__ == "__main__":
    main()
