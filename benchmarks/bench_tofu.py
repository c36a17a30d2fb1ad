"""TOFU-mini on SmolLM2-135M-Instruct (CPU): GA, GradDiff, NPO, IdkDPO, RMU and UnSTAR's anti-sample training,
each against the retain-only model.

Run: python benchmarks/bench_tofu.py [--tofu ../shared/data/tofu] [--retain-authors 2] [--methods ga,npo,...]
1. Fine-tune SmolLM2 on the first --retain-authors TOFU authors plus the forget01 authors (the "full" model),
   and on the retain authors alone (the retain-only model); both are cached under --output-dir.
2. Evaluate both with TOFU's metrics (probability, ROUGE-L recall, truth ratio; model utility).
3. For each method: unlearn forget01 from the full model, evaluate, forget quality = KS p-value of its forget
   truth ratios against the retain-only model's; relearning recovery = share of the forget-answer probability
   lost by unlearning that --relearn-steps SFT steps on half the forget pairs bring back on the other half.
Writes benchmarks/results/tofu.md (one row per model, with wall times)."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

from _common import SHARED_DATA, write_result
from obliviate.config import AntiSampleTrainingConfig
from obliviate.methods.qa import QA_METHODS, RMU
from obliviate.models import load_model
from obliviate.models.loading import LoadedModel, save_model
from obliviate.tofu.evaluate import answer_nlls, evaluate_tofu, forget_quality_against
from obliviate.tofu.metrics import answer_probability
from obliviate.tofu.testbed import tofu_mini
from obliviate.tofu.unlearn import unlearn_qa
from obliviate.training.engine import Engine
from obliviate.training.sft import sft

LABELS = {"ga": "GA", "graddiff": "GradDiff", "npo": "NPO", "idkdpo": "IdkDPO", "rmu": "RMU", "simnpo": "SimNPO",
          "idknll": "IdkNLL", "antisample": "UnSTAR anti-samples (dataset wrong answers)"}  # fmt: skip


def _finetuned(args, name: str, pairs) -> LoadedModel:
    path = Path(args.output_dir) / name
    if (path / "model.safetensors").is_file():
        print(f"reusing {path}", flush=True)
        return load_model(str(path), device="cpu", dtype="float32")
    loaded = load_model("embedded", device="cpu", dtype="float32")
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=args.ft_lr))
    started = time.perf_counter()
    losses = sft(engine, loaded.tokenizer, pairs, passes=args.ft_epochs, batch_size=8, seed=args.seed,
                 progress=True, desc=f"fine-tune {name}")  # fmt: skip
    print(f"{name}: {len(losses)} steps, final loss {np.mean(losses[-10:]):.3f}, "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    trained = LoadedModel(engine.unwrapped, loaded.tokenizer, loaded.spec)
    save_model(trained, path)
    facts = {"steps": len(losses), "seconds": time.perf_counter() - started, "final_loss": float(np.mean(losses[-10:]))}
    (path / "finetune.json").write_text(json.dumps(facts))
    return trained


def _finetune_facts(args, name: str) -> str:
    path = Path(args.output_dir) / name / "finetune.json"
    if not path.is_file():
        return f"{name}: ?"
    f = json.loads(path.read_text())
    return f"{name} {f['steps']} steps, {f['seconds']:.0f} s, final loss {f['final_loss']:.3f}"


def _forget_probability(model, tok, pairs) -> float:
    return answer_probability(answer_nlls(model, tok, pairs))


def _row(label, evaluation, retain_eval, steps="-", recovery="-", seconds="-") -> list[str]:
    return [label, f"{forget_quality_against(evaluation, retain_eval):.3g}", f"{evaluation['model_utility']:.3f}",
            f"{np.mean(evaluation['forget']['truth_ratios']):.3f}", f"{evaluation['forget_truth_ratio']:.3f}",
            f"{evaluation['forget']['probability']:.3f}", f"{evaluation['forget']['rouge_l_recall']:.3f}",
            recovery, str(steps), seconds]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tofu", default=str(SHARED_DATA / "tofu"))
    parser.add_argument("--retain-authors", type=int, default=2)
    parser.add_argument("--ft-epochs", type=int, default=5)
    parser.add_argument("--ft-lr", type=float, default=2e-4)
    parser.add_argument("--methods", default="ga,graddiff,npo,idkdpo,rmu,antisample")
    parser.add_argument("--unlearn-epochs", type=int, default=3)
    parser.add_argument("--unlearn-lr", type=float, default=2e-5)
    parser.add_argument("--rmu-layer", type=int, default=10)
    parser.add_argument("--relearn-steps", type=int, default=5)
    parser.add_argument("--eval-limit", type=int, default=10, help="real authors / world facts items")
    parser.add_argument("--retain-eval-limit", type=int, default=20, help="retain evaluation items")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="runs/bench_tofu")
    args = parser.parse_args()
    started = time.perf_counter()
    data = tofu_mini(args.tofu, retain_authors=args.retain_authors, eval_limit=args.eval_limit,
                     retain_eval_limit=args.retain_eval_limit)  # fmt: skip
    forget_pairs = [(x.question, x.answer) for x in data.forget]
    full = _finetuned(args, "full", data.full_pairs)
    retain_model = _finetuned(args, "retain", data.retain_pairs)
    tok = full.tokenizer
    t0 = time.perf_counter()
    full_eval = evaluate_tofu(full.model, tok, data.eval_sets)
    retain_eval = evaluate_tofu(retain_model.model, tok, data.eval_sets)
    print(f"evaluated full and retain-only in {time.perf_counter() - t0:.0f} s", flush=True)
    half = len(forget_pairs) // 2
    relearn_on, relearn_test = forget_pairs[:half], forget_pairs[half:]
    p_full = _forget_probability(full.model, tok, relearn_test)
    rows = [_row("full (before unlearning)", full_eval, retain_eval), _row("retain-only", retain_eval, retain_eval)]
    for name in args.methods.split(","):
        method_started = time.perf_counter()
        method = RMU(layer=args.rmu_layer) if name == "rmu" else QA_METHODS[name]()
        model = copy.deepcopy(full.model)
        engine = Engine(model, tok.pad_token_id, AntiSampleTrainingConfig(learning_rate=args.unlearn_lr))
        alternatives = [x.perturbed_answers[0] for x in data.forget] if name == "antisample" else None
        log = unlearn_qa(engine, tok, method, forget_pairs, data.retain_pairs, alternatives=alternatives,
                         epochs=args.unlearn_epochs, seed=args.seed)  # fmt: skip
        unlearning = time.perf_counter() - method_started
        evaluation = evaluate_tofu(engine.unwrapped, tok, data.eval_sets)
        p_unlearned = _forget_probability(engine.unwrapped, tok, relearn_test)
        relearn = Engine(copy.deepcopy(engine.unwrapped), tok.pad_token_id,
                         AntiSampleTrainingConfig(learning_rate=args.unlearn_lr))  # fmt: skip
        sft(relearn, tok, relearn_on, passes=args.relearn_steps, batch_size=len(relearn_on), seed=args.seed)
        p_relearned = _forget_probability(relearn.unwrapped, tok, relearn_test)
        recovery = (p_relearned - p_unlearned) / max(p_full - p_unlearned, 1e-9)
        seconds = time.perf_counter() - method_started
        print(f"{name}: {len(log)} steps, utility {evaluation['model_utility']:.3f}, forget quality "
              f"{forget_quality_against(evaluation, retain_eval):.3g}, recovery {recovery:.2f}, {seconds:.0f} s",
              flush=True)  # fmt: skip
        rows.append(_row(LABELS.get(name, name), evaluation, retain_eval, len(log),
                         f"{recovery:.2f} ({p_unlearned:.3f} → {p_relearned:.3f})",
                         f"{unlearning:.0f} / {seconds:.0f}"))  # fmt: skip
        _write(args, data, rows, relearn_on, relearn_test, p_full, started, final=False)
    _write(args, data, rows, relearn_on, relearn_test, p_full, started, final=True)


def _write(args, data, rows, relearn_on, relearn_test, p_full, started, final: bool) -> None:
    """(Re)write benchmarks/results/tofu.md with the rows so far (after every method, so a cut run keeps them)."""
    headers = ["model", "forget quality (KS p)", "model utility", "forget truth ratio (mean R)",
               "forget TR score min(R,1/R)", "forget prob.", "forget ROUGE-L", "relearning recovery (prob.)",
               "steps", "wall s (unlearn / with eval)"]  # fmt: skip
    table = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    table += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    body = (
        f"TOFU-mini: SmolLM2-135M-Instruct fine-tuned (fp32, CPU, Adam {args.ft_lr:g}, {args.ft_epochs} epochs, "
        f"batch 8) on the first {args.retain_authors} TOFU authors + the 2 forget01 authors "
        f"({len(data.full_pairs)} QA); retain-only model: the {args.retain_authors} authors alone. Evaluation: "
        f"forget01 ({len(data.forget)}), the retain authors' retain_perturbed items ({len(data.eval_sets.retain)}), "
        f"{len(data.eval_sets.real_authors)} real-author and {len(data.eval_sets.world_facts)} world-fact items. "
        f"Unlearning: {args.unlearn_epochs} epochs over forget01 in batches of 8 (each with 8 retain pairs), Adam "
        f"{args.unlearn_lr:g}; RMU at layer {args.rmu_layer}. Relearning: {args.relearn_steps} full-batch SFT steps "
        f"on {len(relearn_on)} forget pairs, recovery measured on the other {len(relearn_test)} "
        f"(0: none, 1: back to the full model's {p_full:.3f}). 'UnSTAR anti-samples' trains the forget questions "
        "towards TOFU's first perturbed answer (the dataset backend's wrong answer, a whole misleading sentence), "
        "not the self-taught loop. Forget quality is the KS p-value against the retain-only model (higher is "
        f"better); the forget TR score is TOFU's min(R, 1/R). Whole run: {time.perf_counter() - started:.0f} s "
        f"(fine-tuned models reused when cached; fine-tuning: {_finetune_facts(args, 'full')}; "
        f"{_finetune_facts(args, 'retain')}){'' if final else '; still running'}.\n\n" + table
    )
    if final:
        print(body)
    print("wrote", write_result("tofu", "TOFU-mini: QA unlearning baselines and UnSTAR against the retain-only model",
                                body))  # fmt: skip


if __name__ == "__main__":
    main()
