"""TOFU splits from a local folder (``../shared/data/tofu`` or a user's copy; JSON Lines or one JSON array per
file, as the mirrors ship them), or from the Hugging Face hub (``locuslab/TOFU``) when online."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from obliviate.errors import DataError

SPLITS = (
    "full", "forget01", "forget05", "forget10", "retain90", "retain95", "retain99", "holdout01", "holdout05",
    "holdout10", "real_authors", "world_facts", "forget01_perturbed", "forget05_perturbed", "forget10_perturbed",
    "retain_perturbed", "real_authors_perturbed", "world_facts_perturbed",
)  # fmt: skip


@dataclass(frozen=True)
class TofuItem:
    question: str
    answer: str
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    paraphrased_question: str | None = None


def load_split(name: str, root: str | Path | None = None) -> list[TofuItem]:
    """One TOFU split by name (see SPLITS) from ``root``, or from the hub when ``root`` is None."""
    if name not in SPLITS:
        raise DataError(f"unknown TOFU split {name!r}; one of: {', '.join(SPLITS)}")
    records = _read_local(Path(root) / f"{name}.json") if root is not None else _read_hub(name)
    return [_item(record, name, k) for k, record in enumerate(records)]


def _read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"TOFU split file {path} not found (expected one of {', '.join(SPLITS)} + .json)")
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not a valid JSON array ({exc})") from exc
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    return records


def _read_hub(name: str) -> list[dict]:  # pragma: no cover - needs the network
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise DataError(
            "reading TOFU from the hub needs the 'datasets' package (pip install 'obliviate[hub]'); "
            "or pass a folder of TOFU's JSON(L) files (--tofu DIR)"
        ) from exc
    try:
        return list(load_dataset("locuslab/TOFU", name, split="train"))
    except Exception as exc:  # offline, hub down, renamed split: one clear message instead of a network traceback
        raise DataError(
            f"could not load TOFU split {name!r} from the hub ({type(exc).__name__}: {exc}); "
            "pass a folder of TOFU's JSON(L) files instead (--tofu DIR)"
        ) from exc


def _item(record: object, split: str, index: int) -> TofuItem:
    if not isinstance(record, dict) or not isinstance(record.get("question"), str) or not isinstance(
            record.get("answer"), str):  # fmt: skip
        raise DataError(f"TOFU {split}, record {index + 1}: needs string 'question' and 'answer'")
    perturbed = record.get("perturbed_answer") or ()
    if isinstance(perturbed, str):
        perturbed = (perturbed,)
    return TofuItem(record["question"], record["answer"], record.get("paraphrased_answer"), tuple(perturbed),
                    record.get("paraphrased_question"))  # fmt: skip
