"""Per-sequence audit scores kept beside a testbed model that does not change (the target, the retain-only model,
a removal request's saved model), so that every later run on the same texts with the same scoring settings reads
them back instead of scoring again: each method's run on block 0 audits the target and the retain-only model
once between them, and a sustainability request reuses the never-seen holdout's scores the request before it
measured on the very model it starts from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from obliviate.config import ScoringConfig
from obliviate.data import SequenceSet
from obliviate.io import write_json_atomic
from obliviate.metrics.audit import MemorizationAudit, SetScores


def _path(model_dir: Path, sequences: SequenceSet, cfg: ScoringConfig, how: str) -> Path:
    key = json.dumps([list(sequences.ids), list(sequences.texts), cfg.model_dump(mode="json"), how], sort_keys=True)
    return Path(model_dir) / f"audit-scores-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def load_set_scores(model_dir: Path, sequences: SequenceSet, cfg: ScoringConfig, how: str) -> SetScores | None:
    """The scores kept beside ``model_dir`` for exactly these sequences and settings (``how``: the device and
    dtype the model ran in), or None."""
    path = _path(model_dir, sequences, cfg, how)
    if not path.is_file():
        return None
    kept = json.loads(path.read_text(encoding="utf-8"))
    return SetScores(kept["ids"], {k: np.asarray(v, dtype=float) for k, v in kept["values"].items()})


def keep_set_scores(model_dir: Path, sequences: SequenceSet, cfg: ScoringConfig, how: str,
                    scores: SetScores) -> None:  # fmt: skip
    values = {k: np.asarray(v, dtype=float).tolist() for k, v in scores.values.items()}
    write_json_atomic(_path(model_dir, sequences, cfg, how), {"ids": list(scores.ids), "values": values})


def cached_audit(model_dir: Path, forget: SequenceSet, reference: SequenceSet, cfg: ScoringConfig, how: str,
                 score: Callable[[SequenceSet], SetScores]) -> MemorizationAudit:  # fmt: skip
    """The audit of the model in ``model_dir`` on ``forget`` and ``reference``: each set's scores read back when
    kept, else computed with ``score`` (on that model) and kept."""
    sets = []
    for sequences in (forget, reference):
        scores = load_set_scores(model_dir, sequences, cfg, how)
        if scores is None:
            scores = score(sequences)
            keep_set_scores(model_dir, sequences, cfg, how, scores)
        sets.append(scores)
    return MemorizationAudit(target=sets[0], reference=sets[1], cfg=cfg)
