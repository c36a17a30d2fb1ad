"""The Python API behind the CLI: each function takes a typed config and writes a new run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from obliviate import __version__
from obliviate.config import MemorizationRunConfig
from obliviate.data import SequenceSet, builtin_sequences, load_sequences
from obliviate.errors import ConfigError
from obliviate.io import write_yaml_atomic
from obliviate.metrics.audit import audit_memorization
from obliviate.models import load_model
from obliviate.reports.memorization import write_memorization_report
from obliviate.reports.rundir import RunLog, create_run_dir

log = logging.getLogger("obliviate")

BUILTIN_PREFIX = "builtin:"


def resolve_sequences(spec: str, limit: int | None = None) -> SequenceSet:
    """A sequence file path, or ``builtin:NAME`` for a set shipped with obliviate."""
    if spec.startswith(BUILTIN_PREFIX):
        sequences = builtin_sequences(spec.removeprefix(BUILTIN_PREFIX))
        return sequences.subset(sequences.ids[:limit]) if limit else sequences
    return load_sequences(spec, limit=limit)


def reference_for(target_spec: str, reference_spec: str | None) -> str:
    """The never-seen reference set: the given one, or builtin:fresh beside a built-in target set."""
    if reference_spec is not None:
        return reference_spec
    if not target_spec.startswith(BUILTIN_PREFIX):
        raise ConfigError("A reference set of never-seen sequences is required (--reference FILE)")
    return "builtin:fresh"


def run_memorization(cfg: MemorizationRunConfig) -> tuple[Path, dict[str, Any]]:
    """Score a model on a sequence set against never-seen reference text; returns (run dir, metrics)."""
    reference_spec = reference_for(cfg.sequences, cfg.reference)
    target = resolve_sequences(cfg.sequences, cfg.limit)
    reference = resolve_sequences(reference_spec, cfg.limit)
    run_dir = create_run_dir(cfg.output_dir, "memorization")
    with RunLog(run_dir):
        write_yaml_atomic(run_dir / "config.yaml", cfg.model_dump(mode="json"))
        log.info("obliviate %s: memorization audit of %s on %s", __version__, cfg.model.model, cfg.sequences)
        loaded = load_model(
            cfg.model.model,
            device=cfg.model.device,
            dtype=cfg.model.dtype,
            trust_remote_code=cfg.model.trust_remote_code,
        )
        audit = audit_memorization(loaded, target, reference, cfg.scoring, progress=cfg.progress)
        header = {"model": cfg.model.model, "sequences": cfg.sequences, "reference": reference_spec}
        metrics = write_memorization_report(run_dir, audit, header)
        log.info("wrote %s", run_dir)
    return run_dir, metrics
