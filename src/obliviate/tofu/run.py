"""``obliviate tofu``: one QA unlearning method on TOFU-mini, judged the field's way, in a run directory.

1. Fine-tune the model on the first N TOFU authors plus the forget split's authors (the full model) and on the
   N authors alone (the retain-only model); both are cached, with their TOFU evaluations, under ``models_dir``
   and reused by later runs with the same recipe.
2. Unlearn the forget split from a copy of the full model with the chosen method; after every epoch record the
   forget/retain trade-off (answer probabilities, forget quality) from likelihoods alone.
3. Evaluate the unlearned model (TOFU metrics, forget quality against the retain-only model, model utility),
   run the attacks (relearning, paraphrase, quantization, membership) and write metrics.json, summary.md,
   plots and report.html."""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.membership import membership_attack, membership_attacks
from obliviate.attacks.paraphrase import paraphrase_attack
from obliviate.attacks.quantization import quantization_attack
from obliviate.attacks.relearning import relearning_on_answers
from obliviate.config import AntiSampleTrainingConfig, TofuConfig
from obliviate.errors import ConfigError, DataError
from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.methods import METHODS
from obliviate.methods.objective import ObjectiveMethod
from obliviate.methods.spec import MethodConfig
from obliviate.metrics.answers import answer_probability_of
from obliviate.models import load_model
from obliviate.models.loading import LoadedModel, save_model, save_trained
from obliviate.tofu.data import TofuItem, load_split
from obliviate.tofu.evaluate import evaluate_tofu, forget_quality_against, scored_truth_ratios
from obliviate.tofu.report import tofu_summary, write_tofu_plots
from obliviate.tofu.testbed import TofuMini, tofu_mini
from obliviate.tofu.unlearn import unlearn_qa
from obliviate.training.engine import Engine
from obliviate.training.sft import sft

log = logging.getLogger("obliviate")


def build_qa_method(name: str, rmu_layer: int | None = None, config: MethodConfig | None = None) -> ObjectiveMethod:
    """The objective method registered as ``name``, from ``config`` when given (the run's method settings), else
    from its defaults ('unstar' trains on TOFU's anti-samples); ``rmu_layer`` sets RMU's layer when not None."""
    spec = METHODS.get(name)
    if spec.objective is None:
        raise ConfigError(f"method {name!r} has no question-answer objective (it is step-wise only)")
    cfg = config if config is not None else spec.make_config()
    if name == "rmu" and rmu_layer is not None:
        cfg = cfg.model_copy(update={"layer": rmu_layer})
    return spec.objective(cfg)


def tofu_antisamples(items: list[TofuItem]) -> list[list[tuple[str, str]]]:
    """UnSTAR's anti-samples from TOFU's own fields (its dataset backend): per forget item, the question and its
    paraphrase, each paired in turn with the perturbed answers - whole sentences that state a wrong fact about
    the author - so that every epoch trains a different (question, wrong answer) pair."""
    out = []
    for x in items:
        questions = [x.question] + ([x.paraphrased_question] if x.paraphrased_question else [])
        wrong = list(x.perturbed_answers)
        if not wrong:
            raise DataError(f"TOFU item without perturbed answers: {x.question!r}")
        count = max(len(wrong), len(questions))
        out.append([(questions[k % len(questions)], wrong[k % len(wrong)]) for k in range(count)])
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[-40:] or "model"


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=float))


@dataclass
class TofuModels:
    full: LoadedModel
    retain: LoadedModel
    full_eval: dict[str, Any]
    retain_eval: dict[str, Any]
    folder: Path
    given: frozenset[str] = frozenset()  # 'full' / 'retain' given by the user (obliviate evaluate): never cached

    def cached(self, model: str, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A result about one of the two fine-tuned models, kept beside it for later runs (computed afresh for a
        model the user gave instead)."""
        if model in self.given:
            return _jsonable(compute())
        return _cached(self.folder / model / name, compute)


def finetune_cached(cfg: TofuConfig, folder: Path, pairs: list[tuple[str, str]], name: str) -> LoadedModel:
    """The model fine-tuned on ``pairs`` (TOFU's recipe: SFT on the answers), from ``folder/name`` when it is
    there, else trained from ``cfg.model`` and saved there (safetensors) with a finetune.json of facts."""
    path = folder / name
    device, dtype = cfg.model.device, cfg.model.dtype
    if (path / "finetune.json").is_file():
        log.info("reusing the fine-tuned %s model in %s", name, path)
        return load_model(str(path), device=device, dtype=dtype)
    loaded = load_model(cfg.model.model, device=device, dtype=dtype, trust_remote_code=cfg.model.trust_remote_code)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id,
                    AntiSampleTrainingConfig(learning_rate=cfg.finetune_learning_rate, seed=cfg.seed))  # fmt: skip
    started = time.perf_counter()
    losses = sft(engine, loaded.tokenizer, pairs, passes=cfg.finetune_epochs, batch_size=8, seed=cfg.seed,
                 progress=cfg.progress, desc=f"fine-tune {name}")  # fmt: skip
    trained = LoadedModel(engine.unwrapped, loaded.tokenizer, loaded.spec)
    save_model(trained, path)
    facts = {"pairs": len(pairs), "steps": len(losses), "seconds": time.perf_counter() - started,
             "final_loss": float(np.mean(losses[-10:]))}  # fmt: skip
    write_json_atomic(path / "finetune.json", facts)  # written last: marks the folder complete
    log.info("fine-tuned %s: %d steps, final loss %.3f, %.0f s", name, facts["steps"], facts["final_loss"],
             facts["seconds"])  # fmt: skip
    return trained


def _cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` once per cached model: read back from ``path`` when there, else computed and saved."""
    if path.is_file():
        return json.loads(path.read_text())
    value = _jsonable(compute())
    write_json_atomic(path, value)
    return value


def testbed_models(cfg: TofuConfig, data: TofuMini, given: dict[str, LoadedModel] | None = None) -> TofuModels:
    """The full and retain-only models and their evaluations, trained or read from the cache; ``given``: models
    the user passed instead ('full': the before column, 'retain': the retain-only model), evaluated now."""
    given = given or {}
    recipe = (f"{_slug(cfg.model.model)}-{cfg.forget_split}-{cfg.retain_authors}authors-{cfg.finetune_epochs}ep-"
              f"lr{cfg.finetune_learning_rate:g}-seed{cfg.seed}")  # fmt: skip
    folder = Path(cfg.models_dir or Path(cfg.output_dir) / "tofu-models") / recipe
    full = given.get("full") or finetune_cached(cfg, folder, data.full_pairs, "full")
    retain = given.get("retain") or finetune_cached(cfg, folder, data.retain_pairs, "retain")
    models = TofuModels(full, retain, {}, {}, folder, frozenset(given))
    limits = f"eval-v2-{cfg.eval_limit}-{cfg.retain_eval_limit}-{cfg.truth_ratio_mean}.json"
    models.full_eval, models.retain_eval = (
        models.cached(name, limits, lambda m=m: evaluate_tofu(m.model, m.tokenizer, data.eval_sets,
                                                              truth_ratio_mean=cfg.truth_ratio_mean))
        for name, m in (("full", full), ("retain", retain)))  # fmt: skip
    return models


def _holdout(cfg: TofuConfig, data: TofuMini) -> list[TofuItem]:
    """Never-trained authors' QA (TOFU's holdout split matching the forget split's size): membership's
    non-members. Empty (with a warning) when the split is missing."""
    try:
        items = load_split(cfg.forget_split.replace("forget", "holdout"), cfg.tofu)
    except DataError as exc:
        log.warning("membership attack skipped: %s", exc)
        return []
    trained = {q for q, _ in data.full_pairs}
    return [x for x in items if x.question not in trained]


def _model_row(evaluation: dict[str, Any], retain_eval: dict[str, Any]) -> dict[str, Any]:
    return {
        "forget_quality": forget_quality_against(evaluation, retain_eval),
        "model_utility": evaluation["model_utility"],
        "forget_truth_ratio_score": evaluation["forget_truth_ratio"],
        "forget_truth_ratio_mean": float(
            np.mean(scored_truth_ratios(evaluation["forget"], evaluation["truth_ratio_mean"]))
        ),
        "forget_probability": evaluation["forget"]["probability"],
        "forget_rouge1_recall": evaluation["forget"]["rouge1_recall"],
        "forget_rouge_l_recall": evaluation["forget"]["rouge_l_recall"],
        "retain_probability": evaluation["retain"]["probability"],
        "retain_rouge1_recall": evaluation["retain"]["rouge1_recall"],
        "retain_rouge_l_recall": evaluation["retain"]["rouge_l_recall"],
    }


def _probe(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, data: TofuMini) -> dict[str, float]:
    """The trade-off point of a model, from one teacher-forced pass over the answers: forget and retain answer
    probability (the truth ratios would cost six passes per item)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        forget = answer_probability_of(model, tokenizer, [(x.question, x.answer) for x in data.eval_sets.forget])
        retain = answer_probability_of(model, tokenizer, [(x.question, x.answer) for x in data.eval_sets.retain])
    model.train(was_training)
    return {"forget_probability": forget, "retain_probability": retain}


def tofu_data(cfg: TofuConfig) -> TofuMini:
    """TOFU-mini's splits for ``cfg`` (read before any run directory is made: a missing folder fails early)."""
    return tofu_mini(cfg.tofu, retain_authors=cfg.retain_authors, forget_split=cfg.forget_split,
                     eval_limit=cfg.eval_limit, retain_eval_limit=cfg.retain_eval_limit)  # fmt: skip


def tofu_in(run_dir: Path, cfg: TofuConfig, data: TofuMini | None = None, evaluated: LoadedModel | None = None,
            given: dict[str, LoadedModel] | None = None,
            method: MethodConfig | None = None, *,
            membership_reference: LoadedModel | None = None) -> dict[str, Any]:  # fmt: skip
    """Run ``cfg.method`` on TOFU-mini inside ``run_dir`` (made by the runner); returns the metrics.
    ``evaluated``: evaluation only - no unlearning, this model is judged where the unlearned one would be;
    ``given``: the user's own 'full' (before) and 'retain' (retain-only) models instead of TOFU-mini's;
    ``method``: the run's method settings (None: ``cfg.method``'s defaults); ``membership_reference``: the
    reference model of the membership attack's reference score (``cfg.membership_reference`` loaded)."""
    data = data or tofu_data(cfg)
    holdout = _holdout(cfg, data)
    log.info("%s on TOFU-mini (%s, %d retain authors) from %s", cfg.method, cfg.forget_split, cfg.retain_authors,
             cfg.model.model)  # fmt: skip
    started = time.perf_counter()
    models = testbed_models(cfg, data, given)
    tok = models.full.tokenizer
    unlearning_started = time.perf_counter()
    if evaluated is None:
        unlearned, trace, probing = _unlearn(cfg, data, models, method)
    else:
        unlearned, trace, probing = LoadedModel(evaluated.model.eval(), evaluated.tokenizer, evaluated.spec), [], 0.0
    unlearning_seconds = time.perf_counter() - unlearning_started - probing
    evaluation = _jsonable(evaluate_tofu(unlearned.model, tok, data.eval_sets, truth_ratio_mean=cfg.truth_ratio_mean))
    log.info("evaluated the unlearned model; running the attacks")
    attacks = _attacks(cfg, models, unlearned, data, holdout, evaluation["forget"]["answer_nlls"],
                       membership_reference)  # fmt: skip
    model_path = save_trained(unlearned, run_dir) if cfg.save_model else None
    metrics = _metrics(cfg, data, models, evaluation, trace, attacks, unlearning_seconds,
                       time.perf_counter() - started, model_path)  # fmt: skip
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_json_atomic(run_dir / "answers.json", _answers(data, models.full_eval, evaluation))
    write_tofu_plots(run_dir, metrics, {"full": models.full_eval, "unlearned": evaluation,
                                        "retain-only": models.retain_eval})  # fmt: skip
    write_text_atomic(run_dir / "summary.md", tofu_summary(metrics))
    return metrics


def _unlearn(cfg: TofuConfig, data: TofuMini, models: TofuModels,
             method_config: MethodConfig | None = None) -> tuple[LoadedModel, list[dict[str, Any]], float]:  # fmt: skip
    """Unlearn the forget split from a copy of the full model: (unlearned model, per-epoch trace, seconds probing).
    ``method_config``: the run's method settings (None: ``cfg.method`` with its defaults)."""
    method = build_qa_method(cfg.method, cfg.rmu_layer, method_config)
    tok = models.full.tokenizer
    forget_pairs = [(x.question, x.answer) for x in data.forget]
    engine = Engine(copy.deepcopy(models.full.model), tok.pad_token_id,
                    AntiSampleTrainingConfig(learning_rate=cfg.learning_rate, seed=cfg.seed))  # fmt: skip
    probing = [0.0]

    def trade_off(_epoch: int) -> dict[str, float]:
        t0 = time.perf_counter()
        point = _probe(engine.unwrapped, tok, data)
        probing[0] += time.perf_counter() - t0
        return point

    trace = [{"epoch": -1, "step": 0, **trade_off(-1)}] if cfg.trace else []
    trace += unlearn_qa(engine, tok, method, forget_pairs, data.retain_pairs, epochs=cfg.epochs,
                        batch_size=cfg.batch_size, seed=cfg.seed, progress=cfg.progress,
                        after_epoch=trade_off if cfg.trace else None,
                        alternatives=tofu_antisamples(data.forget) if cfg.method == "unstar" else None)  # fmt: skip
    return LoadedModel(engine.unwrapped.eval(), tok, models.full.spec), trace, probing[0]


def _attacks(cfg, models: TofuModels, unlearned: LoadedModel, data: TofuMini, holdout: list[TofuItem],
             forget_nlls: list[float], reference: LoadedModel | None = None) -> dict[str, Any]:  # fmt: skip
    """The attacks in ``cfg.attacks``; what concerns the full or retain-only model alone is cached beside it.
    ``forget_nlls``: the unlearned model's forget-answer NLLs from its evaluation (not computed again);
    ``reference``: the membership attack's reference model (its reference score is left out without one)."""
    tok = unlearned.tokenizer
    forget_pairs = [(x.question, x.answer) for x in data.forget]
    out: dict[str, Any] = {"relearning": {"skipped": "not asked for"}, "paraphrase": {}, "quantization": {},
                           "membership": {}}  # fmt: skip
    if "relearning" in cfg.attacks:
        half = forget_pairs[len(forget_pairs) // 2 :]
        p_full = models.cached("full", "relearning_half.json",
                               lambda: {"probability": answer_probability_of(models.full.model, tok,
                                                                                     half)})  # fmt: skip
        out["relearning"] = relearning_on_answers(unlearned.model, tok, forget_pairs,
                                                  before_unlearning=p_full["probability"], steps=cfg.relearn_steps,
                                                  learning_rate=cfg.learning_rate, seed=cfg.seed,
                                                  nlls=forget_nlls)  # fmt: skip
    if "paraphrase" in cfg.attacks:
        asked = [(x.paraphrased_question, x.answer) for x in data.forget if x.paraphrased_question]
        full = models.cached("full", "paraphrase.json", lambda: paraphrase_attack(models.full.model, tok, asked))
        out["paraphrase"] = {"full": full, "unlearned": paraphrase_attack(unlearned.model, tok, asked)}
    if "quantization" in cfg.attacks:
        def probability(model: torch.nn.Module) -> float:
            return answer_probability_of(model, tok, forget_pairs)

        out["quantization"] = quantization_attack(unlearned.model, probability, cfg.quantization_bits)
        # rounding alone costs a small model answer probability: the full model at the same widths is the baseline
        out["quantization_full"] = {}
        for b in cfg.quantization_bits:
            name = f"{b}bit"
            cached = models.cached(
                "full",
                f"quantization-{name}.json",
                lambda b=b: quantization_attack(models.full.model, probability, [b]),
            )
            out["quantization_full"][name] = cached[name]
    if "membership" in cfg.attacks and holdout:
        nonmembers = [(x.question, x.answer) for x in holdout]

        def loss_attack(model: torch.nn.Module) -> dict[str, Any]:
            return membership_attack(model, tok, forget_pairs, nonmembers)

        scores = membership_attacks(unlearned.model, tok, forget_pairs, nonmembers, member_nlls=forget_nlls,
                                    gradnorm=cfg.membership_gradnorm, seed=cfg.seed,
                                    reference_model=reference.model if reference else None)  # fmt: skip
        out.update({f"membership_{name}": {"unlearned": s} for name, s in scores.items() if name != "loss"})
        out["membership"] = {
            "full": models.cached("full", "membership.json", lambda: loss_attack(models.full.model)),
            "unlearned": scores["loss"],
            "retain-only": models.cached("retain", "membership.json", lambda: loss_attack(models.retain.model)),
        }
    return out


def _metrics(cfg, data, models, evaluation, trace, attacks, unlearning_seconds, seconds, model_path) -> dict[str, Any]:
    rows = {"full": _model_row(models.full_eval, models.retain_eval),
            "retain-only": _model_row(models.retain_eval, models.retain_eval),
            "unlearned": _model_row(evaluation, models.retain_eval)}  # fmt: skip
    sets = {}
    for split, label in (("retain", "retain authors"), ("real_authors", "real authors"),
                         ("world_facts", "world facts")):  # fmt: skip
        b, a = models.full_eval[split]["probability"], evaluation[split]["probability"]
        sets[f"{label} (answer probability)"] = {"before": b, "after": a, "retained": a / b if b else None}
    return _jsonable({
        "method": cfg.method, "model": cfg.model.model, "forget_split": cfg.forget_split,
        "retain_authors": cfg.retain_authors, "forget_items": len(data.forget),
        "truth_ratio_mean": cfg.truth_ratio_mean,
        "models_dir": str(models.folder), "models": rows, "tofu": {"unlearned": evaluation},
        "trace": [r for r in trace if "forget_probability" in r],
        "steps": sum("loss" in r for r in trace), "losses": [r["loss"] for r in trace if "loss" in r],
        "attacks": attacks, "sets": sets,
        "utility": {"before": {"model_utility": models.full_eval["model_utility"]},
                    "after": {"model_utility": evaluation["model_utility"]}},
        "seconds_unlearning": unlearning_seconds, "seconds": seconds,
        "model_path": str(model_path) if model_path else None,
    })  # fmt: skip


def _answers(data: TofuMini, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Greedy replies before/after per split, in the layout the gibberish guardrail reads."""
    out: dict[str, Any] = {}
    for when, evaluation in (("before", before), ("after", after)):
        out[when] = {}
        for split in ("forget", "retain"):
            items = zip(getattr(data.eval_sets, split), evaluation[split]["replies"], strict=True)
            out[when][split] = {"items": [{"question": x.question, "answer": x.answer, "reply": r} for x, r in items]}
    return out
