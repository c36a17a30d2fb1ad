"""MUSE-News-mini: a CPU-sized MUSE built the way TOFU-mini is. MUSE's target is Llama-2-7B trained on the news;
here the embedded model is fine-tuned on chunks of the same articles - the target on forget + retain chunks,
the retain-only model on the retain chunks alone - and both are cached per recipe.

- Forget chunks: for each knowmem forget question, in file order, a window of ``chunk_tokens`` tokens around its
  answer in the raw forget article that contains the answer and most of the question's words (questions whose
  answer no article contains are dropped). The pool holds ``blocks`` blocks of ``forget_chunks`` chunks: removal
  request k forgets block k (sustainability), a forget set of scale s the first s blocks (scalability).
- Retain chunks: the same for the knowmem retain questions in MUSE's retain2 texts (seen and kept), filled up
  to ``retain_chunks`` with windows at seeded offsets of the other retain2 texts.
- Holdout chunks: windows at seeded offsets of MUSE's holdout texts (never seen), the never-seen reference.
- VerbMem items: each forget chunk cut in two halves, prompt and true continuation (MUSE's verbmem excerpts are
  longer and not aligned with our chunks)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from obliviate.errors import DataError
from obliviate.muse.data import QA, MuseNews

_WORD = re.compile(r"[A-Za-z0-9£$%.,'-]+")


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    qa: list[QA] = field(default_factory=list)  # knowmem questions answered inside this chunk


@dataclass(frozen=True)
class MuseMini:
    forget_pool: list[Chunk]  # ``blocks`` blocks of ``block_size`` chunks
    retain: list[Chunk]
    holdout: list[Chunk]
    forget_icl: list[QA]
    retain_icl: list[QA]
    block_size: int

    def forget(self, scale: int = 1, request: int = 0) -> list[Chunk]:
        """The forget set: ``scale`` blocks starting at block ``request``."""
        start, stop = request * self.block_size, (request + scale) * self.block_size
        if stop > len(self.forget_pool):
            held = len(self.forget_pool)
            raise DataError(f"forget blocks {request}..{request + scale - 1} need {stop} forget chunks; the testbed "
                            f"holds {held} ({held // self.block_size} blocks)")  # fmt: skip
        return self.forget_pool[start:stop]

    def retain_qa(self) -> list[QA]:
        return [q for c in self.retain for q in c.qa]


def content_words(text: str) -> set[str]:
    return {w.lower().strip(".,'") for w in _WORD.findall(text) if len(w.strip(".,'")) > 3}


def grounded_chunks(tokenizer: PreTrainedTokenizerBase, questions: list[QA], articles: list[str], chunk_tokens: int,
                    prefix: str) -> list[Chunk]:  # fmt: skip
    """One chunk per question whose answer an article contains near most of the question's words
    (:func:`_best_occurrence`), the answer's first token in the middle of the window; a question whose answer falls
    inside a chunk already made joins that chunk; one whose window would overlap another chunk is dropped."""
    made: list[tuple[int, int, int, list[QA]]] = []  # article, first token, last token, questions
    encoded: dict[int, Any] = {}
    for qa in questions:
        found = _best_occurrence(qa, articles)
        if found is None:
            continue
        best, at = found
        if best not in encoded:
            encoded[best] = tokenizer(articles[best], add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded[best]["offset_mapping"]
        token = next((k for k, (s, e) in enumerate(offsets) if e > at), len(offsets) - 1)
        joined = next((m for m in made if m[0] == best and m[1] <= token < m[2]), None)
        if joined is not None:
            joined[3].append(qa)
            continue
        first = max(0, min(token - chunk_tokens // 2, len(offsets) - chunk_tokens))
        if any(m[0] == best and first < m[2] and m[1] < first + chunk_tokens for m in made):
            continue  # it would overlap a chunk already made: chunks never share text
        made.append((best, first, min(first + chunk_tokens, len(offsets)), [qa]))
    return [Chunk(f"{prefix}-{k}", _span(articles[a], encoded[a]["offset_mapping"], first, last), qas)
            for k, (a, first, last, qas) in enumerate(made)]  # fmt: skip


def _best_occurrence(qa: QA, articles: list[str], around: int = 800) -> tuple[int, int] | None:
    """(article, character position) of the answer occurrence whose surroundings (``around`` characters each side)
    share most of the question's words; None when no occurrence shares at least 2 and 40% of them."""
    words = content_words(qa.question)
    best, best_score = None, 0
    for i, text in enumerate(articles):
        at = text.find(qa.answer)
        while at >= 0:
            score = len(words & content_words(text[max(0, at - around) : at + around]))
            if score > best_score:
                best, best_score = (i, at), score
            at = text.find(qa.answer, at + 1)
    return best if best_score >= max(2, 0.4 * len(words)) else None


def window_chunks(tokenizer: PreTrainedTokenizerBase, articles: list[str], count: int, chunk_tokens: int,
                  prefix: str, seed: int) -> list[Chunk]:  # fmt: skip
    """A window of ``chunk_tokens`` tokens at a seeded offset of each of the first ``count`` long-enough articles."""
    rng, out = random.Random(seed), []
    for text in articles:
        if len(out) == count:
            break
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) < chunk_tokens:
            continue
        first = rng.randrange(len(offsets) - chunk_tokens + 1)
        out.append(Chunk(f"{prefix}-{len(out)}", _span(text, offsets, first, first + chunk_tokens)))
    return out


def _span(text: str, offsets: list[tuple[int, int]], first: int, last: int) -> str:
    return text[offsets[first][0] : offsets[last - 1][1]].strip()


def muse_mini(news: MuseNews, tokenizer: PreTrainedTokenizerBase, *, forget_chunks: int = 4, blocks: int = 4,
              retain_chunks: int = 8, holdout_chunks: int = 24, chunk_tokens: int = 64,
              seed: int = 0) -> MuseMini:  # fmt: skip
    """The testbed's texts (see the module's description); a DataError when MUSE-News grounds too few chunks."""
    pool = grounded_chunks(tokenizer, news.forget_qa, news.forget_corpus, chunk_tokens, "forget")
    need = forget_chunks * blocks
    if len(pool) < need:
        raise DataError(f"MUSE-News grounds {len(pool)} forget chunks in its raw corpus; {blocks} blocks of "
                        f"{forget_chunks} need {need}: lower benchmark.forget_chunks or benchmark.blocks")  # fmt: skip
    retain = grounded_chunks(tokenizer, news.retain_qa, news.retain_texts, chunk_tokens, "retain")[:retain_chunks]
    if len(retain) < retain_chunks:
        used = {c.text for c in retain}
        rest = [t for t in news.retain_texts if not any(c in t for c in used)]
        extra = window_chunks(tokenizer, rest, retain_chunks - len(retain), chunk_tokens, "retain-window", seed)
        retain += extra
    if not any(c.qa for c in retain):
        raise DataError("no retain question is grounded in MUSE-News' retain texts: KnowMem retain would be empty")
    holdout = window_chunks(tokenizer, news.holdout_texts, holdout_chunks, chunk_tokens, "holdout", seed + 1)
    if len(holdout) < holdout_chunks:
        raise DataError(f"only {len(holdout)} holdout texts are {chunk_tokens} tokens long; {holdout_chunks} asked")
    return MuseMini(pool[:need], retain, holdout, news.forget_icl, news.retain_icl, forget_chunks)


def verbmem_items(tokenizer: PreTrainedTokenizerBase, chunks: list[Chunk]) -> list[tuple[str, str]]:
    """(prompt, true continuation) per chunk, in order: its first half of tokens and the rest."""
    out = []
    for c in chunks:
        offsets = tokenizer(c.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        half = len(offsets) // 2
        cut = offsets[half][0] if half else len(c.text)  # one item per chunk, however short
        out.append((c.text[:cut].rstrip(), c.text[cut:].strip()))
    return out
