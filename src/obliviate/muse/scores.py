"""What a muse-news run measures with MUSE's metrics on one model: VerbMem on the forget chunks, KnowMem on their
questions and on the retain questions; and the testbed a run works on (``MusePrepared``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.io import write_json_atomic
from obliviate.models import LoadedModel
from obliviate.muse.metrics import knowmem, verbmem
from obliviate.muse.testbed import Chunk, MuseMini, verbmem_items

MUSE_SETS = ("verbmem", "knowmem_forget", "knowmem_retain")


@dataclass
class MusePrepared:
    mini: MuseMini
    forget: list[Chunk]
    chunk_tokens: int
    target: Path
    retain_only: Path


def muse_scores(loaded: LoadedModel, prepared: MusePrepared, knowmem_tokens: int,
                icl_examples: int = 10) -> dict[str, Any]:  # fmt: skip
    """VerbMem on the forget chunks (as many new tokens as a chunk's second half), KnowMem on their questions and
    on the retain questions (MUSE's in-context examples)."""
    mini, tok, model = prepared.mini, loaded.tokenizer, loaded.model
    items = verbmem_items(tok, prepared.forget)
    forget_qa = [(q.question, q.answer) for c in prepared.forget for q in c.qa]
    icl = {name: [(q.question, q.answer) for q in shots[:icl_examples]] for name, shots in
           (("forget", mini.forget_icl), ("retain", mini.retain_icl))}  # fmt: skip
    return {
        "verbmem": verbmem(model, tok, items, max_new_tokens=verbmem_tokens(prepared)),
        "knowmem_forget": knowmem(model, tok, forget_qa, icl["forget"], max_new_tokens=knowmem_tokens),
        "knowmem_retain": knowmem(model, tok, [(q.question, q.answer) for q in mini.retain_qa()], icl["retain"],
                                  max_new_tokens=knowmem_tokens),
    }  # fmt: skip


def verbmem_tokens(prepared: MusePrepared) -> int:
    """New tokens per VerbMem prompt: a chunk's second half."""
    return prepared.chunk_tokens - prepared.chunk_tokens // 2


def cached_scores(model_dir: Path, prepared: MusePrepared, knowmem_tokens: int, icl_examples: int,
                  load: Callable[[], LoadedModel]) -> dict[str, Any]:  # fmt: skip
    """:func:`muse_scores` of a cached testbed model (target or retain-only), kept beside it per forget set and
    settings: every method's run on the same block reads them back instead of generating them again."""
    key = json.dumps([[c.id, c.text] for c in prepared.forget] + [prepared.chunk_tokens, knowmem_tokens, icl_examples,
                     [[q.question, q.answer] for q in prepared.mini.retain_qa()]])  # fmt: skip
    path = model_dir / f"muse-scores-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    scores = muse_scores(load(), prepared, knowmem_tokens, icl_examples)
    write_json_atomic(path, scores)
    return scores
