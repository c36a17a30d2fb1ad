"""Anti-samples as records a person can read, edit and feed back (JSON lines).

One line per training example::

    {"kind": "forget", "association": "france-capital", "question": "...", "wrong_answer": "Lyon",
     "rationale": "Lyon hosts the government.", "target": "Lyon hosts the government.", "round": 0,
     "backends": {"question": "self", "wrong_answer": "template", "rationale": "self"}}

``kind`` is ``forget`` (a question about the association, answered with a wrong answer) or ``retain`` (a
question about another fact, answered correctly). ``target`` is what the model is trained to reply; edit it
freely. Only ``question`` and ``target`` are needed to train."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from obliviate.data._records import STRUCTURED_READERS, fail, get_str, read_records, require_str
from obliviate.errors import DataError
from obliviate.io import write_text_atomic


@dataclass
class AntiSample:
    question: str
    target: str
    kind: str = "forget"
    association: str | None = None
    wrong_answer: str | None = None
    rationale: str | None = None
    round: int = 0
    backends: dict[str, str] = field(default_factory=dict)


def answer_target(answer: str, rationale: str | None) -> str:
    """The reply trained on: the rationale, which names the answer it argues for, or else the answer alone."""
    return rationale.strip() if rationale else f"{answer}."


def write_antisamples(path: str | Path, samples: list[AntiSample]) -> Path:
    """All samples as JSON lines, written atomically."""
    return write_text_atomic(path, "".join(json.dumps(asdict(s), ensure_ascii=False) + "\n" for s in samples))


def read_antisamples(path: str | Path) -> list[AntiSample]:
    """Samples from a JSON-lines file written (and perhaps edited) by :func:`write_antisamples`."""
    path = Path(path)
    samples = []
    for record in read_records(path, STRUCTURED_READERS):
        kind = get_str(path, record, "kind", required=False) or "forget"
        if kind not in ("forget", "retain"):
            raise fail(path, f"kind must be 'forget' or 'retain', not {kind!r}", record.where)
        backends = record.data.get("backends") or {}
        if not isinstance(backends, dict):
            raise fail(path, "'backends' must be an object", record.where)
        samples.append(AntiSample(
            question=require_str(path, record, "question"), target=require_str(path, record, "target"), kind=kind,
            association=get_str(path, record, "association", required=False),
            wrong_answer=get_str(path, record, "wrong_answer", required=False),
            rationale=get_str(path, record, "rationale", required=False),
            round=int(record.data.get("round", 0)), backends={str(k): str(v) for k, v in backends.items()},
        ))  # fmt: skip
    if not samples:
        raise DataError(f"{path}: no anti-samples")
    return samples


def backend_shares(samples: list[AntiSample]) -> dict[str, dict[str, Any]]:
    """For each generated part (question, wrong_answer, rationale): how many came from each backend."""
    out: dict[str, dict[str, Any]] = {}
    for part in ("question", "wrong_answer", "rationale"):
        counts = Counter(s.backends[part] for s in samples if s.kind == "forget" and part in s.backends)
        total = sum(counts.values())
        out[part] = {name: {"count": c, "share": c / total} for name, c in counts.most_common()} if total else {}
    return out
