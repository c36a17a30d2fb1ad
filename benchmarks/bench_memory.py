"""Peak resident memory (and time) of one MATCH step, one NPO step and one audit's teacher-forced statistics on a
synthetic Llama with a 128,256-token vocabulary (hidden 256, 2 layers, random weights, built in code).

Each case runs in its own process. ``setup`` is the RSS once the model and the batch are built; the kernel's
high-water mark is then reset (``/proc/self/clear_refs``), so ``peak`` is the case's own peak RSS and ``working`` =
peak - setup what the step or the audit adds. ``--src`` imports obliviate from another checkout, e.g.
a ``git worktree`` of the commit before chunking, so "today" and "after" run the same script side by side:

    git worktree add /tmp/obliviate-f9d49de f9d49de
    .venv/bin/python benchmarks/bench_memory.py --today-src /tmp/obliviate-f9d49de/src \\
        --out benchmarks/results/memory.md

Cases "today" whose full-vocabulary tensors alone exceed ``--budget-gib`` are not run (they would not fit) and
are marked so; a smaller length that fits is measured instead. ``--budget-elements`` sets the vocabulary chunk
of "after" (obliviate.metrics.vocab_stats.VOCAB_ELEMENTS_PER_CHUNK). Timings are only meaningful alone on the
machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

VOCAB, HIDDEN, LAYERS, ROWS = 128_256, 256, 2, 8
HERE = Path(__file__).resolve().parent
# full-vocabulary float32 tensors each case kept alive at once before chunking (read from the code at f9d49de)
TODAY_TENSORS = {"match": 9, "npo": 4, "audit": 0}
AFTER_TENSORS = {"match": 0, "npo": 0, "audit": 0}


def _status_gib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=4 * HIDDEN, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         tie_word_embeddings=False, pad_token_id=0)  # fmt: skip
    return LlamaForCausalLM(config).eval()


def _windows(length: int) -> list[list[int]]:
    import torch

    generator = torch.Generator().manual_seed(1)
    return [torch.randint(1, VOCAB, (length,), generator=generator).tolist() for _ in range(ROWS)]


def _match_step(engine, windows):
    from primed_match import primed_match

    method, selected = primed_match(len(windows), thresholds=(0.2, 0.4, 0.0), loss=(10.0, 12.0),
                                    entropy=(9.0, 11.0), ma=(0.2, 0.5), tol=0.1, cap=14.0)  # fmt: skip
    return lambda: method.step(engine, windows, selected)


def _npo_step(engine, windows):
    from obliviate.methods.npo import NPO
    from obliviate.methods.rules import Thresholds
    from obliviate.methods.sequences import ObjectiveOnSequences

    method = ObjectiveOnSequences(NPO(), "outliers", Thresholds(tau=0.2, upper=0.4, lower=0.0))
    return lambda: method.step(engine, windows, list(range(len(windows))))


def run_case(case: str, length: int, budget: int | None = None) -> dict[str, float]:
    """One case in this process: its setup RSS, peak RSS and seconds."""
    if budget:
        from obliviate.metrics import vocab_stats

        vocab_stats.VOCAB_ELEMENTS_PER_CHUNK = budget
    model, windows = _model(), _windows(length)
    if case == "audit":
        from obliviate.metrics.scoring import score_windows

        def action():
            return score_windows(model, windows, pad_id=0, batch_size=ROWS, progress=False)
    else:
        from obliviate.config import TrainingConfig
        from obliviate.training.engine import Engine

        engine = Engine(model, 0, TrainingConfig(), cpu=True)
        action = (_match_step if case == "match" else _npo_step)(engine, windows)
    setup = _status_gib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    peak = _status_gib("VmHWM")
    return {"setup_gib": setup, "peak_gib": peak, "working_gib": peak - setup, "seconds": seconds}


def _child(src: str, case: str, length: int, budget: int | None = None) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--child", case, str(length), "--src", src]
    command += ["--budget-elements", str(budget)] if budget else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1] if done.stderr else ''}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_if_fits(src: str, case: str, length: int, tensors: int, budget_gib: float,
                 budget: int | None = None) -> dict[str, float] | str:  # fmt: skip
    size = ROWS * length * VOCAB * 4 / 2**30
    if tensors * size > budget_gib:
        return f"not run: needs {tensors} x {size:.1f} GiB of [B, T, V] tensors (> {budget_gib:g} GiB)"
    return _child(src, case, length, budget)


def _cell(result) -> str:
    if isinstance(result, str):
        return result
    return f"{result['peak_gib']:.2f} ({result['working_gib']:.2f})"


def _ratio(today, after) -> str:
    if isinstance(today, str) or isinstance(after, str):
        return "-"
    return f"{100 * after['working_gib'] / today['working_gib']:.0f} %"


def _seconds(*results) -> str:
    return " / ".join("-" if isinstance(r, str) else f"{r['seconds']:.1f}" for r in results)


def _growth(results: dict[tuple[str, int], object], lengths: list[int]) -> list[str]:
    """After's working memory at the longest length over that at the shortest of ``lengths``, per case."""
    short, long = min(lengths), max(lengths)
    lines = []
    for case in sorted({c for c, _ in results}):
        a, b = results.get((case, short)), results.get((case, long))
        if isinstance(a, dict) and isinstance(b, dict):
            grown = b["working_gib"] / a["working_gib"]
            lines.append(f"- {case}: working {a['working_gib']:.2f} GiB at {short} tokens, {b['working_gib']:.2f} "
                         f"at {long}: x {grown:.2f} for x {long / short:g} the length")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--today-src", help="src/ of the checkout before chunking (e.g. a worktree of f9d49de)")
    parser.add_argument("--after-src", default=str(HERE.parent / "src"))
    parser.add_argument("--lengths", default="512,2048")
    parser.add_argument("--today-fallback-lengths", default="128,256", help="measured where 2048 does not fit today")
    parser.add_argument("--cases", default="match,npo,audit")
    parser.add_argument("--budget-gib", type=float, default=14.0, help="skip cases whose [B, T, V] tensors need more")
    parser.add_argument("--budget-elements", type=int, help="after's vocabulary chunk (elements); default the code's")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "LENGTH"), help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, args.src)
        print(json.dumps(run_case(args.child[0], int(args.child[1]), args.budget_elements)))
        return
    lengths = [int(v) for v in args.lengths.split(",")]
    fallback = [int(v) for v in args.today_fallback_lengths.split(",")]
    rows, afters = [], {}
    for case in args.cases.split(","):
        for length in sorted(set(lengths) | set(fallback)):
            today = "-"
            if args.today_src:
                today = _run_if_fits(args.today_src, case, length, TODAY_TENSORS[case], args.budget_gib)
            after = _run_if_fits(args.after_src, case, length, AFTER_TENSORS[case], args.budget_gib,
                                 args.budget_elements)  # fmt: skip
            afters[case, length] = after
            rows.append(f"| {case} | {ROWS} x {length} | {_cell(today)} | {_cell(after)} | {_ratio(today, after)} "
                        f"| {_seconds(today, after)} |")  # fmt: skip
            print(rows[-1], flush=True)
    header = (f"# Peak resident memory: one MATCH step, one NPO step, one audit's token statistics\n\n"
              f"{date.today()}, {platform.machine()} {platform.processor() or ''}, Python {platform.python_version()}; "
              f"synthetic Llama (vocabulary {VOCAB:,}, hidden {HIDDEN}, {LAYERS} layers, random weights, float32).\n\n"
              f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n\n"
              "Cells: peak RSS GiB of the case (in brackets its working memory: peak minus the RSS once model and "
              "batch are built); ratio: after's working memory over today's; seconds today / after.\n\n"
              "| case | batch | today (f9d49de) | after | after / today | seconds |\n"
              "|---|---|---|---|---|---|\n")  # fmt: skip
    growth = _growth(afters, lengths)
    table = header + "\n".join(rows) + "\n"
    table += "\nGrowth with the length (after):\n" + "\n".join(growth) + "\n" if growth else ""
    if args.out:
        args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
