"""What a muse-news run measures with MUSE's metrics on one model: VerbMem on the forget chunks, KnowMem on their
questions and on the retain questions; and the testbed a run works on (``MusePrepared``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
