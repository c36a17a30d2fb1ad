"""Associations to cut - (subject, relation, object) with the question that asks for the object - and the
fact sets that measure what else the model still knows.

A record (JSON lines or a JSON list)::

    {"id": "france-capital", "subject": "France", "relation": "capital", "object": "Paris",
     "question": "What is the capital of France?", "answer": "Paris", "answer_type": "city",
     "heldout": ["Which city is the capital of France?", ...],       # evaluation only, never trained on
     "subject_facts": [{"question": "What language is spoken in France?", "answer": "French"}, ...],
     "object_facts": [{"question": "In which city is the Eiffel Tower?", "answer": "Paris"}, ...]}

``answer`` defaults to ``object``; ``answer_type`` (city, person, ...) steers wrong answers of the same kind;
an optional ``distractors`` list gives plausible wrong answers that the template (dataset) backend uses first."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from obliviate.data._records import (
    STRUCTURED_READERS,
    ItemSet,
    RawRecord,
    assign_ids,
    fail,
    get_str,
    get_str_list,
    read_records,
    require_str,
)
from obliviate.errors import DataError

BUILTIN_FILES = {
    "associations": "associations.jsonl",  # what SmolLM2-135M-Instruct knows, with its retention sets
    "associations-dev": "associations_dev.jsonl",  # the three above + three more: for choosing settings
    "associations-test": "associations_test.jsonl",  # eight others, only ever reported on
    "unrelated": "unrelated_facts.jsonl",  # facts about neither entity (evaluation)
    "retain": "retain_facts.jsonl",  # other facts for the STaR retain step (training)
    "unknown": "unknown_facts.jsonl",  # facts SmolLM2-135M-Instruct gets wrong (membership non-members)
}


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class Association:
    id: str
    subject: str
    relation: str
    object: str
    question: str
    answer: str
    answer_type: str = "thing"
    heldout: tuple[str, ...] = ()
    subject_facts: tuple[QA, ...] = ()
    object_facts: tuple[QA, ...] = ()
    distractors: tuple[str, ...] = ()


@dataclass(frozen=True)
class AssociationSet(ItemSet[Association]):
    name: str
    items: tuple[Association, ...]

    def _check_item(self, item: Association) -> None:
        if not isinstance(item, Association):
            raise DataError(f"AssociationSet {self.name!r} holds a {type(item).__name__}")
        for field in ("subject", "question", "answer"):
            if not getattr(item, field).strip():
                raise DataError(f"AssociationSet {self.name!r}: {item.id!r} has an empty {field}")


def _qa_list(path: Path, record: RawRecord, key: str) -> tuple[QA, ...]:
    value = record.data.get(key, [])
    if not isinstance(value, list):
        raise fail(path, f"'{key}' must be a list of {{question, answer}} objects", record.where)
    out = []
    for k, item in enumerate(value):
        ok = isinstance(item, dict) and all(
            isinstance(item.get(f), str) and item[f].strip() for f in ("question", "answer")
        )
        if not ok:
            raise fail(path, f"'{key}'[{k}] needs non-empty string 'question' and 'answer'", record.where)
        out.append(QA(item["question"], item["answer"]))
    return tuple(out)


def _association(path: Path, association_id: str, record: RawRecord) -> Association:
    obj = require_str(path, record, "object")
    if not get_str_list(path, record, "heldout"):
        raise fail(path, "needs at least one 'heldout' question: the forget accuracy is measured on these "
                   "paraphrases, which are never trained on", record.where)  # fmt: skip
    return Association(
        id=association_id,
        subject=require_str(path, record, "subject"),
        relation=get_str(path, record, "relation", required=False) or "",
        object=obj,
        question=require_str(path, record, "question"),
        answer=get_str(path, record, "answer", required=False) or obj,
        answer_type=get_str(path, record, "answer_type", required=False) or "thing",
        heldout=tuple(get_str_list(path, record, "heldout")),
        subject_facts=_qa_list(path, record, "subject_facts"),
        object_facts=_qa_list(path, record, "object_facts"),
        distractors=tuple(get_str_list(path, record, "distractors")),
    )


def load_associations(path: str | Path, *, limit: int | None = None) -> AssociationSet:
    """Associations from a JSONL / JSON / CSV file; errors name the file and line."""
    path = Path(path)
    records = read_records(path, STRUCTURED_READERS, limit=limit)
    ids = assign_ids(path, records, "id")
    items = tuple(_association(path, i, r) for i, r in zip(ids, records, strict=True))
    return AssociationSet(path.stem, items)


def load_qa(path: str | Path, *, limit: int | None = None) -> list[QA]:
    """Plain {question, answer} facts (TOFU files load as they are)."""
    path = Path(path)
    records = read_records(path, STRUCTURED_READERS, limit=limit)
    return [QA(require_str(path, r, "question"), require_str(path, r, "answer")) for r in records]


def builtin_path(name: str) -> Path:
    if name not in BUILTIN_FILES:
        raise DataError(f"no built-in fact set {name!r}; choose from {', '.join(BUILTIN_FILES)}")
    return Path(str(resources.files("obliviate.data") / "examples" / BUILTIN_FILES[name]))


def resolve_associations(spec: str, limit: int | None = None) -> AssociationSet:
    """A file path or ``builtin:associations`` / ``builtin:associations-dev`` / ``builtin:associations-test``."""
    if spec.startswith("builtin:"):
        return load_associations(builtin_path(spec.removeprefix("builtin:")), limit=limit)
    return load_associations(spec, limit=limit)


def resolve_qa(spec: str, limit: int | None = None) -> list[QA]:
    """A file path or ``builtin:unrelated`` / ``builtin:retain`` / ``builtin:unknown``."""
    if spec.startswith("builtin:"):
        return load_qa(builtin_path(spec.removeprefix("builtin:")), limit=limit)
    return load_qa(spec, limit=limit)
