"""MUSE-News-mini on the CPU: target, retain-only and each method, then scalability and sustainability for the two
best methods - every row a real ``obliviate unlearn --benchmark muse-news`` run with the defaults.

Run: python benchmarks/bench_muse.py [--methods ga graddiff npo simnpo rmu sga tau] [--models-dir DIR]
Run: python benchmarks/bench_muse.py --dev   (the learning rate's development runs, on block 4)
Writes benchmarks/results/muse_news.md: VerbMem, KnowMem forget / retain (ROUGE-L F1), PrivLeak (Min-K%, against
the retain-only model), c(D_f) after (high / low against the starting band), relearning recovery (VerbMem),
held-out perplexity, steps and wall time. The two best methods are picked by a rule fixed before the run: among
the methods that keep KnowMem retain at 80% of the target's or more, the two with the smallest |PrivLeak| (then the
highest KnowMem retain). They are then run on 2 and 4 blocks at once (scalability) and on blocks 1, 2, 3 in turn,
each request starting from the model the previous one left (sustainability, block 0 being the first row)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from _common import SHARED_DATA, write_result
from obliviate.api import unlearn
from obliviate.muse.attacks import privleak_min_k

METHODS = ["ga", "graddiff", "npo", "simnpo", "rmu", "sga", "tau"]
# CPU-sized: 5 blocks of 4 chunks of 64 tokens (blocks 0-3 reported, block 4 the development block), 8 retain and
# 24 holdout chunks; at most 10 steps a request and no neighbourhood score in the audit (the CPU budget: it
# would rescore every text twice); Adam's learning rate from `--dev` (NPO on block 4: 1e-4 over 2e-4)
SETTINGS = {"forget_chunks": 4, "blocks": 5, "retain_chunks": 8, "holdout_chunks": 24, "chunk_tokens": 64,
            "finetune_epochs": 6, "training": {"learning_rate": 1e-4, "max_steps": 10},
            "scoring": {"min_k": 0.4, "neighbours": 0}}  # fmt: skip
DEV_BLOCK, DEV_METHOD, DEV_RATES = 4, "npo", (1e-4, 2e-4)


def _run(args, method: str, **benchmark: Any) -> tuple[Path, dict[str, Any]]:
    if args.replay:  # --collect / --resume: the next finished run of the same sequence, in the order they were made
        run_dir = args.replay.pop(0)
        m = json.loads((run_dir / "metrics.json").read_text())
        wanted = (method, benchmark.get("scale", 1), benchmark.get("request", 0))
        if (m["method"], m["muse"]["scale"], m["muse"]["request"]) != wanted:
            raise SystemExit(f"{run_dir} is not the run the sequence expects here ({wanted})")
        return run_dir, m
    if args.collect:  # a table of what has run: the missing rows say so
        return None, None
    settings = {**SETTINGS, "training": {**SETTINGS["training"], **benchmark.pop("training", {})}}
    config = {"method": method, "seed": args.seed, "progress": False, "output_dir": str(args.output_dir),
              "save_model": benchmark.pop("save_model", False),
              "benchmark": {"name": "muse-news", "data": str(args.data), "models_dir": str(args.models_dir),
                            **settings, **benchmark}}  # fmt: skip
    result = unlearn(config, report=False)
    assert result.run_dir is not None
    return result.run_dir, json.loads((result.run_dir / "metrics.json").read_text())


def _figures(m: dict[str, Any]) -> dict[str, Any]:
    muse, band = m["muse"], m["outliers"]["after_vs_start_band"]
    relearn = muse["attacks"].get("relearning") or {}
    return {"verbmem": muse["after"]["verbmem"]["mean"], "knowmem_forget": muse["after"]["knowmem_forget"]["mean"],
            "knowmem_retain": muse["after"]["knowmem_retain"]["mean"], "privleak": privleak_min_k(m),
            "cdf": f"{band['high']} / {band['low']}", "recovery": relearn.get("recovery"), "steps": m["steps"],
            "ppl": _perplexity(m, "after"), "seconds": m["summary"]["timings"]["wall_seconds"]}  # fmt: skip


def _perplexity(m: dict[str, Any], when: str) -> float | None:
    """Held-out perplexity (on the never-seen holdout chunks) of the model ``when``."""
    return ((m["summary"].get("utility") or {}).get(when) or {}).get("perplexity")


def _reference_rows(m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The target (the models before unlearning) and the retain-only model, from one run's metrics."""
    muse = m["muse"]
    before = m["outliers"]["before"]["calibrated"]
    target = {k: muse["before"][k]["mean"] for k in ("verbmem", "knowmem_forget", "knowmem_retain")}
    none = {"recovery": None, "steps": None, "seconds": None}
    target |= {"privleak": privleak_min_k(m, "before"), "cdf": f"{before['high']} / {before['low']}",
               "ppl": _perplexity(m, "before"), **none}  # fmt: skip
    gold_row = {k: muse["retain_only"][k]["mean"] for k in ("verbmem", "knowmem_forget", "knowmem_retain")}
    gold_row |= {"privleak": 0.0, "cdf": "-", "ppl": None, **none}
    return [("target (before unlearning)", target), ("retain-only", gold_row)]


def _cell(value: Any, fmt: str) -> str:
    return "-" if value is None else (value if isinstance(value, str) else format(value, fmt))


def _row(label: str, f: dict[str, Any]) -> str:
    cells = [_cell(f["verbmem"], ".3f"), _cell(f["knowmem_forget"], ".3f"), _cell(f["knowmem_retain"], ".3f"),
             _cell(f["privleak"], "+.3f"), f["cdf"], _cell(f["recovery"], ".0%"),
             _cell(f["ppl"], ".0f" if (f["ppl"] or 0) < 1e5 else ".2g"), _cell(f["steps"], "d"),
             _cell(f["seconds"], ".0f")]  # fmt: skip
    return f"| {label} | " + " | ".join(cells) + " |"


HEADER = ("| model | VerbMem | KnowMem forget | KnowMem retain | PrivLeak (Min-K%) | c(D_f) high / low | relearning "
          "recovery | held-out ppl | steps | wall s |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def best_two(rows: dict[str, dict[str, Any]], target_retain: float) -> list[str]:
    """The rule stated in the module's description."""
    keeps = [m for m, f in rows.items() if f["knowmem_retain"] >= 0.8 * target_retain and f["privleak"] is not None]
    ranked = sorted(keeps, key=lambda m: (abs(rows[m]["privleak"]), -rows[m]["knowmem_retain"]))
    rest = sorted((m for m in rows if m not in ranked), key=lambda m: -rows[m]["knowmem_retain"])
    return (ranked + rest)[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "muse_news")
    parser.add_argument("--output-dir", type=Path, default=None, help="[runs/bench_muse, runs/bench_muse_dev]")
    parser.add_argument("--models-dir", type=Path, default=None, help="model cache [OUTPUT_DIR/muse-models, fresh]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-extended", action="store_true", help="skip scalability and sustainability")
    parser.add_argument("--collect", type=Path, default=None, metavar="DIR",
                        help="write the table from the finished runs in DIR (an earlier --output-dir)")  # fmt: skip
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR",
                        help="reuse the finished runs in DIR (an earlier --output-dir) and run the rest there")
    parser.add_argument("--dev", action="store_true", help=f"choose the learning rate on block {DEV_BLOCK} instead")
    args = parser.parse_args()
    args.source = args.resume or args.collect
    args.replay = _finished_runs(args.source) if args.source else []
    if args.source:
        args.output_dir = args.source
    args.output_dir = args.output_dir or Path("runs/bench_muse_dev" if args.dev else "runs/bench_muse")
    args.models_dir = args.models_dir or args.output_dir / "muse-models"
    fresh = not any(args.models_dir.glob("*/*/finetune.json"))
    if args.dev:
        return dev(args)
    started = time.perf_counter()
    lines, rows, metrics, dirs = [HEADER], {}, {}, {}
    for method in args.methods:
        run_dir, m = _run(args, method, save_model=True)
        if not rows:
            lines += [_row(label, f) for label, f in _reference_rows(m)]
        rows[method], metrics[method], dirs[method] = _figures(m), m, run_dir
        lines.append(_row(method, rows[method]))
        print(lines[-1], flush=True)
    target_retain = metrics[args.methods[0]]["muse"]["before"]["knowmem_retain"]["mean"]
    best = best_two(rows, target_retain)
    for method, run_dir in dirs.items():  # the saved models are only needed to continue the best two
        if method not in best:
            shutil.rmtree(run_dir / "model", ignore_errors=True)
    extended = [] if args.no_extended else _extended(args, best, rows, dirs)
    minutes = (time.perf_counter() - started) / 60 if not args.source else _recorded_minutes(args)
    body = (f"MUSE-News-mini (benchmark `muse-news`, CPU-sized: 5 blocks of 4 forget chunks of 64 tokens grounded in "
            f"MUSE's knowmem forget questions - blocks 0-3 reported here, block 4 only in the development runs of "
            f"`--dev` -, 8 retain chunks, 24 holdout chunks; target and retain-only model "
            f"fine-tuned from the embedded SmolLM2-135M-Instruct, 6 epochs), seed {args.seed}, fp32 on the CPU; "
            f"settings {json.dumps(SETTINGS)}. Forget set: block 0 (4 chunks). All metrics ROUGE-L F1 as MUSE "
            "computes them; PrivLeak on Min-K% (k 40%) forget vs holdout, relative to the retain-only model, with "
            "MUSE's sign (< 0: the forget chunks still look seen, the target's is about -1; > 0: they look less "
            "seen than never-seen text, over-unlearned). Not "
            "tuned per method: every method runs with its own defaults, one learning rate for all (chosen by "
            "`--dev` at seed 0 with NPO on block 4, which no row uses: the blocks are the same chunks at every seed, "
            "the seed moves the holdout windows, the fine-tune's order and the unlearning; "
            "benchmarks/results/muse_news_dev.md), the "
            "memorization loop's stop rule (c(D_f) high = 0 against the holdout band) and a cap of 10 steps per "
            "request (the CPU budget); the quantization attack runs on the first table's rows only; single seed. "
            "Held-out perplexity: on the 24 never-seen holdout chunks (a fine-tuned 135M model on news text: "
            "the target's is the reference; the run's guardrails flag a collapse in its metrics.json)."
            "\n\n" + "\n".join(lines) + "\n\n"
            + f"Best two by the rule fixed before the run: {', '.join(best)}."
            "\n\n" + "\n".join(extended) + f"\n\nWhole script: {minutes:.1f} min ("
            + (f"table written from the runs in {args.source}; the time is theirs: both fine-tunes plus each run "
               "from its start to the next one's" if args.source else
               f"model cache built from empty: {'yes' if fresh else 'no, reused'}") + ").\n")  # fmt: skip
    print(body)
    name = "muse_news" if args.seed == 0 else f"muse_news_seed{args.seed}"  # another seed: its own table
    print("wrote", write_result(name, f"MUSE-News-mini on the CPU (seed {args.seed})", body))


def dev(args) -> None:
    """``--dev``: the learning rate of every row, chosen with NPO on the development block by the rule of the best
    two (KnowMem retain kept at 80% of the target's, then the smallest |PrivLeak|)."""
    rows, m = {}, None
    for rate in DEV_RATES:
        _, m = _run(args, DEV_METHOD, request=DEV_BLOCK, training={"learning_rate": rate})
        rows[f"{rate:g}"] = _figures(m)
    assert m is not None
    chosen = best_two(rows, m["muse"]["before"]["knowmem_retain"]["mean"])[0]
    lines = [HEADER.replace("| model |", "| learning rate |", 1), *(_row(rate, f) for rate, f in rows.items())]
    body = (f"Development runs of benchmarks/bench_muse.py (`--dev`): {DEV_METHOD} on block {DEV_BLOCK} of "
            f"MUSE-News-mini (4 chunks no row of muse_news.md uses), seed {args.seed}, the table's other settings "
            f"{json.dumps(SETTINGS)}; one learning rate for every method of the table, chosen by the rule of its "
            "best two (KnowMem retain at 80% of the target's or more, then the smallest |PrivLeak|).\n\n"
            + "\n".join(lines) + f"\n\nChosen: {chosen} (SETTINGS of bench_muse.py: "
            f"{SETTINGS['training']['learning_rate']:g}).\n")  # fmt: skip
    print(body)
    print("wrote", write_result("muse_news_dev", "MUSE-News-mini: the learning rate's development runs", body))


def _start_verbmem(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["muse"]["before"]["verbmem"]["mean"]


def _finished_runs(folder: Path) -> list[Path]:
    """The finished run directories in ``folder``, oldest first."""
    runs = [p for p in folder.glob("muse-news-*") if (p / "status.json").is_file()
            and json.loads((p / "status.json").read_text()).get("status") == "finished"]  # fmt: skip
    return sorted(runs, key=lambda p: p.name.split("-")[-3:-1])


def _recorded_minutes(args) -> float:
    """A replayed script's wall time: both fine-tunes (finetune.json) plus each run from its start to the next
    run's start (its setup included), or its own wall time where a gap follows (a run resumed later)."""
    import datetime as dt

    runs = _finished_runs(args.source)
    starts = [dt.datetime.strptime("".join(p.name.split("-")[-3:-1]), "%Y%m%d%H%M%S") for p in runs]
    walls = [json.loads((p / "metrics.json").read_text())["summary"]["timings"]["wall_seconds"] for p in runs]
    seconds = sum(min((b - a).total_seconds(), wall + 60) for a, b, wall in zip(starts, starts[1:], walls))
    seconds += walls[-1] + sum(json.loads(f.read_text())["seconds"] for f in args.models_dir.glob("*/*/finetune.json"))
    return seconds / 60


def _extended(args, best: list[str], rows: dict[str, Any], dirs: dict[str, Path]) -> list[str]:
    out = ["## Scalability: forget 1, 2, 4 blocks at once", "", HEADER]
    for method in best:
        out.append(_row(f"{method}, 1 block (4 chunks)", rows[method]))
        for scale in (2, 4):
            _, m = _run(args, method, scale=scale, quantization_bits=[])
            label = f"{method}, {scale} blocks ({4 * scale} chunks)"
            out.append(_row(label, _figures(m)) if m else f"| {label} | not run |")
            print(out[-1], flush=True)
    out += ["", "## Sustainability: four removal requests in turn on one model (metrics on each request's block)", "",
            "In brackets: the block's VerbMem on the model the request starts from (the requests before it lower "
            "it too).", "", HEADER]  # fmt: skip
    for method in best:
        out.append(_row(f"{method}, request 1 (block 0; {_start_verbmem(dirs[method]):.3f})", rows[method]))
        start = dirs[method] / "model"
        for request in (1, 2, 3):
            run_dir, m = _run(args, method, request=request, start=str(start), save_model=True, quantization_bits=[])
            label = f"{method}, request {request + 1} (block {request}" + (
                f"; {m['muse']['before']['verbmem']['mean']:.3f})" if m else ")")
            out.append(_row(label, _figures(m)) if m else f"| {label} | not run |")
            print(out[-1], flush=True)
            if m is None:
                break
            start = run_dir / "model"
    return out


if __name__ == "__main__":
    main()
