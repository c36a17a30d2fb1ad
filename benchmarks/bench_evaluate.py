"""`obliviate evaluate` on the embedded SmolLM2 for every benchmark, and on models saved by `unlearn` runs: wall
time of each evaluation, and whether the evaluate run's "after" figures equal the unlearn run's (same sets,
seed and settings, the unlearn run's starting model as --before). Writes benchmarks/results/evaluate.md.

    python benchmarks/bench_evaluate.py [--output-dir DIR] [--only memorization,qa,...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import SHARED_DATA, write_result
from obliviate import evaluate, unlearn

SHARED = SHARED_DATA
QUICK = {"memorization": {"benchmark.scoring.neighbours": 0, "benchmark.scoring.el_n": []},
         "associations": {"benchmark.leak_k": 4, "benchmark.relearn_steps": 2}}  # fmt: skip


def _after(summary: dict) -> dict:
    return {"sets": {k: v["after"] for k, v in summary["sets"].items()},
            "per_sample": {s: {i: {m: v["after"] for m, v in ms.items()} for i, ms in ids.items()}
                           for s, ids in summary["per_sample"].items()}}  # fmt: skip


def _timed(fn, **kwargs):
    started = time.perf_counter()
    result = fn(**kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="runs/bench-evaluate")
    parser.add_argument("--only", default="memorization,qa,associations,tofu,muse-news")
    args = parser.parse_args()
    out, only = args.output_dir, args.only.split(",")
    rows = []
    facts = [("What is the capital of France?", "Paris"), ("What is the capital of Italy?", "Rome")]
    keep = [("What is the capital of Japan?", "Tokyo")]
    plans = {
        "memorization": ({"forget": "builtin:famous", "reference": "builtin:fresh"},
                         {"method": "ga", "benchmark.training.max_steps": 2}),
        "qa": ({"forget": facts, "retain": keep, "benchmark": "qa"}, {"method": "npo", "benchmark.epochs": 3}),
        "associations": ({"forget": "builtin:associations", "benchmark": "associations"},
                         {"method": "ga", "benchmark.epochs": 1}),
        "tofu": ({"benchmark": "tofu", "benchmark.tofu": str(SHARED / "tofu"), "before": "embedded",
                  "retain_only": "embedded"}, None),  # TOFU-mini's fine-tunes are left out: the CPU budget
        "muse-news": ({"benchmark": "muse-news", "benchmark.data": str(SHARED / "muse_news")}, None),
    }  # fmt: skip
    for name in only:
        data, unlearn_plan = plans[name]
        common = {**data, **QUICK.get(name, {}), "output_dir": out, "progress": False}
        checked, seconds = _timed(evaluate, model="embedded", **common)
        row = {"benchmark": name, "model": "embedded", "seconds": seconds, "run": str(checked.run_dir),
               "equal": "-"}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        if unlearn_plan is None:
            continue
        settings = {k: v for k, v in common.items() if k not in ("before", "retain_only")}
        done, _ = _timed(unlearn, **settings, **unlearn_plan)
        again, seconds = _timed(evaluate, model=done.run_dir / "model", before="embedded", **settings,
                                **{k: v for k, v in unlearn_plan.items() if k.startswith("benchmark.") and
                                   "max_steps" not in k and "epochs" not in k})  # fmt: skip
        same = _after(again.metrics["summary"]) == _after(done.metrics["summary"])
        row = {"benchmark": name, "model": f"saved by unlearn --method {unlearn_plan['method']}", "seconds": seconds,
               "run": str(again.run_dir), "equal": "yes" if same else "NO"}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = ["| benchmark | evaluated model | wall s | after figures equal the unlearn run's | run |",
             "|---|---|---|---|---|"]
    table += [f"| {r['benchmark']} | {r['model']} | {r['seconds']:.0f} | {r['equal']} | {Path(r['run']).name} |"
              for r in rows]  # fmt: skip
    text = ("\n".join(table) + "\n\n"
            "Equal: the common summary's after figures per set and per sample of `evaluate --model RUN/model --before "
            "embedded` against those of the unlearn run that saved the model (same sets, seed, settings). "
            "memorization ran without the neighbourhood score and EL_n, associations with leak@4 and 2 relearning "
            "steps (CPU budget); tofu with --before and --retain-only the embedded model (TOFU-mini's fine-tunes are "
            "left out: no forget quality worth reading, only that the evaluation runs); muse-news fine-tunes its "
            "target and retain-only model first (inside the wall time).\n")  # fmt: skip
    write_result("evaluate", "obliviate evaluate on the embedded SmolLM2", text)


if __name__ == "__main__":
    main()
