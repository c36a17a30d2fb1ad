"""The ``tofu`` benchmark: TOFU-mini - fine-tune on a few TOFU authors plus the forget split's (cached, with the
retain-only model), unlearn the forget split, judge it the field's way (forget quality, model utility, truth
ratios) with the relearning, paraphrase, quantization and membership attacks."""

from __future__ import annotations

from typing import Any

from obliviate.benchmarks.derive import benchmark_config, flat_config
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.benchmarks.summary import membership_entries, number, summary
from obliviate.config import TofuConfig
from obliviate.methods.spec import MethodSpec

TofuBenchmarkConfig = benchmark_config("tofu", TofuConfig, drop=frozenset({"rmu_layer"}))


def support(method: MethodSpec) -> str | None:
    if method.objective is None:
        return "it is step-wise on per-sequence memorization scores; TOFU is question-answer data"
    return None


def tofu_config(ctx: RunContext) -> TofuConfig:
    return flat_config(TofuConfig, ctx, method=ctx.method.name)


def prepare(ctx: RunContext) -> None:
    from obliviate.tofu.run import tofu_data

    if "model" in ctx.inputs:
        from obliviate.errors import ConfigError

        raise ConfigError("the tofu benchmark fine-tunes its own models from a model spec; pass model= as a config")
    ctx.inputs["tofu"] = tofu_data(tofu_config(ctx))


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.tofu.run import tofu_in

    cfg, given = tofu_config(ctx), {}
    if ctx.evaluated is not None:  # the user's before / retain-only models replace TOFU-mini's own
        if "before" in ctx.inputs:
            given["full"] = ctx.inputs["before"]
        if ctx.evaluate.retain_only:
            given["retain"] = ctx.load_other_model(ctx.evaluate.retain_only)
    reference = ctx.load_other_model(cfg.membership_reference) if cfg.membership_reference else None
    method = ctx.method if ctx.evaluated is None else None  # every method setting reaches the unlearning
    return tofu_in(ctx.run_dir, cfg, ctx.inputs.get("tofu"), ctx.evaluated, given, method,
                   membership_reference=reference)  # fmt: skip


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    full, after = m["models"]["full"], m["models"]["unlearned"]
    keys = ("forget_quality", "model_utility", "forget_truth_ratio_mean", "forget_probability", "forget_rouge1_recall",
            "forget_rouge_l_recall", "retain_probability", "retain_rouge1_recall", "retain_rouge_l_recall")  # fmt: skip
    sets = {"tofu": {"n": m.get("forget_items"), "before": {k: number(full.get(k)) for k in keys},
                     "after": {k: number(after.get(k)) for k in keys}}}  # fmt: skip
    evaluation = m["tofu"]["unlearned"]["forget"]
    per_sample = {"forget": {f"forget-{i}": {"answer_nll": {"before": None, "after": number(nll)},
                                             "truth_ratio": {"before": None, "after": number(tr)}}
                             for i, (nll, tr) in enumerate(zip(evaluation["answer_nlls"],
                                                               evaluation["truth_ratios"]))}}  # fmt: skip
    attacks: dict[str, Any] = {}
    a = m["attacks"]
    if "recovery" in a.get("relearning", {}):
        attacks["relearning"] = {"recovery": a["relearning"]["recovery"], "before": a["relearning"]["before"],
                                 "after": a["relearning"]["after"]}  # fmt: skip
    if a.get("quantization"):
        attacks["quantization"] = {f"probability_{k}": v for k, v in a["quantization"].items()}
    if a.get("membership"):
        from obliviate.tofu.report import membership_privleak

        scores = {name: value["unlearned"] for name, value in a.items()
                  if name.startswith("membership") and isinstance(value, dict) and "unlearned" in value}
        extra = {}
        if a["membership"].get("retain-only"):  # MUSE's PrivLeak against the retain-only model, same sets
            extra["privleak"] = membership_privleak(a["membership"])
        attacks.update(membership_entries(scores, **extra))
    if a.get("paraphrase", {}).get("unlearned", {}).get("probability") is not None:
        p = a["paraphrase"]["unlearned"]
        attacks["paraphrase"] = {"probability": p["probability"], "rouge_l_recall": p["rouge_l_recall"]}
    return summary(sets=sets, per_sample=per_sample, attacks=attacks, utility=m.get("utility"), steps=m.get("steps"),
                   unlearning_seconds=m.get("seconds_unlearning"))  # fmt: skip


register(BenchmarkSpec(
    "tofu", "TOFU-mini: forget quality, model utility, truth ratios, per-epoch trade-off, attacks",
    TofuBenchmarkConfig, default_forget="", support=support, run=run, prepare=prepare,
    summarize=summarize,
))  # fmt: skip
