"""Time one MATCH step against one plain step (forward + backward + Adam on the mean NLL, i.e. a GA step) on the
same 8 passages of the quick start's forget set (builtin:famous, 200-token windows), on the embedded
SmolLM2-135M, alternating the two and reporting medians. Run it alone on the machine:

    .venv/bin/python benchmarks/bench_match_step.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--passages", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from obliviate.config import TrainingConfig
    from obliviate.data.examples import builtin_sequences
    from obliviate.metrics.tokens import encode_windows
    from obliviate.models import load_model
    from obliviate.training.engine import Engine
    from primed_match import primed_match

    loaded = load_model(args.model, device="cpu", dtype="float32")
    texts = builtin_sequences("famous").texts[: args.passages]
    windows = encode_windows(loaded.tokenizer, texts, 200)
    n, selected = len(windows), list(range(len(windows)))
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, TrainingConfig(learning_rate=1e-12))
    method, _ = primed_match(n, thresholds=(0.3, 0.6, 0.1), loss=(4.0, 1.0), entropy=(3.0, 1.0), ma=(0.3, 0.8),
                             tol=0.01, cap=8.0)  # fmt: skip
    timings: dict[str, list[float]] = {"plain": [], "match": []}
    steps = {"plain": lambda: engine.step(windows, selected, -1.0),
             "match": lambda: method.step(engine, windows, selected)}
    for _ in range(args.repeats + 1):  # the first round warms up
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            timings[name].append(time.perf_counter() - started)
    plain, match = (statistics.median(timings[k][1:]) for k in ("plain", "match"))
    tokens = sum(len(w) for w in windows)
    print(f"{n} passages, {tokens} tokens (longest {max(len(w) for w in windows)}): plain step {plain:.2f} s, "
          f"MATCH step {match:.2f} s, ratio {match / plain:.2f} (medians of {args.repeats})")


if __name__ == "__main__":
    main()
