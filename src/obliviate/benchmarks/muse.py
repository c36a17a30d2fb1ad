"""The ``muse-news`` benchmark: MUSE-News-mini (muse/testbed.py) - the embedded model fine-tuned on news chunks
(the target) and on the retain chunks alone (the retain-only model), cached per recipe; a method unlearns a
block of forget chunks in the memorization benchmark's step-wise loop (so the per-sequence audit - MA, c(D_f),
MIAU, PrivLeak and KS against the retain-only model - runs on the same run), and MUSE's own metrics judge it:
VerbMem, KnowMem on forget and retain questions, PrivLeak (Min-K%), with the relearning and quantization attacks.
Scalability: ``scale`` blocks at once; sustainability: ``request`` k unlearns block k starting from the model
that unlearned the earlier blocks (``start``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from obliviate.benchmarks.derive import benchmark_config
from obliviate.benchmarks.memorization import applies, support
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.config import TrainingConfig, TrainingScoringConfig, UnlearnConfig, UtilityConfig

# MUSE's own defaults of shared settings (a subclass, so that setting one field keeps the others' MUSE defaults)
MuseScoring = create_model("MuseScoringConfig", __base__=TrainingScoringConfig, min_k=(float, Field(
    0.4, gt=0, le=1, description="share of lowest tokens for Min-K% / Min-K%++ (MUSE: 40%)")))  # fmt: skip
MuseUtility = create_model("MuseUtilityConfig", __base__=UtilityConfig, fluency_prompts=(int, Field(
    0, ge=0, description="greedy continuations of never-seen text for fluency (0: off)")))  # fmt: skip
MuseTraining = create_model("MuseTrainingConfig", __base__=TrainingConfig, learning_rate=(float, Field(
    1e-4, gt=0, description="Adam learning rate (CPU-sized chunks: few steps)")))  # fmt: skip

# the memorization loop's settings, less what the testbed fixes (forget / reference / retain texts, the models)
_LOOP = benchmark_config("muse-news", UnlearnConfig, drop=frozenset({
    "gamma", "ta_coefficient", "first_threshold", "reset_optimizer", "reference", "retain", "retain_only_model",
    "resume", "scoring", "utility", "training"}))  # fmt: skip

MuseNewsConfig = create_model(
    "MuseNewsBenchmarkConfig", __base__=_LOOP,
    data=(str | None, Field(None, description="MUSE-News folder [$OBLIVIATE_MUSE_NEWS or ../shared/data/muse_news]")),
    forget_chunks=(int, Field(4, ge=1, description="forget chunks per block (one removal request)")),
    blocks=(int, Field(4, ge=1, le=8, description="forget blocks the target is trained on")),
    scale=(int, Field(1, ge=1, description="scalability: forget this many blocks at once")),
    request=(int, Field(0, ge=0, description="sustainability: forget block k (start from the model of request k-1)")),
    start=(str | None, Field(None, description="model directory to unlearn instead of the target (a request's model)")),
    retain_chunks=(int, Field(8, ge=1, description="retain chunks (seen by both models, kept)")),
    holdout_chunks=(int, Field(24, ge=2, description="holdout chunks (never seen: the reference)")),
    chunk_tokens=(int, Field(64, ge=16, description="tokens per chunk")),
    finetune_epochs=(int, Field(6, ge=1, description="epochs of the target / retain-only fine-tune")),
    finetune_learning_rate=(float, Field(2e-4, gt=0)),
    models_dir=(str | None, Field(None, description="cache of the fine-tuned models [OUTPUT_DIR/muse-models]")),
    knowmem_tokens=(int, Field(32, ge=1, description="KnowMem: new tokens per answer (MUSE: 32)")),
    icl_examples=(int, Field(10, ge=0, le=10, description="KnowMem: in-context examples (MUSE: all 10)")),
    relearn_steps=(int, Field(5, ge=0, description="relearning: steps on half the forget chunks (0: off)")),
    quantization_bits=(list[int], Field(default_factory=lambda: [8, 4], description="quantization attack")),
    scoring=(MuseScoring, Field(default_factory=MuseScoring, description="the per-sequence audit")),
    utility=(MuseUtility, Field(default_factory=MuseUtility, description="utility besides KnowMem retain")),
    training=(MuseTraining, Field(default_factory=MuseTraining, description="the unlearning loop")),
)  # fmt: skip


def prepare(ctx: RunContext) -> None:
    from obliviate.benchmarks.muse_run import prepare_muse
    from obliviate.errors import ConfigError

    if ctx.forget:
        raise ConfigError("the muse-news benchmark picks its own forget set (benchmark.scale / benchmark.request); "
                          "remove forget")  # fmt: skip
    if set(ctx.inputs) - {"muse"}:
        raise ConfigError("the muse-news benchmark fine-tunes its own models and texts; pass no in-memory inputs")
    ctx.inputs["muse"] = prepare_muse(ctx)


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.benchmarks.muse_run import run_muse

    return run_muse(ctx)


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    from obliviate.benchmarks.memorization import summarize as memorization_summary
    from obliviate.benchmarks.summary import number

    out = memorization_summary(m)
    muse = m["muse"]
    for name in ("verbmem", "knowmem_forget", "knowmem_retain"):  # ROUGE-L F1, the retain-only model beside
        mean = {when: number(muse[when][name]["mean"]) for when in ("before", "after", "retain_only")}
        out["sets"][name] = {"n": muse["after"][name]["n"], "before": {"rouge_l_f1": mean["before"]},
                             "after": {"rouge_l_f1": mean["after"], "retain_only_rouge_l_f1": mean["retain_only"]}}
    before, after = muse["before"]["verbmem"]["values"], muse["after"]["verbmem"]["values"]
    out["per_sample"]["verbmem"] = {cid: {"rouge_l_f1": {"before": number(b), "after": number(a)}}
                                    for cid, b, a in zip(muse["forget_chunks"], before, after)}  # fmt: skip
    membership = out["attacks"].setdefault("membership", {})
    membership["privleak_muse"] = number(muse["privleak"])  # MUSE's sign (< 0 still memorized), Min-K%
    for name in ("relearning", "quantization"):
        value = muse["attacks"].get(name) or {}
        if name == "relearning" and "recovery" in value:
            out["attacks"]["relearning"] = {k: number(value[k]) for k in ("recovery", "before", "after")}
        elif name == "quantization" and value:
            out["attacks"]["quantization"] = {f"verbmem_{k}": number(v) for k, v in value.items()}
    return out


register(BenchmarkSpec(
    "muse-news", "MUSE-News-mini: VerbMem, KnowMem forget/retain, PrivLeak + the per-sequence audit, attacks",
    MuseNewsConfig, default_forget="", support=support, run=run, prepare=prepare, summarize=summarize, applies=applies,
))  # fmt: skip
