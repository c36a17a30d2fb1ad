"""The ``memorization`` benchmark: a set of sequences to forget and never-seen reference text. Audit before (MA,
EL_n, ES, MIA scores per sequence; c(D_f); MIAU; utility), unlearn in the step-wise loop (re-score every sequence
after every step, per-sequence selection and stop rule), audit again.

Under several processes (torchrun / accelerate launch) every rank trains and scores its shard; the main process
alone runs the before/after audits and utility, and writes the run directory."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from obliviate.benchmarks.derive import benchmark_config, flat_config
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.benchmarks.summary import number, paired, summary
from obliviate.config import UnlearnConfig
from obliviate.errors import ConfigError
from obliviate.methods.spec import MethodSpec

log = logging.getLogger("obliviate")


# the flat UnlearnConfig's fields, less the run's and the step-wise methods' own settings
MemorizationConfig = benchmark_config(
    "memorization", UnlearnConfig, drop=frozenset({"gamma", "ta_coefficient", "first_threshold", "reset_optimizer"})
)


def support(method: MethodSpec) -> str | None:
    if method.stepwise is not None:
        return None
    if method.objective is None or method.antisample:
        return "it needs question-answer associations to write anti-samples for; sequences have none"
    if "questions" in method.needs:
        return "it answers questions with 'I don't know'; sequences have no question (use the qa benchmark)"
    return None


def unlearn_config(ctx: RunContext) -> UnlearnConfig:
    """The flat config the step-wise run and its report read."""
    b = ctx.benchmark
    training = b.training.model_copy(update={"seed": ctx.seed})
    scoring = b.scoring.model_copy(update={"seed": ctx.seed})
    return flat_config(UnlearnConfig, ctx, method=ctx.method.name, training=training, scoring=scoring,
                       forget=ctx.forget or "builtin:famous")  # fmt: skip


def build_stepwise(ctx: RunContext, cfg: UnlearnConfig, thresholds, retain_windows):
    """The method for the step-wise loop: its own step-wise class, or its objective on sequences."""
    from obliviate.methods.sequences import ObjectiveOnSequences

    spec, method_cfg = ctx.method_spec, ctx.method
    if "gamma" in type(method_cfg).model_fields and method_cfg.gamma is None and cfg.gamma_value() is not None:
        method_cfg = method_cfg.model_copy(update={"gamma": cfg.gamma_value()})  # the paper preset / mean rule
    if spec.stepwise is not None:
        if "retain_weight" in type(method_cfg).model_fields:  # a step-wise method with a retain term (match)
            return spec.stepwise(method_cfg, cfg.stop_rule(), thresholds, retain_windows=retain_windows)
        return spec.stepwise(method_cfg, cfg.stop_rule(), thresholds)
    return ObjectiveOnSequences(spec.objective(method_cfg), cfg.stop_rule(), thresholds, retain_windows)


def prepare(ctx: RunContext) -> None:
    from obliviate.benchmarks.memorization_run import load_sets

    cfg = unlearn_config(ctx)
    load_sets(ctx, cfg)
    if cfg.resume:
        from obliviate.unlearning.loop import read_checkpoint_state

        read_checkpoint_state(Path(cfg.resume), cfg.method, run_fingerprint(ctx, cfg))
        if ctx.method_spec.stepwise is None and ctx.method_spec.objective(ctx.method).needs_reference:
            raise ConfigError(f"{cfg.method} compares with the model before unlearning, which a checkpoint does not "
                              "keep: start the run again instead of resuming it")  # fmt: skip


def run_fingerprint(ctx: RunContext, cfg: UnlearnConfig) -> dict[str, str]:
    """What a checkpoint records of its run, and a resumed run must match: the model, each data set, the method's
    settings and the training / scoring / stop settings (checkpointing and the step cap may change)."""

    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def texts(name: str) -> str:
        items = ctx.inputs.get(name)
        return digest([[s.id, s.text] for s in items]) if items is not None else "none"

    model = "<in memory>" if "model" in ctx.inputs else cfg.model.model
    training = cfg.training.model_dump(exclude={"checkpoint_every", "keep_checkpoints", "max_steps"})
    return {
        "model": f"{model} ({cfg.model.dtype})", "forget set": texts("forget"), "reference set": texts("reference"),
        "retain set": texts("retain"), "method settings": digest(ctx.method.model_dump()),
        "training settings": digest(training),
        "scoring and stop settings": digest([cfg.scoring.model_dump(), cfg.stop_rule(), cfg.tau, cfg.gamma,
                                             cfg.preset]),
    }  # fmt: skip


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.benchmarks.memorization_run import run_stepwise

    return run_stepwise(ctx, unlearn_config(ctx))


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    def means(audit: dict[str, Any]) -> dict[str, float | None]:
        return {k: number(v["mean"]) for k, v in audit["aggregate"].items()}

    after_band = m["outliers"]["after_vs_start_band"]
    sets = {
        "forget": {"n": len(m["before"]["target"]["per_sample"]), "before": means(m["before"]["target"]),
                   "after": {**means(m["after"]["target"]), "outliers_high": number(after_band["high"]),
                             "outliers_low": number(after_band["low"])}},
        "reference": {"n": len(m["before"]["reference"]["per_sample"]), "before": means(m["before"]["reference"]),
                      "after": means(m["after"]["reference"])},
    }  # fmt: skip
    sets["forget"]["before"].update(outliers_high=number(m["outliers"]["before"]["calibrated"]["high"]),
                                    outliers_low=number(m["outliers"]["before"]["calibrated"]["low"]))  # fmt: skip
    per_sample = {"forget": paired(m["before"]["target"]["per_sample"], m["after"]["target"]["per_sample"])}
    best, best_before = m["after"]["miau_best"], m["before"]["miau_best"]
    membership = {"auc": best["auc"], "auc_before": best_before["auc"], "auc_either": best["auc_either"],
                  "auc_either_before": best_before["auc_either"], "auc_min": best.get("auc_min"),
                  "auc_max": best.get("auc_max")}  # fmt: skip
    gold = m.get("gold_standard")
    if gold:
        membership["privleak"] = gold["privleak_best"]["value"]
        membership["ks_p_ma"] = gold["forget_quality"]["ma"]["p_value"]
    return summary(sets=sets, per_sample=per_sample, attacks={"membership": membership}, utility=m.get("utility"),
                   steps=m.get("steps"), unlearning_seconds=m.get("seconds_unlearning"))  # fmt: skip


STOP_SETTINGS = frozenset({"stop", "tau", "preset"})


def applies(key: str, method: MethodSpec) -> bool:
    """A method with its own stop rule (match) reads none of the stop rule settings."""
    return not (method.own_stop and key in STOP_SETTINGS)


register(BenchmarkSpec(
    "memorization", "sequences to forget + never-seen reference: MA/EL/ES per sequence, c(D_f), MIAU, utility",
    MemorizationConfig, default_forget="builtin:famous", support=support, run=run, prepare=prepare,
    summarize=summarize, applies=applies,
))  # fmt: skip
