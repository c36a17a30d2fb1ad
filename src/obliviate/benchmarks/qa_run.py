"""The qa benchmark's run: evaluate, unlearn in epochs, evaluate again, attacks, summary."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from obliviate.attacks.membership import membership_attacks
from obliviate.attacks.paraphrase import paraphrase_attack
from obliviate.attacks.quantization import quantization_attack
from obliviate.attacks.relearning import relearning_on_answers
from obliviate.benchmarks.qa_stepwise import unlearn_stepwise_qa
from obliviate.benchmarks.spec import RunContext
from obliviate.config import AntiSampleTrainingConfig
from obliviate.data import Fact, FactSet, load_facts
from obliviate.errors import ConfigError, DataError
from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.metrics.answers import answer_nlls, answer_probability_of, rouge_l_recall
from obliviate.models import LoadedModel, load_model
from obliviate.models.generation import GREEDY, chat_prompt, generate
from obliviate.models.loading import save_trained
from obliviate.render.markdown import markdown_table
from obliviate.tofu.unlearn import unlearn_qa
from obliviate.training.engine import Engine
from obliviate.unstar.judge import build_judge

log = logging.getLogger("obliviate")


def facts_from(value: Any, name: str) -> FactSet:
    """An in-memory fact set: a FactSet, or a list of (question, answer) pairs (ids ``name-0``, ...)."""
    if isinstance(value, FactSet):
        return value
    pairs = list(value)
    if not pairs or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
        raise ConfigError(f"in-memory {name} facts must be a non-empty list of (question, answer) pairs or a FactSet")
    return FactSet(name, tuple(Fact(f"{name}-{i}", str(q), str(a)) for i, (q, a) in enumerate(pairs)))


def _facts(ctx: RunContext, key: str, spec: str | None, limit: int | None = None) -> FactSet | None:
    if key in ctx.inputs:
        return facts_from(ctx.inputs[key], key)
    if not spec:
        if key == "forget":
            raise ConfigError("the qa benchmark needs a question-answer file to forget (obliviate unlearn FACTS.jsonl)")
        return None
    return load_facts(spec, limit=limit)


def evaluate_facts(model, tokenizer, facts: Sequence[tuple[str, str, str]], judge) -> dict[str, Any]:
    """Per fact (id, question, answer): greedy reply, judged correct, answer probability, ROUGE-L recall."""
    if not facts:
        return {"aggregate": {}, "per_sample": {}, "items": []}
    pairs = [(q, a) for _, q, a in facts]
    replies = [r[0] for r in generate(model, tokenizer, [chat_prompt(tokenizer, q) for q, _ in pairs], GREEDY)]
    correct = judge.matches(replies, [a for _, a in pairs])
    probability = np.exp(-answer_nlls(model, tokenizer, pairs))
    rouge = [rouge_l_recall([r], [a]) for r, (_, a) in zip(replies, pairs)]
    per_sample = {fid: {"correct": float(c), "probability": float(p), "rouge_l_recall": float(g)}
                  for (fid, _, _), c, p, g in zip(facts, correct, probability, rouge)}  # fmt: skip
    aggregate = {k: float(np.mean([v[k] for v in per_sample.values()])) for k in ("correct", "probability",
                                                                               "rouge_l_recall")}
    items = [{"id": fid, "question": q, "answer": a, "reply": r, "correct": bool(c)}
             for (fid, q, a), r, c in zip(facts, replies, correct)]  # fmt: skip
    return {"aggregate": {"accuracy" if k == "correct" else k: v for k, v in aggregate.items()},
            "per_sample": per_sample, "items": items}  # fmt: skip


def evaluation_sets(forget: FactSet, retain: FactSet | None) -> dict[str, list[tuple[str, str, str]]]:
    sets = {"forget": [(f.id, f.question, f.answer) for f in forget],
            "paraphrase": [(f"{f.id}/p{k}", p, f.answer) for f in forget for k, p in enumerate(f.paraphrases)]}
    if retain is not None:
        sets["retain"] = [(f.id, f.question, f.answer) for f in retain]
    return {k: v for k, v in sets.items() if v}


def evaluate_all(model, tokenizer, sets, judge) -> dict[str, Any]:
    model.eval()
    return {name: evaluate_facts(model, tokenizer, facts, judge) for name, facts in sets.items()}


def wrong_answer_pairs(forget: FactSet) -> list[list[tuple[str, str]]]:
    """UnSTAR's anti-samples from the data: each question (and paraphrase) with each wrong answer, in turn."""
    out = []
    for f in forget:
        if not f.perturbed_answers:
            raise DataError(f"unstar on the qa benchmark trains towards wrong answers: fact {f.id!r} has no "
                            "perturbed_answers")  # fmt: skip
        questions = [f.question, *f.paraphrases]
        n = max(len(questions), len(f.perturbed_answers))
        out.append([(questions[k % len(questions)], f.perturbed_answers[k % len(f.perturbed_answers)])
                    for k in range(n)])  # fmt: skip
    return out


def load_facts_into(ctx: RunContext) -> None:
    """The forget, retain and holdout facts (files or in-memory pairs) into ``ctx.inputs``, checked."""
    b = ctx.benchmark
    ctx.inputs["forget"] = _facts(ctx, "forget", ctx.forget, ctx.limit)
    ctx.inputs["retain"], ctx.inputs["holdout"] = _facts(ctx, "retain", b.retain), _facts(ctx, "holdout", b.holdout)
    if ctx.method_spec.antisample:
        ctx.inputs["alternatives"] = wrong_answer_pairs(ctx.inputs["forget"])
    if ctx.method_spec.objective is None and ctx.method.name != "none" and ctx.inputs["holdout"] is None:
        raise ConfigError(f"{ctx.method.name} on the qa benchmark judges each answer against answers the model never "
                          "saw: give never-trained facts (--set benchmark.holdout=FILE)")  # fmt: skip


def run_qa(ctx: RunContext) -> dict[str, Any]:
    b, spec = ctx.benchmark, ctx.method_spec
    forget, retain, holdout = ctx.inputs["forget"], ctx.inputs["retain"], ctx.inputs["holdout"]
    alternatives = ctx.inputs.get("alternatives")
    judge = build_judge(b.judge)
    started = time.perf_counter()
    loaded = ctx.before_model() or ctx.inputs.get("model") or load_model(
        ctx.model.model, device=ctx.model.device, dtype=ctx.model.dtype, trust_remote_code=ctx.model.trust_remote_code)
    tok = loaded.tokenizer
    sets = evaluation_sets(forget, retain)
    before = evaluate_all(loaded.model, tok, sets, judge)
    log.info("before: %s", {k: round(v["aggregate"]["accuracy"], 3) for k, v in before.items()})
    forget_pairs = [(f.question, f.answer) for f in forget]
    half_probability = float(np.mean([before["forget"]["per_sample"][f.id]["probability"]
                                      for f in list(forget)[len(forget) // 2:]]))  # fmt: skip
    t0 = time.perf_counter()
    stepwise: dict[str, Any] = {}
    if ctx.evaluated is not None:  # evaluation only: the evaluated model stands where the unlearned one would be
        model, losses = ctx.evaluated.model, []
    elif spec.objective is None:  # SGA, TA, TAU: per-fact answer-token MA against never-trained facts
        model, stepwise = unlearn_stepwise_qa(ctx, _start(ctx, loaded), tok, forget, holdout)
        losses = stepwise.pop("losses")
    else:
        engine = Engine(_start(ctx, loaded), tok.pad_token_id, AntiSampleTrainingConfig(learning_rate=b.learning_rate,
                                                                                 seed=ctx.seed))  # fmt: skip
        log_steps = unlearn_qa(engine, tok, spec.objective(ctx.method), forget_pairs,
                               [(f.question, f.answer) for f in retain or []], alternatives=alternatives,
                               epochs=b.epochs, batch_size=b.batch_size, seed=ctx.seed,
                               progress=ctx.progress)  # fmt: skip
        losses = [r["loss"] for r in log_steps if "loss" in r]
        model = engine.unwrapped.eval()
    unlearning_seconds = time.perf_counter() - t0
    # evaluating with no before model: one model, so its before evaluation is the after one (when unlearning, the
    # loaded model may have been trained in place: it is evaluated again)
    same = ctx.evaluated is not None and model is loaded.model
    after = before if same else evaluate_all(model, tok, sets, judge)
    log.info("after: %s", {k: round(v["aggregate"]["accuracy"], 3) for k, v in after.items()})
    attacks: dict[str, Any] = {}
    # the unlearned model's forget-answer NLLs, from its evaluation (the attacks need no other forward pass)
    forget_nlls = [-math.log(max(after["forget"]["per_sample"][f.id]["probability"], 1e-300)) for f in forget]
    if b.relearn_steps:
        attacks["relearning"] = relearning_on_answers(model, tok, forget_pairs, before_unlearning=half_probability,
                                                      steps=b.relearn_steps, learning_rate=b.learning_rate,
                                                      seed=ctx.seed, nlls=forget_nlls)  # fmt: skip
    if b.quantization_bits:
        attacks["quantization"] = quantization_attack(model, lambda m: answer_probability_of(m, tok, forget_pairs),
                                                      b.quantization_bits)  # fmt: skip
    asked = [(q, f.answer) for f in forget for q in f.paraphrases]
    if asked:
        attacks["paraphrase"] = paraphrase_attack(model, tok, asked)
    if holdout is not None:
        reference = ctx.load_other_model(b.membership_reference) if b.membership_reference else None
        scores = membership_attacks(model, tok, forget_pairs, [(f.question, f.answer) for f in holdout],
                                    member_nlls=forget_nlls, gradnorm=b.membership_gradnorm, seed=ctx.seed,
                                    reference_model=reference.model if reference else None)  # fmt: skip
        attacks.update({"membership" if name == "loss" else f"membership_{name}": s for name, s in scores.items()})
    unlearned = LoadedModel(model, tok, loaded.spec)
    ctx.inputs["unlearned_model"] = unlearned
    model_path = save_trained(unlearned, ctx.run_dir) if ctx.save_model else None
    sets_summary = {}
    for name in before:
        bv, av = before[name]["aggregate"]["accuracy"], after[name]["aggregate"]["accuracy"]
        sets_summary[name] = {"before": bv, "after": av, "retained": av / bv if bv else None, "n": len(sets[name])}
    metrics = {
        "method": spec.name, "model": ctx.model.model, "forget": ctx.forget or "<in memory>",
        "before": {k: {"aggregate": v["aggregate"], "per_sample": v["per_sample"]} for k, v in before.items()},
        "after": {k: {"aggregate": v["aggregate"], "per_sample": v["per_sample"]} for k, v in after.items()},
        "sets": sets_summary, "attacks": attacks, "steps": stepwise.pop("steps", len(losses)),
        "losses": losses, "seconds_unlearning": unlearning_seconds, **stepwise,
        "seconds": time.perf_counter() - started, "model_path": str(model_path) if model_path else None,
    }  # fmt: skip
    write_json_atomic(ctx.run_dir / "answers.json", {
        "before": {k: {"items": v["items"]} for k, v in before.items()},
        "after": {k: {"items": v["items"]} for k, v in after.items()}})  # fmt: skip
    write_text_atomic(ctx.run_dir / "summary.md", qa_summary(metrics))
    return metrics


def _start(ctx: RunContext, loaded: LoadedModel):
    """The model to train: a copy of an in-memory model (the caller's is never changed), else the loaded one."""
    return copy.deepcopy(loaded.model) if "model" in ctx.inputs else loaded.model


def qa_summary(metrics: dict[str, Any]) -> str:
    rows = [[name, f"{s['before']:.3f}", f"{s['after']:.3f}", "-" if s["retained"] is None else f"{s['retained']:.2f}",
             f"{metrics['before'][name]['aggregate']['probability']:.3f}",
             f"{metrics['after'][name]['aggregate']['probability']:.3f}", s["n"]]
            for name, s in metrics["sets"].items()]  # fmt: skip
    lines = [f"# {metrics['method']} on question-answer facts ({metrics['model']})", "",
             f"{metrics['steps']} optimizer steps, unlearning {metrics['seconds_unlearning']:.0f} s.", "",
             markdown_table(["set", "accuracy before", "after", "after / before", "probability before", "after", "n"],
                            rows), "",
             "forget: the questions trained on; paraphrase: the same facts asked differently (never trained on); "
             "retain: facts to keep. Accuracy: the greedy reply gives the answer (answer judge).", ""]  # fmt: skip
    q = metrics["attacks"].get("quantization")
    if q:
        lines += ["## Quantization attack", "", "Forget-answer probability with rounded weights: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in q.items()), ""]  # fmt: skip
    r = metrics["attacks"].get("relearning")
    if r and "recovery" in r:
        rec = "not reported (nothing was lost)" if r["recovery"] is None else f"{r['recovery']:.2f}"
        lines += ["## Relearning attack", "", f"{r['steps']} SFT steps on {r['trained_on']} forget facts; "
                  f"probability on the other {r['measured_on']}: {r['before']:.3f} -> {r['after']:.3f}, "
                  f"recovery {rec}.", ""]  # fmt: skip
    m = metrics["attacks"].get("membership")
    if m:
        either, way = max(m["auc"], 1 - m["auc"]), "higher" if m["auc"] >= 0.5 else "lower"
        lines += ["## Membership attack (loss)", "", f"AUC {m['auc']:.3f}, AUC either way {either:.3f} (members "
                  f"{way}; forget facts vs never-trained facts).", ""]  # fmt: skip
    return "\n".join(lines)
