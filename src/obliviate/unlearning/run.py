"""``obliviate unlearn``: audit, unlearn with a memorization method on the engine, audit again, report.

Under several processes (torchrun / accelerate launch) every rank trains and scores its shard; the main
process alone runs the before/after audits and utility, and writes the run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from obliviate import __version__
from obliviate.api import reference_for, resolve_sequences
from obliviate.config import UnlearnConfig
from obliviate.evaluation import evaluate_utility
from obliviate.io import write_yaml_atomic
from obliviate.methods import build_method
from obliviate.methods.rules import Thresholds
from obliviate.metrics.audit import audit_memorization
from obliviate.metrics.reference import ReferenceStats
from obliviate.metrics.tokens import encode_windows
from obliviate.models import LoadedModel, load_model
from obliviate.models.loading import resolve_device, save_trained
from obliviate.reports.html import write_html_report
from obliviate.reports.rundir import RunLog, create_run_dir
from obliviate.reports.unlearning import write_unlearning_report
from obliviate.training.engine import Engine, leave_process_group
from obliviate.unlearning.loop import UnlearningLoop, read_checkpoint_state

log = logging.getLogger("obliviate")


def run_unlearning(cfg: UnlearnConfig) -> tuple[Path | None, dict[str, Any]]:
    """Unlearn ``cfg.forget`` from the model; returns (run directory, metrics) — (None, {}) on non-main ranks."""
    reference_spec = reference_for(cfg.forget, cfg.reference)
    forget = resolve_sequences(cfg.forget, cfg.limit)
    reference = resolve_sequences(reference_spec, cfg.limit)
    if cfg.resume:
        read_checkpoint_state(Path(cfg.resume), cfg.method)  # fail before any work
    # Accelerate only starts a multi-process CPU group (gloo, under torchrun) when told it runs on the CPU
    on_cpu = resolve_device(cfg.model.device).type == "cpu"
    state = PartialState(cpu=on_cpu)
    run_dir = create_run_dir(cfg.output_dir, f"unlearn-{cfg.method}") if state.is_main_process else None
    with RunLog(run_dir) if run_dir else _NoLog():
        if run_dir:
            write_yaml_atomic(run_dir / "config.yaml", cfg.model_dump(mode="json"))
        log.info("obliviate %s: %s on %s, forgetting %s", __version__, cfg.method, cfg.model.model, cfg.forget)
        device = cfg.model.device
        if device == "auto" and state.distributed_type.name != "NO":
            device = str(state.device)
        loaded = load_model(cfg.model.model, device=device, dtype=cfg.model.dtype,
                            trust_remote_code=cfg.model.trust_remote_code)  # fmt: skip
        windows = encode_windows(loaded.tokenizer, forget.texts, cfg.scoring.max_tokens, ids=forget.ids)
        reference_windows = encode_windows(loaded.tokenizer, reference.texts, cfg.scoring.max_tokens)

        before = utility_before = None
        if state.is_main_process:
            before = audit_memorization(loaded, forget, reference, cfg.scoring, progress=cfg.progress)
            if cfg.utility.before:
                utility_before = evaluate_utility(loaded, cfg.utility, reference_windows, progress=cfg.progress)
        shared = [before.reference.values["ma"].tolist() if before else None]
        if state.num_processes > 1:
            broadcast_object_list(shared)
        thresholds = Thresholds.from_reference(ReferenceStats.from_values(shared[0]), cfg.scoring.k_sigma, cfg.tau)
        log.info("unseen MA: tau %.4f, band [%.4f, %.4f]", thresholds.tau, thresholds.lower, thresholds.upper)

        engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, cfg.training, cpu=on_cpu)
        method = build_method(cfg, thresholds)
        loop = UnlearningLoop(
            engine, method, windows, forget.ids, rule=cfg.stop_rule(), thresholds=thresholds,
            max_steps=cfg.training.max_steps, scoring_batch_size=cfg.scoring.batch_size,
            checkpoint_every=cfg.training.checkpoint_every, run_dir=run_dir, progress=cfg.progress,
        )  # fmt: skip
        if cfg.resume:
            loop.resume_from(cfg.resume)
            loop.write_trace_so_far()
        result = loop.run()
        result_model = method.result(engine)
        engine.accelerator.wait_for_everyone()
        if not state.is_main_process:
            leave_process_group(state)  # leave cleanly (an undestroyed gloo group can abort at exit)
            return None, {}

        unlearned = LoadedModel(result_model, loaded.tokenizer, loaded.spec)
        with torch.no_grad():
            after = audit_memorization(unlearned, forget, reference, cfg.scoring, progress=cfg.progress)
            utility_after = evaluate_utility(unlearned, cfg.utility, reference_windows, progress=cfg.progress)
        model_path = save_trained(unlearned, run_dir) if cfg.save_model else None
        metrics = write_unlearning_report(
            run_dir, cfg, before=before, after=after, result=result, thresholds=thresholds,
            utility={"before": utility_before, "after": utility_after}, model_path=model_path,
        )  # fmt: skip
        write_html_report(run_dir)
        log.info("wrote %s", run_dir)
        leave_process_group(state)
        return run_dir, metrics


class _NoLog:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
