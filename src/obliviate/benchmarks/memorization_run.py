"""The memorization benchmark's run: audit, step-wise unlearning on the engine, audit again, report."""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from obliviate.benchmarks.memorization import build_stepwise, run_fingerprint
from obliviate.benchmarks.memorization_report import write_unlearning_report
from obliviate.benchmarks.spec import RunContext
from obliviate.config import UnlearnConfig
from obliviate.data import SequenceSet
from obliviate.data.resolve import reference_for, resolve_sequences
from obliviate.errors import ConfigError
from obliviate.evaluation import evaluate_utility
from obliviate.methods.rules import Thresholds
from obliviate.metrics.audit import MemorizationAudit, against_retain_only, audit_memorization, check_reference
from obliviate.metrics.reference import ReferenceStats
from obliviate.metrics.tokens import encode_windows
from obliviate.models import LoadedModel, load_model
from obliviate.models.loading import resolve_device, save_trained
from obliviate.training.engine import Engine, leave_process_group
from obliviate.unlearning.loop import LoopResult, UnlearningLoop, scores_from_stats

log = logging.getLogger("obliviate")


def sequences_from(value: Any, name: str) -> SequenceSet:
    """An in-memory sequence set: a SequenceSet, or a list of texts (ids ``name-0``, ``name-1``, ...)."""
    if isinstance(value, SequenceSet):
        return value
    from obliviate.data.sequences import Sequence

    texts = list(value)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"in-memory {name} sequences must be a non-empty list of strings or a SequenceSet")
    return SequenceSet(name, tuple(Sequence(f"{name}-{i}", t) for i, t in enumerate(texts)))


def load_sets(ctx: RunContext, cfg: UnlearnConfig) -> None:
    """The forget, reference and retain sequences (files, built-in sets or in-memory lists) into ``ctx.inputs``."""
    inputs = ctx.inputs
    if "forget" in inputs:
        inputs["forget"] = sequences_from(inputs["forget"], "forget")
        if "reference" not in inputs and cfg.reference is None:
            raise ConfigError("in-memory forget sequences need never-seen reference sequences (reference=[...])")
    else:
        inputs["forget"] = resolve_sequences(cfg.forget, cfg.limit)
    if "reference" in inputs:
        inputs["reference"] = sequences_from(inputs["reference"], "reference")
    else:
        inputs["reference"] = resolve_sequences(reference_for(cfg.forget, cfg.reference), cfg.limit)
    if "retain" in inputs:
        inputs["retain"] = sequences_from(inputs["retain"], "retain")
    elif ctx.benchmark.retain:
        inputs["retain"] = resolve_sequences(ctx.benchmark.retain)
    check_reference(inputs["forget"], inputs["reference"])


def run_stepwise(ctx: RunContext, cfg: UnlearnConfig) -> dict[str, Any]:
    inputs = ctx.inputs
    forget, reference, retain = inputs["forget"], inputs["reference"], inputs.get("retain")
    on_cpu = resolve_device(cfg.model.device).type == "cpu"
    state = PartialState(cpu=on_cpu)  # a multi-process CPU group (gloo, under torchrun) needs cpu=True
    device = cfg.model.device
    if device == "auto" and state.distributed_type.name != "NO":
        device = str(state.device)
    evaluated = ctx.evaluated
    retain_only = getattr(ctx.evaluate, "retain_only", None)
    if evaluated is not None and retain_only:  # evaluate --retain-only: the gold standard to compare with
        cfg = cfg.model_copy(update={"retain_only_model": retain_only})
    loaded = ctx.before_model() or inputs.get("model") or load_model(
        cfg.model.model, device=device, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
    windows = encode_windows(loaded.tokenizer, forget.texts, cfg.scoring.max_tokens, ids=forget.ids)
    reference_windows = encode_windows(loaded.tokenizer, reference.texts, cfg.scoring.max_tokens)
    retain_windows = encode_windows(loaded.tokenizer, retain.texts, cfg.scoring.max_tokens) if retain else None

    before = utility_before = None
    if state.is_main_process:  # a benchmark that keeps audits of its fixed models passes them in (muse-news)
        before = inputs.get("audit_before") or audit_memorization(loaded, forget, reference, cfg.scoring,
                                                                  progress=cfg.progress)  # fmt: skip
        if cfg.utility.before:
            utility_before = evaluate_utility(loaded, cfg.utility, reference_windows, progress=cfg.progress,
                                              text_nll=before.reference.values["loss"])  # fmt: skip
    shared = [before.reference.values["ma"].tolist() if before else None]
    if state.num_processes > 1:
        broadcast_object_list(shared)
    thresholds = Thresholds.from_reference(ReferenceStats.from_values(shared[0]), cfg.scoring.k_sigma, cfg.tau)
    log.info("unseen MA: tau %.4f, band [%.4f, %.4f]", thresholds.tau, thresholds.lower, thresholds.upper)

    if evaluated is not None:  # evaluation only: the evaluated model stands where the unlearned one would be
        result, result_model = LoopResult(0, "evaluation only: no unlearning"), evaluated.model
    else:
        result, result_model = _unlearn(ctx, cfg, loaded, windows, forget, reference_windows, retain_windows,
                                        thresholds, on_cpu, before)  # fmt: skip
    if not state.is_main_process:
        leave_process_group(state)  # leave cleanly (an undestroyed gloo group can abort at exit)
        return {}

    unlearned = evaluated or LoadedModel(result_model, loaded.tokenizer, loaded.spec)
    with torch.no_grad():
        if evaluated is loaded and "audit_before" not in inputs:  # evaluating one model: its audit is the before one
            after, utility_after = before, utility_before
        else:
            after = audit_memorization(unlearned, forget, reference, cfg.scoring, progress=cfg.progress)
            utility_after = None
        if utility_after is None:
            utility_after = evaluate_utility(unlearned, cfg.utility, reference_windows, progress=cfg.progress,
                                             text_nll=after.reference.values["loss"])  # fmt: skip
        gold = _against_retain_only(cfg, loaded, forget, reference, after, inputs.get("audit_retain_only"))
    run_dir = ctx.run_dir
    assert run_dir is not None
    model_path = save_trained(unlearned, run_dir) if cfg.save_model else None
    metrics = write_unlearning_report(
        run_dir, cfg, before=before, after=after, result=result, thresholds=thresholds,
        utility={"before": utility_before, "after": utility_after}, model_path=model_path, gold=gold,
    )  # fmt: skip
    ctx.inputs["unlearned_model"], ctx.inputs["audit_after"] = unlearned, after
    leave_process_group(state)
    return metrics


def _unlearn(ctx: RunContext, cfg: UnlearnConfig, loaded: LoadedModel, windows, forget: SequenceSet,
             reference_windows, retain_windows, thresholds: Thresholds, on_cpu: bool,
             before: MemorizationAudit | None = None):  # fmt: skip
    """The step-wise unlearning itself, on a copy of an in-memory model: (loop result, unlearned model).
    ``before``: the starting model's audit, whose statistics a calibrating method reuses where they are the ones
    it would compute."""
    model = copy.deepcopy(loaded.model) if "model" in ctx.inputs else loaded.model  # never train the caller's model
    engine = Engine(model, loaded.tokenizer.pad_token_id, cfg.training, cpu=on_cpu)
    method = build_stepwise(ctx, cfg, thresholds, retain_windows)
    audited = _audited_stats(before, engine, cfg)  # the starting model's statistics, when the audit's are these
    loop = UnlearningLoop(
        engine, method, windows, forget.ids, rule=cfg.stop_rule(), thresholds=thresholds,
        max_steps=cfg.training.max_steps, scoring_batch_size=cfg.scoring.batch_size,
        checkpoint_every=cfg.training.checkpoint_every, run_dir=ctx.run_dir, progress=cfg.progress,
        fingerprint=run_fingerprint(ctx, cfg), start_scores=scores_from_stats(audited[0]) if audited else None,
    )  # fmt: skip
    # per-sequence targets from never-seen text, on the starting model (a resume then restores the saved ones)
    method.calibrate(engine, windows, reference_windows, tokenizer=loaded.tokenizer,
                     start_stats=audited)  # fmt: skip
    if cfg.resume:
        loop.resume_from(cfg.resume)
        loop.write_trace_so_far()
    result = loop.run()
    result_model = engine.full_model(method.result(engine))  # sharded: gathered onto the main process
    engine.accelerator.wait_for_everyone()
    return result, result_model


def _audited_stats(before: MemorizationAudit | None, engine: Engine, cfg: UnlearnConfig):
    """(forget, reference) statistics of the before-audit when they are what calibration and the loop's first
    scoring would compute on the engine's model: the same weights (no adapter), forward (no autocast) and windows,
    in one process (a sharded or multi-process run must make its passes on every process); else None (they score).
    Only the batches differ (the audit's hold the neighbourhood copies too): values equal to float rounding."""
    if before is None or before.target.stats is None or before.reference.stats is None:
        return None
    if engine.world > 1 or cfg.training.lora.enabled or cfg.training.mixed_precision != "no":
        return None
    return before.target.stats, before.reference.stats


def _against_retain_only(cfg: UnlearnConfig, loaded: LoadedModel, forget: SequenceSet, reference: SequenceSet,
                         after: MemorizationAudit, kept: MemorizationAudit | None = None) -> dict[str, Any] | None:
    """PrivLeak and KS forget quality against ``cfg.retain_only_model`` (None without one); ``kept``: its audit
    on the same sets and settings, when the caller has it."""
    if not cfg.retain_only_model:
        return None
    if kept is not None:
        return against_retain_only(after, kept, cfg.retain_only_model)
    gold_model = load_model(cfg.retain_only_model, device=str(loaded.model.device), dtype=cfg.model.dtype,
                            trust_remote_code=cfg.model.trust_remote_code)  # fmt: skip
    gold = audit_memorization(gold_model, forget, reference, cfg.scoring, progress=cfg.progress)
    return against_retain_only(after, gold, cfg.retain_only_model)
