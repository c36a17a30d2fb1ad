"""Speed and agreement of the fast MA / EL_n / ES implementations against per-prefix generate() references.

Run: python benchmarks/bench_memorization_metrics.py [--model embedded] [--sequences 16] [--tokens 128]
Writes benchmarks/results/memorization_metrics.md."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from _common import SHARED_DATA, write_result
from obliviate.data import load_sequences
from obliviate.metrics.naive import naive_exact_memorization, naive_extraction_likelihood
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.tokens import encode_windows
from obliviate.models import load_model


def pick_windows(tokenizer, path: Path, count: int, tokens: int, seed: int) -> list[list[int]]:
    sequences = load_sequences(path)
    order = np.random.default_rng(seed).permutation(len(sequences))
    windows = []
    for index in order:
        window = encode_windows(tokenizer, [sequences.texts[index]], tokens)[0]
        if len(window) == tokens:
            windows.append(window)
        if len(windows) == count:
            return windows
    raise SystemExit(f"only {len(windows)} documents of {path} have {tokens} tokens")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--source", default=str(SHARED_DATA / "text" / "pile_validation.csv"))
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--n", type=int, default=10, help="EL_n's n")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decode-batch-size", type=int, default=256, help="rows decoded together for EL")
    parser.add_argument("--name", default="memorization_metrics")
    parser.add_argument("--no-batched-reference", action="store_true", help="skip the batched reference (21 min)")
    parser.add_argument(
        "--per-sequence-subset",
        type=int,
        default=0,
        help="also time the unbatched reference (one generate() per prefix per sequence) on the first K sequences "
        "and extrapolate its time linearly to all sequences",
    )
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    loaded = load_model(args.model, device="cpu", dtype="float32")
    windows = pick_windows(loaded.tokenizer, Path(args.source), args.sequences, args.tokens, args.seed)
    batch = torch.tensor(windows)
    pad = loaded.tokenizer.pad_token_id

    def fast(**kwargs):
        return score_windows(
            loaded.model,
            windows,
            pad_id=pad,
            batch_size=16,
            decode_batch_size=args.decode_batch_size,
            progress=False,
            **kwargs,
        )

    print("fast MA (greedy predictions only) ...", flush=True)
    fast(full_stats=False)  # warm-up: thread pools and allocator, as the reference gets from running later
    fast_ma, t_fast_ma = timed(lambda: fast(full_stats=False).memorization())
    print("fast full teacher-forced statistics (MA, loss, MIA inputs) ...", flush=True)
    full, t_full = timed(lambda: fast(full_stats=True).memorization())
    print("fast EL ...", flush=True)
    fast_el, t_fast_el = timed(lambda: fast(el_ns=(args.n,), full_stats=False))
    if args.no_batched_reference:
        naive_ma = naive_el = np.zeros(len(windows))
        t_naive_ma = t_naive_el = float("nan")
    else:
        print("reference MA ...", flush=True)
        naive_ma, t_naive_ma = timed(lambda: naive_exact_memorization(loaded.model, batch))
        print("reference EL ...", flush=True)
        naive_el, t_naive_el = timed(lambda: naive_extraction_likelihood(loaded.model, batch, args.n))
    el_key = f"el_{args.n}"
    fast_el_values = fast_el.extraction[el_key]

    def agreement(a, b):
        diff = np.abs(np.asarray(a) - np.asarray(b))
        return f"max abs diff {diff.max():.2e}, sequences differing {(diff > 1e-9).sum()}/{len(diff)}"

    rows = [
        ("MA", t_naive_ma, t_fast_ma, agreement(fast_ma["ma"], naive_ma)),
        ("MA + loss + MIA inputs (full pass)", t_naive_ma, t_full, agreement(full["ma"], naive_ma)),
        (f"EL_{args.n}", t_naive_el, t_fast_el, agreement(fast_el_values, naive_el)),
    ]
    if args.no_batched_reference:
        rows = [(name, float("nan"), seconds, "not run") for name, _, seconds, _ in rows]
    body = (
        f"{args.sequences} sequences x {args.tokens} tokens from `{args.source}`, model `{args.model}` (fp32, CPU).\n"
        "Reference: one `generate()` call per prefix over the batch (MA: T-1 calls of 1 token; "
        f"EL_{args.n}: T-{args.n} calls generating the rest greedily with the KV cache).\n"
        "Fast: one teacher-forced pass (MA; the vocabulary projection in chunks of positions); EL reuses that "
        "pass's KV cache and decodes only from prefixes whose greedy token is wrong, "
        f"{args.decode_batch_size} rows at a time, each row joining the batch at its own prefix length "
        "(preallocated KV cache, no padding, no attention mask).\n\n"
        "| metric | reference s | fast s | speed-up | agreement |\n|---|---|---|---|---|\n"
    )
    for name, slow, fast_s, agree in rows:
        speedup = f"{slow / fast_s:.1f}x" if slow == slow else "-"
        body += f"| {name} | {slow:.1f} | {fast_s:.2f} | {speedup} | {agree} |\n"
    if args.per_sequence_subset:
        k = args.per_sequence_subset
        scale = len(windows) / k
        print(f"unbatched reference on {k} sequences ...", flush=True)
        single_ma, t_single_ma = timed(
            lambda: np.concatenate([naive_exact_memorization(loaded.model, batch[i : i + 1]) for i in range(k)])
        )
        single_el, t_single_el = timed(
            lambda: np.concatenate(
                [naive_extraction_likelihood(loaded.model, batch[i : i + 1], args.n) for i in range(k)]
            )
        )
        body += (
            f"\nUnbatched reference (one `generate()` per prefix per sequence), timed on the first {k} sequences "
            f"and extrapolated x{scale:g} to all {len(windows)}:\n\n"
            "| metric | unbatched reference s (extrapolated) | fast s | speed-up | agreement on the subset |\n"
            "|---|---|---|---|---|\n"
            f"| MA | {t_single_ma * scale:.1f} | {t_fast_ma:.2f} | {t_single_ma * scale / t_fast_ma:.1f}x | "
            f"{agreement(fast_ma['ma'][:k], single_ma)} |\n"
            f"| EL_{args.n} | {t_single_el * scale:.1f} | {t_fast_el:.2f} | {t_single_el * scale / t_fast_el:.1f}x | "
            f"{agreement(fast_el_values[:k], single_el)} |\n"
        )
    body += (
        f"\nMean MA {fast_ma['ma'].mean():.4f} (min {fast_ma['ma'].min():.4f}, max {fast_ma['ma'].max():.4f}); "
        f"mean EL_{args.n} {fast_el_values.mean():.4f}.\n"
    )
    print(body)
    print("wrote", write_result(args.name, "Memorization metrics: fast vs per-prefix reference", body))


if __name__ == "__main__":
    main()
