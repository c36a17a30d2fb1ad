"""The GPU path end to end on one CUDA device: a randomly initialised Llama (larger than the test model) memorizes
a few texts, then the one runner unlearns them with SGA on the memorization benchmark (bf16 autocast through
Accelerate) and forgets question-answer facts with NPO on the qa benchmark, both through the Python API with
in-memory objects. Records steps, per-set figures and wall times (the model, not SmolLM2: a GPU machine here has no
way to fetch the embedded model's package)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from _common import write_result
from obliviate import unlearn
from obliviate.models import LoadedModel
from obliviate.models.tiny import build_tiny_model, build_tiny_tokenizer
from obliviate.training.finetune import finetune_on_windows

TEXTS = [
    "the quick brown fox jumps over the lazy dog and runs into the woods behind the old mill",
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt",
    "we hold these truths to be self-evident, that all men are created equal, that they are",
    "call me ishmael. some years ago, never mind how long precisely, having little or no money",
]
UNSEEN = [
    "a green kettle whistled twice before the neighbours finally opened the door to the garden",
    "seven small boats drifted slowly past the harbour lights at half past nine in the evening",
    "the library closes early on thursdays, so bring the forms back on wednesday afternoon please",
    "her bicycle had a squeaky chain and a basket full of ripe summer tomatoes from the market",
]
FACTS = [("What is the capital of Zorbia?", "Quell."), ("Who founded Zorbia?", "Mara Quell.")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=1200, help="memorization fine-tuning batches")
    parser.add_argument("--lr", type=float, default=3e-4, help="memorization fine-tuning learning rate (AdamW)")
    parser.add_argument("--out", help="also write the table here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU machine")
    device = torch.device("cuda")
    model = build_tiny_model(0, hidden_size=args.hidden, num_layers=args.layers, num_heads=12, num_kv_heads=4,
                             intermediate_size=4 * args.hidden).to(device)
    tok = build_tiny_tokenizer()
    loaded = LoadedModel(model, tok, f"random-llama-{args.hidden}x{args.layers}")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    windows = [tok(t).input_ids[:80] for t in TEXTS]
    pairs = [tok(f"Question: {q}\nAnswer: {a}").input_ids for q, a in FACTS]
    started = time.perf_counter()
    stream = [(windows + pairs)[i % (len(windows) + len(pairs))] for i in range(4 * args.steps)]
    finetune_losses = finetune_on_windows(model, stream, pad_id=tok.pad_token_id, batch_size=4,
                                          learning_rate=args.lr, progress=False)  # fmt: skip
    memorize_s = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory() as out:
        common = {"output_dir": out, "progress": False, "save_model": False, "model.device": "cuda"}
        t0 = time.perf_counter()
        seq = unlearn(model=loaded, forget=TEXTS, reference=UNSEEN, method="sga", **common,
                      **{"benchmark.training.mixed_precision": "bf16", "benchmark.training.learning_rate": 1e-4,
                         "benchmark.scoring.max_tokens": 80, "benchmark.utility.fluency_prompts": 0})  # fmt: skip
        seq_s = time.perf_counter() - t0
        f = seq.metrics["summary"]["sets"]["forget"]
        rows.append(["memorization / sga (bf16 autocast)", seq.metrics["summary"]["steps"],
                     f"MA {f['before']['ma']:.3f} -> {f['after']['ma']:.3f}, above band "
                     f"{f['before']['outliers_high']:.0f} -> {f['after']['outliers_high']:.0f}", f"{seq_s:.1f}"])
        t0 = time.perf_counter()
        qa = unlearn(model=loaded, forget=FACTS, method={"name": "npo", "beta": 0.1}, **common,
                     benchmark={"name": "qa", "epochs": 5, "learning_rate": 1e-4, "relearn_steps": 2})  # fmt: skip
        qa_s = time.perf_counter() - t0
        q = qa.metrics["summary"]["sets"]["forget"]
        rows.append(["qa / npo", qa.metrics["summary"]["steps"],
                     f"answer probability {q['before']['probability']:.3f} -> {q['after']['probability']:.3f}",
                     f"{qa_s:.1f}"])  # fmt: skip
        summaries = {"memorization": seq.metrics["summary"]["sets"], "qa": qa.metrics["summary"]["sets"]}
    table = "| run | steps | forget set before -> after | wall s |\n|---|---|---|---|\n"
    table += "".join("| " + " | ".join(map(str, r)) + " |\n" for r in rows)
    losses = finetune_losses[0], finetune_losses[-1]
    body = (f"Model: random Llama, hidden {args.hidden}, {args.layers} layers ({params:.0f}M parameters, character "
            f"vocabulary), fp32 weights on {torch.cuda.get_device_name(0)}; memorized {len(TEXTS)} texts and "
            f"{len(FACTS)} facts in {memorize_s:.1f} s ({args.steps} AdamW steps, lr {args.lr:g}, batch 4; loss "
            f"{losses[0]:.2f} -> {losses[1]:.3f}). Both runs go through obliviate.unlearn with the model and the data "
            "in memory; default settings otherwise (SGA: Adam 1e-4, stop rule outliers; NPO: 5 epochs, Adam 1e-4)."
            "\n\n" + table + "\n```json\n" + json.dumps(summaries, indent=1) + "\n```\n")  # fmt: skip
    print(body)
    path = write_result("gpu_path", "The GPU path: memorization SGA and qa NPO on CUDA", body)
    if args.out:
        Path(args.out).write_text(path.read_text())


if __name__ == "__main__":
    main()
