"""Shared plumbing for the data loaders: reading raw records, validating fields, and the item-set base class.

Every problem is reported as a :class:`~obliviate.errors.DataError` whose message starts with the file
path and the place in the file (``line N`` for JSON lines and text, ``item N`` for a JSON list, ``row N``
for CSV, where CSV rows are counted from 1 after the header).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from obliviate.errors import DataError


@dataclass(frozen=True)
class RawRecord:
    """One record as read from a file: ``number`` feeds automatic ids, ``where`` goes into messages."""

    number: int
    where: str
    data: dict[str, Any]


Reader = Callable[[Path, str], list[RawRecord]]


def fail(path: Path, problem: str, where: str | None = None) -> DataError:
    """Build a DataError naming the file and, when known, the place in it."""
    return DataError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


def read_text(path: Path, *, newline: str | None = None) -> str:
    """Read a UTF-8 file (a leading BOM is dropped); a missing or unreadable file is a DataError."""
    if not path.is_file():
        raise fail(path, "file not found" if not path.exists() else "not a regular file")
    try:
        with path.open(encoding="utf-8-sig", newline=newline) as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise fail(path, f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise fail(path, f"cannot be read ({exc.strerror or exc})") from None


def _as_object(path: Path, value: Any, number: int, where: str) -> RawRecord:
    if not isinstance(value, dict):
        raise fail(path, f"expected a JSON object, got {_json_type(value)}", where)
    return RawRecord(number, where, value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def read_jsonl(path: Path, text: str) -> list[RawRecord]:
    """One JSON object per line; blank lines are skipped. Lines are split on newline characters only."""
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(path, f"bad JSON ({exc.msg} at column {exc.colno})", f"line {number}") from None
        records.append(_as_object(path, value, number, f"line {number}"))
    return records


def read_json(path: Path, text: str) -> list[RawRecord]:
    """A JSON list of objects, a single JSON object, or JSON lines saved with a ``.json`` extension."""
    head = text.lstrip()[:1]
    if head == "[":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(path, f"bad JSON ({exc.msg} at column {exc.colno})", f"line {exc.lineno}") from None
        return [_as_object(path, item, k, f"item {k}") for k, item in enumerate(value, start=1)]
    if head == "{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return read_jsonl(path, text)  # several objects, one per line
        return [_as_object(path, value, 1, TOP_LEVEL)]
    return read_jsonl(path, text)  # reports the first bad line


TOP_LEVEL = "the top-level object"  # a .json file that holds one object (read as a single record)


def read_csv(path: Path, text: str) -> list[RawRecord]:
    """A CSV file with a header row; row numbers count data rows from 1."""
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # pragma: no cover - platforms where C long is 32 bits
        csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    started = 1  # the line on which the row being read began
    try:
        header = next(reader, None)
        if header is None:
            return []
        if len(set(header)) != len(header):
            dupes = sorted({name for name in header if header.count(name) > 1})
            raise fail(path, f"duplicate column name(s) in header: {', '.join(dupes)}", "header")
        records = []
        started = reader.line_num + 1
        for number, row in enumerate(reader, start=1):
            started = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise fail(path, f"{len(row)} fields but the header has {len(header)}", f"row {number}")
            records.append(RawRecord(number, f"row {number}", dict(zip(header, row, strict=False))))
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise fail(path, "a quoted field that starts here is never closed (an unbalanced \" quote); close it or "
                       'double the quote ("") inside the field', f"line {started}") from None  # fmt: skip
        raise fail(path, f"bad CSV ({exc})", f"line {reader.line_num}") from None
    return records


STRUCTURED_READERS: dict[str, Reader] = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv}


def read_records(path: str | Path, readers: dict[str, Reader], *, limit: int | None = None) -> list[RawRecord]:
    """Read the records of ``path`` with the reader for its extension, keeping the first ``limit``."""
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise fail(path, f"limit must be a positive integer, got {limit!r}")
    reader = readers.get(path.suffix.lower())
    if reader is None:
        supported = ", ".join(sorted(readers))
        raise fail(path, f"unknown extension {path.suffix or '(none)'!r}; supported: {supported}")
    text = read_text(path, newline="" if reader is read_csv else None)
    if not text.strip():
        raise fail(path, "file is empty")
    records = reader(path, text)
    if not records:
        raise fail(path, "file contains no records")
    return records if limit is None else records[:limit]


def assign_ids(path: Path, records: list[RawRecord], id_field: str, aliases: tuple[str, ...] = ()) -> list[str]:
    """Ids from ``id_field`` (or the first alias present when it is absent from every record).

    When no record has the field, ids are ``"<file stem>-<record number>"``. A field present in some records
    but missing from others, an empty or non-scalar id, and a repeated id are errors.
    """
    field = next((f for f in (id_field, *aliases) if any(f in r.data for r in records)), None)
    if field is None:
        return [f"{path.stem}-{r.number}" for r in records]
    ids: list[str] = []
    first_seen: dict[str, str] = {}
    for record in records:
        value = record.data.get(field)
        if field not in record.data or value is None:
            raise fail(path, f"missing id field {field!r} (other records have it)", record.where)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(path, f"id field {field!r} must be a string or an integer, got {value!r}", record.where)
        key = str(value).strip()
        if not key:
            raise fail(path, f"empty id in field {field!r}", record.where)
        if key in first_seen:
            raise fail(path, f"duplicate id {key!r} that first appeared at {first_seen[key]}", record.where)
        first_seen[key] = record.where
        ids.append(key)
    return ids


def get_str(path: Path, record: RawRecord, field: str, *, required: bool) -> str | None:
    """A string field that, when present, must be non-empty; ``None`` when absent and not required."""
    value = record.data.get(field)
    if value is None or (value == "" and not required):
        if required:
            raise _missing(path, record, field)
        return None
    if not isinstance(value, str):
        raise fail(path, f"field {field!r} must be a string, got {_json_type(value)}", record.where)
    if not value.strip():
        raise fail(path, f"field {field!r} is empty", record.where)
    return value


def _missing(path: Path, record: RawRecord, field: str) -> DataError:
    """The message for a required field that is absent: for a CSV without that column and a .json file that is
    one object rather than a list of records, say what the file holds instead."""
    if field in record.data:
        return fail(path, f"missing field {field!r}", record.where)
    keys = ", ".join(repr(k) for k in list(record.data)[:10]) or "none"
    if record.where.startswith("row "):
        return fail(path, f"no {field!r} column (the header has {keys}); name the column {field!r}", "header")
    if record.where == TOP_LEVEL:
        return fail(path, f"one JSON object with keys {keys}, where a list of records with a {field!r} field was "
                    f'expected: write [{{"{field}": ...}}, ...] or one object per line (.jsonl)')  # fmt: skip
    return fail(path, f"missing field {field!r} (this record has {keys})", record.where)


def require_str(path: Path, record: RawRecord, field: str) -> str:
    """A required, non-empty string field."""
    value = get_str(path, record, field, required=True)
    assert value is not None  # get_str raises instead of returning None when required
    return value


def get_str_list(path: Path, record: RawRecord, field: str) -> tuple[str, ...]:
    """A list of non-empty strings; a lone string counts as a one-item list and an absent field as empty.

    In CSV a cell may hold a JSON list (``["a", "b"]``) or a single string.
    """
    value = record.data.get(field)
    if value is None or value == "":
        return ()
    if isinstance(value, str) and record.where.startswith("row ") and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise fail(path, f"field {field!r} is not a valid JSON list ({exc.msg})", record.where) from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fail(path, f"field {field!r} must be a list of non-empty strings", record.where)
    return tuple(value)


def _plain(item: Any) -> dict[str, Any]:
    values = {f.name: getattr(item, f.name) for f in fields(item)}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}


T = TypeVar("T")
S = TypeVar("S", bound="ItemSet[Any]")


@dataclass(frozen=True)
class ItemSet(Generic[T]):
    """A named, non-empty, ordered collection of items with unique ``id`` attributes."""

    name: str
    items: tuple[T, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        kind = type(self).__name__
        if not self.items:
            raise DataError(f"{kind} {self.name!r} is empty")
        dupes = sorted(key for key, count in Counter(self.ids).items() if count > 1)
        if dupes:
            raise DataError(f"{kind} {self.name!r} has duplicate id(s): {', '.join(map(repr, dupes))}")
        for item in self.items:
            self._check_item(item)

    def _check_item(self, item: T) -> None:
        """Subclasses raise DataError for an invalid item."""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    @property
    def ids(self) -> list[str]:
        """The ids in order."""
        return [item.id for item in self.items]  # type: ignore[attr-defined]

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts, one per item, with tuple fields turned into lists (ready for JSON)."""
        return [_plain(item) for item in self.items]

    def subset(self: S, ids: Iterable[str], *, name: str | None = None) -> S:
        """The items whose ids are in ``ids``, in this set's order; an unknown id is a DataError."""
        wanted = set(ids)
        unknown = wanted.difference(self.ids)
        if unknown:
            raise DataError(f"{self.name!r} has no item(s) with id {', '.join(map(repr, sorted(unknown)))}")
        items = tuple(item for item in self.items if item.id in wanted)  # type: ignore[attr-defined]
        return type(self)(name if name is not None else self.name, items)
