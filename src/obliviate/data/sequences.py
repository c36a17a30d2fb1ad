"""Text sequences to audit or unlearn, and loading them from JSON lines, JSON, CSV or plain text files."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from obliviate.data._records import (
    STRUCTURED_READERS,
    ItemSet,
    RawRecord,
    Reader,
    assign_ids,
    fail,
    read_records,
    require_str,
)
from obliviate.errors import DataError

__all__ = ["Sequence", "SequenceSet", "load_sequences"]


@dataclass(frozen=True)
class Sequence:
    """One text sequence with a stable id."""

    id: str
    text: str


@dataclass(frozen=True)
class SequenceSet(ItemSet[Sequence]):
    """A named, non-empty set of sequences with unique ids and non-blank texts."""

    name: str
    items: tuple[Sequence, ...]

    def _check_item(self, item: Sequence) -> None:
        if not isinstance(item, Sequence):
            raise DataError(f"SequenceSet {self.name!r} holds a {type(item).__name__}, not a Sequence")
        if not isinstance(item.text, str) or not item.text.strip():
            raise DataError(f"SequenceSet {self.name!r}: sequence {item.id!r} has empty text")

    @property
    def texts(self) -> list[str]:
        """The texts in order."""
        return [item.text for item in self.items]


def _read_txt(path: Path, text: str, *, text_field: str) -> list[RawRecord]:
    """Documents separated by one or more blank lines; each is numbered from 1 in file order."""
    records: list[RawRecord] = []
    block: list[str] = []
    start = 0
    for number, line in enumerate([*text.split("\n"), ""], start=1):
        if line.strip():
            if not block:
                start = number
            block.append(line.rstrip("\r"))
        elif block:
            k = len(records) + 1
            records.append(RawRecord(k, f"line {start} (document {k})", {text_field: "\n".join(block)}))
            block = []
    return records


def load_sequences(
    path: str | Path,
    *,
    id_field: str = "id",
    text_field: str = "text",
    name: str | None = None,
    limit: int | None = None,
) -> SequenceSet:
    """Load sequences from ``path``.

    Formats, by extension:

    * ``.jsonl`` - one JSON object per line, blank lines skipped;
    * ``.json`` - a list of objects, or JSON lines saved as ``.json``;
    * ``.csv`` - a header row, then one sequence per row (``doc_id`` stands in for a missing ``id`` column);
    * ``.txt`` - documents separated by blank lines, with ids ``"<stem>-<k>"``.

    When the id field is absent from the whole file, ids are ``"<file stem>-<line or row number>"``. Ids are
    converted to ``str``. ``limit`` keeps the first N sequences; ``name`` defaults to the file stem.

    Raises:
        DataError: with the file path, the line/row and what is wrong.
    """
    path = Path(path)
    readers: dict[str, Reader] = {
        **STRUCTURED_READERS,
        ".txt": functools.partial(_read_txt, text_field=text_field),
    }
    records = read_records(path, readers, limit=limit)
    aliases = ("doc_id",) if id_field == "id" else ()
    ids = assign_ids(path, records, id_field, aliases)
    items = []
    for seq_id, record in zip(ids, records, strict=True):
        items.append(Sequence(seq_id, require_str(path, record, text_field)))
    try:
        return SequenceSet(name if name is not None else path.stem, tuple(items))
    except DataError as exc:  # pragma: no cover - loader checks come first; kept for a clear message
        raise fail(path, str(exc)) from None
