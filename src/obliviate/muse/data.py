"""MUSE-News (Shi et al. 2024, CC BY 4.0) from a local folder: the knowmem question-answer sets with their
in-context examples, the privleak texts (forget / retain2 / holdout) and the raw forget corpus. Read where it
lies (``../shared/data/muse_news`` or a user's copy, ``$OBLIVIATE_MUSE_NEWS``); never copied."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.errors import DataError
from obliviate.unstar.associations import QA  # the one question-answer record

__all__ = ["QA", "MuseNews", "default_root", "load_muse_news"]

FILES = {
    "forget_qa": "knowmem/forget_qa.json", "forget_icl": "knowmem/forget_qa_icl.json",
    "retain_qa": "knowmem/retain2_qa.json", "retain_icl": "knowmem/retain2_qa_icl.json",
    "retain_texts": "privleak/retain2.json", "holdout_texts": "privleak/holdout.json",
    "forget_corpus": "raw/forget.json",
}  # fmt: skip


@dataclass(frozen=True)
class MuseNews:
    forget_qa: list[QA]
    forget_icl: list[QA]
    retain_qa: list[QA]
    retain_icl: list[QA]
    forget_corpus: list[str]  # the articles the forget QA and excerpts come from
    retain_texts: list[str]  # seen by MUSE's target and kept
    holdout_texts: list[str]  # never seen
    root: Path


def default_root() -> Path | None:
    """``$OBLIVIATE_MUSE_NEWS``, else ``$OBLIVIATE_SHARED_DATA/muse_news``, else ``../shared/data/muse_news`` from
    the working directory or its parents, when one exists."""
    if os.environ.get("OBLIVIATE_MUSE_NEWS"):
        return Path(os.environ["OBLIVIATE_MUSE_NEWS"])
    if os.environ.get("OBLIVIATE_SHARED_DATA"):
        return Path(os.environ["OBLIVIATE_SHARED_DATA"]) / "muse_news"
    for folder in (Path.cwd(), *Path.cwd().parents):
        candidate = folder / "shared" / "data" / "muse_news"
        if candidate.is_dir():
            return candidate
    return None


def load_muse_news(root: str | Path | None = None) -> MuseNews:
    """The MUSE-News files under ``root`` (default :func:`default_root`); a clear DataError names what is missing
    or malformed."""
    folder = Path(root) if root is not None else default_root()
    if folder is None:
        raise DataError("no MUSE-News folder: pass --set benchmark.data=PATH (a folder with knowmem/, privleak/, "
                        "raw/) or set OBLIVIATE_MUSE_NEWS")  # fmt: skip
    if not folder.is_dir():
        raise DataError(f"{folder}: MUSE-News folder not found")
    loaded = {key: _read(folder / rel) for key, rel in FILES.items()}
    qa = {k: _qa(loaded[k], folder / FILES[k]) for k in ("forget_qa", "forget_icl", "retain_qa", "retain_icl")}
    texts = {k: _texts(loaded[k], folder / FILES[k]) for k in ("forget_corpus", "retain_texts", "holdout_texts")}
    return MuseNews(**qa, **texts, root=folder)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: missing MUSE-News file (expected the layout of muse-bench's data/bbc)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid UTF-8 JSON ({exc})") from None


def _qa(value: Any, path: Path) -> list[QA]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{path}: expected a non-empty JSON list of {{question, answer}} objects")
    out = []
    for k, item in enumerate(value):
        if not (isinstance(item, dict) and isinstance(item.get("question"), str) and isinstance(item.get("answer"), str)
                and item["question"].strip() and item["answer"].strip()):  # fmt: skip
            raise DataError(f"{path}: item {k} is not a {{question, answer}} object with non-empty strings")
        out.append(QA(item["question"].strip(), item["answer"].strip()))
    return out


def _texts(value: Any, path: Path) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise DataError(f"{path}: expected a non-empty JSON list of article texts")
    return [t for t in value if t.strip()]
