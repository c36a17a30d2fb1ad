"""The associations benchmark's run and ``obliviate antisamples``: evaluate, run the UnSTAR loop (or train from an
anti-sample file, or train an objective method on the associations' questions), evaluate again, relearning check,
report."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.attacks.quantization import QUANTIZATION_NOTE, quantization_attack
from obliviate.core.rundir import TrackedRun
from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.models import LoadedModel, load_model
from obliviate.models.generation import Sampling
from obliviate.models.loading import resolve_device, save_trained
from obliviate.render.markdown import markdown_table
from obliviate.render.plots import plot_tradeoff
from obliviate.tofu.unlearn import unlearn_qa
from obliviate.training.engine import Engine
from obliviate.training.sft import sft
from obliviate.unstar.antisamples import backend_shares, read_antisamples, write_antisamples
from obliviate.unstar.associations import QA, AssociationSet, resolve_associations, resolve_qa
from obliviate.unstar.backends import (
    Backend,
    ChatBackend,
    FallingBack,
    LocalChatModel,
    OpenAIChatModel,
    TemplateBackend,
)
from obliviate.unstar.config import UnstarConfig
from obliviate.unstar.evaluation import (
    answer_accuracy,
    association_probes,
    probe_rows,
    relearning_check,
    reply_frames,
    targeted_evaluation,
)
from obliviate.unstar.judge import AnyJudge, build_judge
from obliviate.unstar.pipeline import UnstarPipeline, UnstarResult, UnstarSettings

log = logging.getLogger("obliviate")
SETS = ("forget", "subject", "object", "unrelated")


def settings_from(cfg: UnstarConfig) -> UnstarSettings:
    return UnstarSettings(
        seed_questions=cfg.seed_questions, wrong_answers=cfg.wrong_answers, escalations=cfg.escalations,
        target_unlearned=cfg.target_unlearned, max_rounds=cfg.max_rounds, passes=cfg.passes,
        batch_size=cfg.batch_size, rationale=cfg.rationale, escalation=cfg.escalation, retain_step=cfg.retain_step,
        consolidation_rounds=cfg.consolidation_rounds, retain_replies=cfg.retain_replies,
        probe_samples=cfg.probe_samples, train_on_prompt=cfg.train_on_prompt, seed=cfg.seed,
        unlikelihood_weight=cfg.unlikelihood_weight,
    )  # fmt: skip


def build_backends(cfg: UnstarConfig, loaded: LoadedModel, associations: AssociationSet) -> list[Backend]:
    """The configured generator, then (with ``fallback``) the template backend."""
    template = TemplateBackend(list(associations))
    if cfg.generator == "template":
        return [template]
    if cfg.generator == "self":
        chat = LocalChatModel(loaded.model, loaded.tokenizer, name="self")
    elif cfg.generator == "local":
        assert cfg.generator_model is not None
        other = load_model(cfg.generator_model, device=cfg.model.device, dtype=cfg.model.dtype)
        chat = LocalChatModel(other.model, other.tokenizer, name=f"local:{Path(cfg.generator_model).name}")
    else:
        assert cfg.endpoint is not None
        chat = OpenAIChatModel(cfg.endpoint.base_url, cfg.endpoint.model, api_key_env=cfg.endpoint.api_key_env,
                               timeout=cfg.endpoint.timeout)  # fmt: skip
    return [FallingBack(ChatBackend(chat)), template] if cfg.fallback else [ChatBackend(chat)]


def _judge(kinds: list[str], backends: list[Backend]) -> AnyJudge:
    llm = None
    if "llm" in kinds:
        chats = [b.inner if isinstance(b, FallingBack) else b for b in backends]
        chat = next((b.chat for b in chats if isinstance(b, ChatBackend)), None)  # type: ignore[attr-defined]
        if chat is not None:
            sampling = Sampling(max_new_tokens=4)

            def llm(prompts: list[str]) -> list[str]:
                return [r[0] for r in chat.complete(prompts, sampling, seed=0)]

    return build_judge(kinds, llm=llm)


def read_inputs(cfg: UnstarConfig) -> None:
    """Read every input file of a run (associations, fact sets, anti-samples): a bad one fails before any work."""
    _inputs(cfg)
    if cfg.unknown:
        resolve_qa(cfg.unknown)
    if cfg.antisamples:
        read_antisamples(cfg.antisamples)


def _inputs(cfg: UnstarConfig) -> tuple[AssociationSet, list[QA], list[QA]]:
    associations = resolve_associations(cfg.forget, cfg.limit)
    unrelated = resolve_qa(cfg.unrelated) if cfg.unrelated else []
    retain = resolve_qa(cfg.retain) if cfg.retain else []
    return associations, unrelated, retain


def _load(cfg: UnstarConfig) -> LoadedModel:
    return load_model(cfg.model.model, device=cfg.model.device, dtype=cfg.model.dtype,
                      trust_remote_code=cfg.model.trust_remote_code)  # fmt: skip


@dataclass(frozen=True)
class ObjectiveRun:
    """Another method on the associations: its objective, trained for ``epochs`` passes over the associations'
    questions (``batch_size`` per step, as many retain facts beside them)."""

    name: str
    objective: Any  # an ObjectiveMethod
    epochs: int
    batch_size: int


def unstar_in(run_dir: Path, cfg: UnstarConfig, loaded: LoadedModel | None = None,
              objective: ObjectiveRun | None = None,
              evaluated: LoadedModel | None = None) -> dict[str, Any]:  # fmt: skip
    """Unlearn the associations in ``cfg.forget`` inside ``run_dir`` (made by the runner); returns the metrics.
    ``loaded``: a model already in memory (a copy is trained), instead of ``cfg.model``; ``objective``: train that
    method instead of UnSTAR (same evaluation and attacks); ``evaluated``: evaluation only - no training, this
    model is judged where the unlearned one would be (``loaded``: the before model)."""
    associations, unrelated, retain = _inputs(cfg)
    from_file = read_antisamples(cfg.antisamples) if cfg.antisamples and objective is None else None
    name = "evaluation" if evaluated else objective.name if objective else "UnSTAR"
    log.info("%s on %s, cutting %d associations", name, cfg.model.model, len(associations))
    started = time.perf_counter()
    if evaluated is None:
        loaded = _load(cfg) if loaded is None else LoadedModel(copy.deepcopy(loaded.model), loaded.tokenizer,
                                                                 loaded.spec)  # fmt: skip
    assert loaded is not None
    eval_judge = build_judge(cfg.eval_judge)
    before = targeted_evaluation(loaded.model, loaded.tokenizer, list(associations), unrelated, eval_judge)
    log.info("before: %s", {k: round(before[k]["accuracy"], 3) for k in SETS})
    warn_unknown_facts(before)
    unknown, frames = resolve_qa(cfg.unknown) if cfg.unknown else [], reply_frames(before["forget"]["items"])
    probe = lambda model: association_probes(model, loaded.tokenizer, list(associations), eval_judge,  # noqa: E731
                                             leak_k=cfg.leak_k, seed=cfg.seed, unknown=unknown,
                                             frames=frames)  # fmt: skip
    probes = {"before": probe(loaded.model)}
    unlearning_started = time.perf_counter()
    evaluating = [0.0]  # seconds spent on the per-round evaluation, left out of the unlearning time
    if evaluated is None:
        engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, cfg.training,
                        cpu=resolve_device(cfg.model.device).type == "cpu")  # fmt: skip
        trained = LoadedModel(engine.unwrapped, loaded.tokenizer, loaded.spec)
    if evaluated is not None:  # evaluation only: the evaluated model stands where the unlearned one would be
        trained, result = evaluated, UnstarResult(steps=0, rounds=[])
    elif objective is not None:
        records = unlearn_qa(engine, loaded.tokenizer, objective.objective,
                             [(a.question, a.answer) for a in associations], [(f.question, f.answer) for f in retain],
                             epochs=objective.epochs,
                             batch_size=objective.batch_size, seed=cfg.seed, progress=cfg.progress)  # fmt: skip
        steps = sum("loss" in r for r in records)
        result = UnstarResult(steps=steps, rounds=[{"round": 0, "method": objective.name, "steps": steps}])
    elif from_file is not None:
        pairs = [(s.question, s.target) for s in from_file]
        losses = sft(engine, loaded.tokenizer, pairs, passes=cfg.passes, batch_size=cfg.batch_size,
                     train_on_prompt=cfg.train_on_prompt, seed=cfg.seed, progress=cfg.progress)  # fmt: skip
        rounds = [{"round": 0, "from_file": cfg.antisamples, "steps": len(losses)}]
        result = UnstarResult(antisamples=from_file, steps=len(losses), rounds=rounds)
    else:
        backends = build_backends(cfg, trained, associations)

        def heldout_accuracy(_round: int) -> dict[str, Any]:
            # the four sets after every round, for the trace only (never fed back into the loop)
            t0 = time.perf_counter()
            now = targeted_evaluation(engine.unwrapped, loaded.tokenizer, list(associations), unrelated,
                                      eval_judge)  # fmt: skip
            evaluating[0] += time.perf_counter() - t0
            return {"forget_heldout_accuracy": now["forget"]["accuracy"],
                    "accuracy": {k: now[k]["accuracy"] for k in SETS},
                    "elapsed": time.perf_counter() - unlearning_started - evaluating[0]}  # fmt: skip

        pipeline = UnstarPipeline(engine, loaded.tokenizer, list(associations), backends,
                                  _judge(cfg.judge, backends), settings_from(cfg), retain=retain,
                                  progress=cfg.progress, after_round=heldout_accuracy)  # fmt: skip
        result = pipeline.run()
    unlearning_seconds = time.perf_counter() - unlearning_started - evaluating[0]
    if objective is None and evaluated is None:
        write_antisamples(run_dir / "antisamples.jsonl", result.antisamples)
    model = trained.model.eval()
    # evaluating with no before model: the before evaluation is the after one (unlearning trains in place)
    same = evaluated is not None and model is loaded.model
    after = before if same else targeted_evaluation(model, loaded.tokenizer, list(associations), unrelated,
                                                    eval_judge)  # fmt: skip
    log.info("after: %s", {k: round(after[k]["accuracy"], 3) for k in SETS})
    probes["after"] = probes["before"] if same else probe(model)
    relearn = None
    if cfg.relearn_steps:
        relearn = relearning_check(model, loaded.tokenizer, list(associations), eval_judge,
                                   cfg.training, steps=cfg.relearn_steps,
                                   before_items=before["forget"]["items"])  # fmt: skip
    quantized = heldout_quantization(model, loaded.tokenizer, list(associations), eval_judge,
                                    cfg.quantization_bits)  # fmt: skip
    model_path = save_trained(trained, run_dir) if cfg.save_model else None
    method_name = "none" if evaluated else objective.name if objective else None
    metrics = _metrics(cfg, before, after, result, relearn, model_path, unlearning_seconds,
                       time.perf_counter() - started, method_name)  # fmt: skip
    metrics["quantization_attack"], metrics["probes"] = quantized, probes
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_json_atomic(run_dir / "answers.json", {"before": before, "after": after})
    plot_unstar_tradeoff(run_dir / "tradeoff.png", metrics)
    write_text_atomic(run_dir / "summary.md", unstar_summary(metrics))
    return metrics


def warn_unknown_facts(before: dict[str, Any]) -> list[str]:
    """Say which evaluation questions the model gets wrong before unlearning (a set built for another model,
    or a model that never knew the fact): forgetting or keeping them measures nothing."""
    unknown = [f"{name}: {item['question']!r} (expected {item['answer']!r})"
               for name in SETS for item in before[name]["items"] if not item["correct"]]  # fmt: skip
    if unknown:
        log.warning("the model answers %d evaluation question(s) wrongly before unlearning:\n  %s", len(unknown),
                    "\n  ".join(unknown[:20]))  # fmt: skip
    return unknown


def generate_antisamples(cfg: UnstarConfig, out: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """One generation round, no training: seed questions, wrong answers, probe, rationales (+ retain samples).
    Writes antisamples.jsonl into a new run directory (and to ``out`` if given); returns (file, summary)."""
    associations, _, retain = _inputs(cfg)
    with TrackedRun(cfg.output_dir, "antisamples", cfg.model_dump(mode="json")) as run_dir:
        loaded = _load(cfg)
        engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, cfg.training,
                        cpu=resolve_device(cfg.model.device).type == "cpu")  # fmt: skip
        backends = build_backends(cfg, LoadedModel(engine.unwrapped, loaded.tokenizer, loaded.spec), associations)
        pipeline = UnstarPipeline(engine, loaded.tokenizer, list(associations), backends, _judge(cfg.judge, backends),
                                  settings_from(cfg), retain=retain, progress=cfg.progress)  # fmt: skip
        pipeline.seed_pool()
        pipeline.probe()
        samples = pipeline.forget_samples(0) + pipeline.retain_samples(0)
        path = write_antisamples(run_dir / "antisamples.jsonl", samples)
        if out is not None:
            write_antisamples(out, samples)
        summary = {
            "antisamples": len(samples), "pool": len(pipeline.result.pool),
            "already_unlearned": pipeline.unlearned_counts(), "backend_shares": backend_shares(samples),
        }  # fmt: skip
        write_json_atomic(run_dir / "summary.json", summary)
    return path, summary


def heldout_quantization(model, tokenizer, associations, judge, bits: list[int]) -> dict[str, float]:
    """The quantization attack on associations: held-out forget accuracy of round-to-nearest quantized copies."""
    heldout = [QA(q, a.answer) for a in associations for q in a.heldout]
    out = quantization_attack(model, lambda m: answer_accuracy(m, tokenizer, heldout, judge)[0], bits)
    for name, accuracy in out.items():
        log.info("quantization attack: %s held-out forget accuracy %.3f", name, accuracy)
    return out


def _metrics(cfg, before, after, result, relearn, model_path, unlearning_seconds, seconds,
             other: str | None = None) -> dict[str, Any]:  # fmt: skip
    sets = {}
    for name in SETS:
        b, a = before[name]["accuracy"], after[name]["accuracy"]
        sets[name] = {"before": b, "after": a, "retained": a / b if b else None, "n": before[name]["n"],
                      "per_association": {"before": before[name]["per_association"],
                                          "after": after[name]["per_association"]}}  # fmt: skip
    return {
        "method": other or "unstar", "model": cfg.model.model, "generator": None if other else cfg.generator,
        "ablations": None if other else {"rationale": cfg.rationale, "escalation": cfg.escalation,
                                         "retain_step": cfg.retain_step},
        "sets": sets, "steps": result.steps, "rounds": result.rounds,
        "antisamples": {"forget": sum(s.kind == "forget" for s in result.antisamples),
                        "retain": sum(s.kind == "retain" for s in result.antisamples)},
        "backend_shares": backend_shares(result.antisamples), "relearning": relearn,
        "seconds_unlearning": unlearning_seconds, "seconds": seconds,
        "model_path": str(model_path) if model_path else None,
    }  # fmt: skip


def plot_unstar_tradeoff(path: Path, metrics: dict[str, Any]) -> Path | None:
    """Accuracy of the four sets after every round against optimizer steps (before unlearning at step 0);
    None when the rounds were not traced (training from an anti-sample file)."""
    traced = [r for r in metrics["rounds"] if "accuracy" in r]
    if not traced:
        return None
    steps, done = [0], 0
    for r in metrics["rounds"]:
        done += r.get("steps", 0)
        if "accuracy" in r:
            steps.append(done)
    series = {name: [metrics["sets"][name]["before"]] + [r["accuracy"][name] for r in traced] for name in SETS}
    labels = {"forget": "forget (held-out paraphrases)", "subject": "other facts about the subject",
              "object": "other facts about the object", "unrelated": "unrelated facts"}  # fmt: skip
    return plot_tradeoff(path, steps, {labels[k]: v for k, v in series.items()}, "UnSTAR: accuracy after each round",
                         "accuracy", forget=labels["forget"])  # fmt: skip


def unstar_summary(metrics: dict[str, Any]) -> str:
    rows = [[name, f"{s['before']:.3f}", f"{s['after']:.3f}", "-" if s["retained"] is None else f"{s['retained']:.2f}",
             s["n"]] for name, s in metrics["sets"].items()]  # fmt: skip
    share_rows = [[part, name, v["count"], f"{v['share']:.0%}"] for part, by in metrics["backend_shares"].items()
                  for name, v in by.items()]  # fmt: skip
    relearn = metrics["relearning"]
    unstar = metrics["generator"] is not None  # else another method trained on the associations' questions
    trained_on = (f"{metrics['antisamples']['forget']} anti-samples + {metrics['antisamples']['retain']} retain "
                  "samples" if unstar else "the associations' questions with the retain facts")  # fmt: skip
    lines = [
        f"# {'UnSTAR' if unstar else metrics['method']} on {metrics['model']}", "",
        f"{metrics['steps']} optimizer steps in {len(metrics['rounds'])} rounds, trained on {trained_on}; "
        f"unlearning {metrics['seconds_unlearning']:.0f} s, whole run {metrics['seconds']:.0f} s.", "",
        "## Accuracy (greedy replies judged against the true answer)", "",
        markdown_table(["set", "before", "after", "after / before", "questions"], rows), "",
        "forget: held-out paraphrases of the cut associations (never trained on); subject / object: other facts "
        "about the subject / the object; unrelated: facts about neither.", "",
    ]  # fmt: skip
    if unstar:
        lines += ["## Who wrote the anti-samples", "",
                  markdown_table(["part", "backend", "count", "share"], share_rows) if share_rows else "(from a file)",
                  ""]  # fmt: skip
    traced = [r for r in metrics["rounds"] if "accuracy" in r]
    if traced:
        round_rows = [[r["round"], "retain only" if r.get("consolidation") else "anti-samples + retain", r["steps"],
                       *(f"{r['accuracy'][k]:.3f}" for k in SETS), f"{r['elapsed']:.0f}"] for r in traced]  # fmt: skip
        lines += ["## After each round", "",
                  markdown_table(["round", "trained on", "steps", *SETS, "elapsed s"], round_rows), "",
                  "![forget / retain trade-off](tradeoff.png)", ""]  # fmt: skip
    if metrics.get("probes"):
        lines += ["## Beyond the greedy answer (held-out paraphrases)", "",
                  markdown_table(["probe", "before", "after", ""], probe_rows(metrics["probes"])), "",
                  "A removed association falls to chance in multiple choice and leaks under sampling no more than a "
                  "fact the model never knew; a hidden one keeps its likelihood.", ""]  # fmt: skip
    if metrics.get("quantization_attack"):
        q = metrics["quantization_attack"]
        lines += ["## Quantization attack", "",
                  "Held-out forget accuracy of the unlearned model with its linear weights rounded to fewer bits: "
                  + ", ".join(f"{b} {v:.3f}" for b, v in q.items())
                  + f" (unquantized {metrics['sets']['forget']['after']:.3f}; {QUANTIZATION_NOTE}).", ""]  # fmt: skip
    if relearn and "skipped" in relearn:
        lines += ["## Relearning check", "", relearn["skipped"], ""]
    elif relearn:
        lines += ["## Relearning check", "",
                  f"{relearn['steps']} steps on {relearn['trained_on']} held-out paraphrases with the true answer: "
                  f"accuracy on the other {relearn['measured_on']} went from {relearn['before']:.3f} to "
                  f"{relearn['after']:.3f}" + _recovered(relearn), ""]  # fmt: skip
    return "\n".join(lines)


def _recovered(relearn: dict[str, Any]) -> str:
    if relearn.get("recovery") is None:
        return "."
    return f" ({relearn['recovery']:.0%} of what unlearning took from them came back)."
