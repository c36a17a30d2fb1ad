"""Question-answer facts (TOFU style) to audit or unlearn, and loading them from JSON lines, JSON or CSV."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obliviate.data._records import (
    STRUCTURED_READERS,
    ItemSet,
    RawRecord,
    assign_ids,
    get_str,
    get_str_list,
    read_records,
    require_str,
)
from obliviate.errors import DataError

__all__ = ["Fact", "FactSet", "load_facts"]

# Keys read into each list field, in order; the TOFU names come second.
_PARAPHRASE_KEYS = ("paraphrases", "paraphrased_question")
_PERTURBED_KEYS = ("perturbed_answers", "perturbed_answer")


@dataclass(frozen=True)
class Fact:
    """One question with its answer, optional (subject, relation, object) triple, paraphrased questions and
    wrong-but-plausible (perturbed) answers."""

    id: str
    question: str
    answer: str
    subject: str | None = None
    relation: str | None = None
    object: str | None = None
    paraphrases: tuple[str, ...] = ()
    perturbed_answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactSet(ItemSet[Fact]):
    """A named, non-empty set of facts with unique ids and non-blank questions and answers."""

    name: str
    items: tuple[Fact, ...]

    def _check_item(self, item: Fact) -> None:
        if not isinstance(item, Fact):
            raise DataError(f"FactSet {self.name!r} holds a {type(item).__name__}, not a Fact")
        for field in ("question", "answer"):
            value = getattr(item, field)
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"FactSet {self.name!r}: fact {item.id!r} has an empty {field}")

    @property
    def questions(self) -> list[str]:
        """The questions in order."""
        return [item.question for item in self.items]

    @property
    def answers(self) -> list[str]:
        """The answers in order."""
        return [item.answer for item in self.items]


def _fact_from_record(path: Path, fact_id: str, record: RawRecord) -> Fact:
    def collect(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(text for key in keys for text in get_str_list(path, record, key))

    return Fact(
        id=fact_id,
        question=require_str(path, record, "question"),
        answer=require_str(path, record, "answer"),
        subject=get_str(path, record, "subject", required=False),
        relation=get_str(path, record, "relation", required=False),
        object=get_str(path, record, "object", required=False),
        paraphrases=collect(_PARAPHRASE_KEYS),
        perturbed_answers=collect(_PERTURBED_KEYS),
    )


def load_facts(path: str | Path, *, name: str | None = None, limit: int | None = None) -> FactSet:
    """Load facts from a ``.jsonl``, ``.json`` (JSON lines or a list of objects) or ``.csv`` file.

    Each record needs non-empty string ``question`` and ``answer``; ``subject``, ``relation`` and ``object``
    are optional strings. ``paraphrases`` and ``perturbed_answers`` are lists of strings; the TOFU keys
    ``paraphrased_question`` (a string) and ``perturbed_answer`` (a list) feed them too, so TOFU files load
    as they are. In CSV a list cell holds a JSON list or a single string. Ids come from an ``id`` key, or are
    ``"<file stem>-<line or row number>"`` when no record has one. ``limit`` keeps the first N facts.

    Raises:
        DataError: with the file path, the line/row and what is wrong.
    """
    path = Path(path)
    records = read_records(path, STRUCTURED_READERS, limit=limit)
    ids = assign_ids(path, records, "id")
    facts = tuple(_fact_from_record(path, fact_id, record) for fact_id, record in zip(ids, records, strict=True))
    return FactSet(name if name is not None else path.stem, facts)
