"""MATCH's settings chosen on a development testbed and reported on a separate test testbed.

Two testbeds of the same recipe (32 forget + 32 held-out Pile sequences injected into SmolLM2-135M-Instruct, the
retain-only model beside each) drawn with different seeds: development (--dev-seed, default 1: other sequences)
and test (--test-seed, default 0: the testbed of unlearning.md). Every variant runs on the development testbed;
the one the rule below picks runs on the test testbed, which no choice ever looks at. Writes
benchmarks/results/match_selection.md (both tables, the rule, the pick).

Rule: among the variants with c(D_f) 0/0 against the start band and against the re-scored band and held-out
perplexity at most 1.3x before, the lowest best AUC either way; when none qualifies, the lowest best AUC either way.

Run: python benchmarks/bench_match_select.py [--device cuda] [--dev-testbed DIR] [--test-testbed DIR]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, write_result
from bench_unlearning import BENCHMARKS, _before_row, _cells, _wall_seconds
from obliviate.api import unlearn
from obliviate.config import ModelConfig, TestbedConfig

# name -> (MATCH settings, train with the testbed's filler split as the retain set)
VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    "default": ({}, False),
    "retarget every 5": ({"retarget_every": 5}, False),
    "retarget every 2": ({"retarget_every": 2}, False),
    "retarget every 5 + retain KL": ({"retarget_every": 5}, True),
    "retarget every 5, no Min-K%++ term": ({"retarget_every": 5, "minkpp_weight": 0.0}, False),
}
HEADERS = ["variant", "steps", "c(D_f) fixed high/low", "c(D_f) calibrated high/low (start band)",
           "c(D_f) calibrated high/low (re-scored band)", "forget MA mean ± std", "held-out MA",
           "MIAU best AUC either way [95% CI] (score)", "PrivLeak vs retain-only (score)",
           "KS forget quality p vs retain-only (MA / loss)", "held-out ppl", *BENCHMARKS,
           "wall s (unlearning / run)"]  # fmt: skip


def _testbed(args, seed: int, given: str | None) -> Path:
    if given:
        return Path(given)
    from obliviate.testbed.build import build_testbed

    cfg = TestbedConfig(model=ModelConfig(model=args.model, device=args.device, dtype="float32"), seed=seed,
                        source=str(SHARED_DATA / "text" / "pile_validation.csv"), tokens=128, retain_only=True,
                        output_dir=args.output_dir, progress=False)  # fmt: skip
    return build_testbed(cfg)[0]


def _run(args, testbed: Path, settings: dict[str, Any], retain: bool) -> Path:
    splits = testbed / "splits"
    config = {
        "model": {"model": str(testbed / "memorized"), "device": args.device, "dtype": "float32"},
        "method": {"name": "match", **settings}, "forget": str(splits / "forget.jsonl"),
        "benchmark": {
            "name": "memorization", "reference": str(splits / "heldout.jsonl"),
            "retain": str(splits / "filler.jsonl") if retain else None,
            "retain_only_model": str(testbed / "retain_only"),
            "scoring": {"max_tokens": 128, "el_n": [], "neighbours": args.neighbours},
            "utility": {"data_dir": args.utility_data, "benchmarks": BENCHMARKS, "limit": args.utility_limit},
        },
        "save_model": False, "progress": False, "output_dir": args.output_dir,
    }  # fmt: skip
    result = unlearn(config, report=False)
    assert result.run_dir is not None
    return result.run_dir


def _qualifies(metrics: dict) -> bool:
    start, rescored = metrics["outliers"]["after_vs_start_band"], metrics["outliers"]["after"]["calibrated"]
    before, after = metrics["utility"]["before"]["perplexity"], metrics["utility"]["after"]["perplexity"]
    zero = start["high"] == start["low"] == rescored["high"] == rescored["low"] == 0
    return zero and after <= 1.3 * before


def _table(rows: list[list[str]]) -> str:
    return ("| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS) + "\n"
            + "".join("| " + " | ".join(r) + " |\n" for r in rows))  # fmt: skip


def _rows(runs: dict[str, Path]) -> tuple[list[list[str]], dict[str, dict]]:
    metrics = {name: json.loads((d / "metrics.json").read_text()) for name, d in runs.items()}
    rows = [["memorized (before)", *_before_row(next(iter(metrics.values())))[2:]]]
    rows += [[name, *_cells(metrics[name], _wall_seconds(runs[name]))] for name in runs]
    return rows, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto; fp32 throughout")
    parser.add_argument("--model", default="embedded", help="base model of the testbeds (tiny: a smoke test)")
    parser.add_argument("--dev-seed", type=int, default=1)
    parser.add_argument("--test-seed", type=int, default=0)
    parser.add_argument("--dev-testbed", help="an existing development testbed (with retain_only/)")
    parser.add_argument("--test-testbed", help="an existing test testbed (with retain_only/)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--utility-data", default=str(SHARED_DATA / "utility"))
    parser.add_argument("--utility-limit", type=int, default=100)
    parser.add_argument("--neighbours", type=int, default=2)
    parser.add_argument("--output-dir", default="runs/bench_match_select")
    args = parser.parse_args()
    dev = _testbed(args, args.dev_seed, args.dev_testbed)
    runs: dict[str, Path] = {}
    for name in args.variants:
        print(f"== development: {name}", flush=True)
        runs[name] = _run(args, dev, *VARIANTS[name])
    dev_rows, metrics = _rows(runs)
    best = lambda n: metrics[n]["after"]["miau_best"]["auc_either"]  # noqa: E731
    qualified = [n for n in runs if _qualifies(metrics[n])]
    pick = min(qualified or list(runs), key=best)
    body = (f"Development testbed (seed {args.dev_seed}) `{dev}`:\n\n{_table(dev_rows)}\n"
            f"Qualified (c(D_f) 0/0 on both bands, perplexity <= 1.3x): {', '.join(qualified) or 'none'}. "
            f"Picked: **{pick}**.\n")  # fmt: skip
    print(body, flush=True)
    write_result("match_selection", "MATCH settings: chosen on a development testbed, reported on a test testbed",
                 __doc__.split("\n\n", 1)[1] + "\n\n" + body + "\nTest testbed: not run yet.\n")  # fmt: skip
    test = _testbed(args, args.test_seed, args.test_testbed)
    print(f"== test: {pick}", flush=True)
    test_rows, _ = _rows({pick: _run(args, test, *VARIANTS[pick])})
    body += f"\nTest testbed (seed {args.test_seed}) `{test}`, the picked variant only:\n\n{_table(test_rows)}"
    print(body, flush=True)
    print("wrote", write_result("match_selection", "MATCH settings: chosen on a development testbed, reported on "
                                "a test testbed", __doc__.split("\n\n", 1)[1] + "\n\n" + body))  # fmt: skip


if __name__ == "__main__":
    main()
