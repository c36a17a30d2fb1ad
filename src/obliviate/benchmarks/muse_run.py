"""A muse-news run: the testbed (texts + cached models), MUSE's metrics on the starting model, the memorization
benchmark's step-wise run on the chosen forget block (audit before, unlearning, audit after, PrivLeak / KS
against the retain-only model), MUSE's metrics after and on the retain-only model, the attacks, and a MUSE
section in summary.md."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from obliviate.benchmarks.spec import RunContext
from obliviate.data import SequenceSet
from obliviate.data.sequences import Sequence
from obliviate.io import write_text_atomic
from obliviate.metrics.audit import SetScores, score_set
from obliviate.models import LoadedModel, load_model
from obliviate.muse.audits import cached_audit, keep_set_scores
from obliviate.muse.data import load_muse_news
from obliviate.muse.models import Recipe, muse_models
from obliviate.muse.scores import MUSE_SETS, MusePrepared, cached_scores, muse_scores
from obliviate.muse.testbed import Chunk, muse_mini

log = logging.getLogger("obliviate")


def prepare_muse(ctx: RunContext) -> MusePrepared:
    """The testbed's texts and its two models (fine-tuned now unless cached), before the run directory exists."""
    import os

    from obliviate.errors import ConfigError

    b, m = ctx.benchmark, ctx.model
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the muse-news benchmark runs in one process (it fine-tunes and caches its own models); "
                          "run it without torchrun / accelerate launch")  # fmt: skip
    if b.request + b.scale > b.blocks:
        raise ConfigError(f"benchmark.request {b.request} + scale {b.scale} exceeds the {b.blocks} blocks the target "
                          "holds; raise benchmark.blocks")  # fmt: skip
    tokenizer = load_model(m.model, device="cpu", trust_remote_code=m.trust_remote_code).tokenizer
    mini = muse_mini(load_muse_news(b.data), tokenizer, forget_chunks=b.forget_chunks, blocks=b.blocks,
                     retain_chunks=b.retain_chunks, holdout_chunks=b.holdout_chunks, chunk_tokens=b.chunk_tokens,
                     seed=ctx.seed)  # fmt: skip
    recipe = Recipe(m.model, m.device, m.dtype, b.finetune_epochs, b.finetune_learning_rate, 8, ctx.seed,
                    b.chunk_tokens + 8)  # fmt: skip
    models_dir = Path(b.models_dir) if b.models_dir else Path(ctx.output_dir) / "muse-models"
    target, retain_only = muse_models(recipe, [c.text for c in mini.forget_pool], [c.text for c in mini.retain],
                                      models_dir, progress=ctx.progress)  # fmt: skip
    return MusePrepared(mini, mini.forget(b.scale, b.request), b.chunk_tokens, target, retain_only)


def _sequences(name: str, chunks: list[Chunk]) -> SequenceSet:
    return SequenceSet(name, tuple(Sequence(c.id, c.text) for c in chunks))


def run_muse(ctx: RunContext) -> dict[str, Any]:
    from obliviate.benchmarks.memorization import MemorizationConfig, unlearn_config
    from obliviate.benchmarks.memorization_run import load_sets, run_stepwise

    b, prepared, evaluated = ctx.benchmark, ctx.inputs["muse"], ctx.evaluated
    given = evaluated is not None and "before" in ctx.inputs  # evaluate --before: the user's model, not the target
    start = (ctx.evaluate.before or "<in memory>") if given else b.start or str(prepared.target)
    loaded = ctx.inputs["before"] if given else load_model(start, device=ctx.model.device, dtype=ctx.model.dtype)
    retain_only = (ctx.evaluate.retain_only if evaluated is not None else None) or str(prepared.retain_only)
    settings = b.model_dump(exclude={"name", *MUSE_ONLY})
    loop = MemorizationConfig.model_validate({**settings, "name": "memorization", "reference": "muse-news:holdout",
                                              "retain_only_model": retain_only})  # fmt: skip
    label = f"muse-news:block{b.request}" + (f"x{b.scale}" if b.scale > 1 else "")
    inputs = {"model": loaded, "forget": _sequences("forget", prepared.forget),
              "reference": _sequences("holdout", prepared.mini.holdout),
              "retain": _sequences("retain", prepared.mini.retain)}  # fmt: skip
    if evaluated is not None:  # evaluation only: the before model is the target unless --before says otherwise
        inputs.update(evaluated=evaluated, before=loaded)
    sub = RunContext(model=ctx.model.model_copy(update={"model": start}), forget=label, limit=None, method=ctx.method,
                     benchmark=loop, seed=ctx.seed, save_model=ctx.save_model, progress=ctx.progress,
                     run_dir=ctx.run_dir, output_dir=ctx.output_dir, inputs=inputs, evaluate=ctx.evaluate)  # fmt: skip
    cfg = unlearn_config(sub)
    load_sets(sub, cfg)
    # audits and scores are kept beside the benchmark's own models only, never written into a user's model folder
    kept_retain_only = retain_only == str(prepared.retain_only)
    _kept_audits(sub, cfg, loaded, None if given else Path(start), prepared.retain_only if kept_retain_only else None)
    settings_of = (b.knowmem_tokens, b.icl_examples)
    with torch.no_grad():  # the target's and the retain-only model's scores are cached beside them
        before = (muse_scores(loaded, prepared, *settings_of) if b.start or given else
                  cached_scores(prepared.target, prepared, *settings_of, lambda: loaded))  # fmt: skip
    metrics = run_stepwise(sub, cfg)
    if not metrics:  # not the main process
        return {}
    unlearned = sub.inputs["unlearned_model"]
    if metrics.get("unlearned_model"):  # the next removal request starts from it: keep its holdout scores there
        after = sub.inputs["audit_after"]
        keep_set_scores(Path(metrics["unlearned_model"]), sub.inputs["reference"], *_key(sub, cfg), after.reference)
    with torch.no_grad():
        after = muse_scores(unlearned, prepared, *settings_of)
        load_gold = lambda: load_model(retain_only, device=ctx.model.device, dtype=ctx.model.dtype)  # noqa: E731
        gold = (cached_scores(prepared.retain_only, prepared, *settings_of, load_gold) if kept_retain_only else
                muse_scores(load_gold(), prepared, *settings_of))  # fmt: skip
    from obliviate.muse.attacks import muse_attacks, privleak_min_k

    metrics["muse"] = {
        "target": str(prepared.target), "retain_only_model": retain_only, "start": start,
        "forget_chunks": [c.id for c in prepared.forget], "scale": b.scale, "request": b.request,
        "before": before, "after": after, "retain_only": gold, "privleak": privleak_min_k(metrics),
        "privleak_before": privleak_min_k(metrics, "before"),
        "attacks": muse_attacks(unlearned, prepared, before, after, b, cfg.training.learning_rate, ctx.seed),
    }  # fmt: skip
    ctx.inputs["unlearned_model"] = unlearned
    if ctx.run_dir is not None:
        summary = ctx.run_dir / "summary.md"
        text = summary.read_text(encoding="utf-8") if summary.is_file() else ""
        write_text_atomic(summary, text + "\n" + muse_section(metrics["muse"]))
    return metrics


def _key(ctx: RunContext, cfg) -> tuple[Any, str]:
    return cfg.scoring, f"{ctx.model.device}/{ctx.model.dtype}"


def _kept_audits(ctx: RunContext, cfg, loaded, start: Path | None, retain_only: Path | None) -> None:
    """The audits of the starting model and of the retain-only model, read back from beside them where an
    earlier run kept them (scored now and kept otherwise); see muse/audits.py. None: a model the user gave
    (``obliviate evaluate``), scored by the run itself and kept nowhere."""
    forget, holdout = ctx.inputs["forget"], ctx.inputs["reference"]
    gold: list[LoadedModel] = []

    def scorer(model: Callable[[], LoadedModel], label: str) -> Callable[[SequenceSet], SetScores]:
        return lambda sequences: score_set(model(), sequences, cfg.scoring, progress=ctx.progress,
                                           desc=f"{label} {sequences.name}")  # fmt: skip

    def retain_only_model() -> LoadedModel:
        if not gold:
            gold.append(load_model(str(retain_only), device=ctx.model.device, dtype=ctx.model.dtype))
        return gold[0]

    if start is not None:
        ctx.inputs["audit_before"] = cached_audit(start, forget, holdout, *_key(ctx, cfg),
                                                  scorer(lambda: loaded, "start"))  # fmt: skip
    if retain_only is not None:
        ctx.inputs["audit_retain_only"] = cached_audit(retain_only, forget, holdout, *_key(ctx, cfg),
                                                       scorer(retain_only_model, "retain-only"))  # fmt: skip


MUSE_ONLY = frozenset({
    "data", "forget_chunks", "blocks", "scale", "request", "start", "retain_chunks", "holdout_chunks", "chunk_tokens",
    "finetune_epochs", "finetune_learning_rate", "models_dir", "knowmem_tokens", "icl_examples", "relearn_steps",
    "quantization_bits"})  # fmt: skip


def muse_section(muse: dict[str, Any]) -> str:
    """The MUSE table of summary.md: each metric on the model before, after, and on the retain-only model."""
    models = ("before", "after", "retain_only")
    rows = [f"| {name} | " + " | ".join(f"{muse[when][name]['mean']:.3f}" for when in models)
            + f" | {muse['after'][name]['n']} |" for name in MUSE_SETS]  # fmt: skip
    relearn = muse["attacks"].get("relearning") or {}
    leak = f"{muse['privleak']:+.3f}" if muse["privleak"] is not None else "undefined (retain-only MUSE AUC 0)"
    lines = ["## MUSE-News-mini", "", f"Forget block(s) starting at request {muse['request']}, scale {muse['scale']}: "
             f"{len(muse['forget_chunks'])} chunks.", "", "| metric (ROUGE-L F1) | before | after | retain-only | n |",
             "|---|---|---|---|---|", *rows, "",
             f"PrivLeak (Min-K%, MUSE's sign: < 0 still memorized, > 0 over-unlearned): {leak}."]  # fmt: skip
    if relearn.get("recovery") is not None:
        lines.append(f"Relearning: {relearn['steps']} steps on {relearn['trained_on']} forget chunks bring back "
                     f"{relearn['recovery']:.0%} of the VerbMem unlearning took from the others.")  # fmt: skip
    return "\n".join(lines) + "\n"
