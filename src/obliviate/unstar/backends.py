"""Who writes UnSTAR's questions, wrong answers, rationales and escalations.

Every backend offers the same four tasks. :class:`ChatBackend` asks a chat model - the model being unlearned
(self-taught, the default), another local model, or an OpenAI-compatible endpoint - with sampling, and returns
raw candidates; the pipeline filters them and, per item, falls back to the next backend (by default the
deterministic :class:`TemplateBackend`) when too few survive. Each kept item records the backend's name."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.errors import ConfigError, ObliviateError
from obliviate.models.generation import Sampling, chat_prompt, first_line, generate
from obliviate.unstar.associations import Association
from obliviate.unstar.judge import normalize

log = logging.getLogger("obliviate")


class ChatModel(Protocol):
    name: str

    def complete(self, prompts: Sequence[str], sampling: Sampling, seed: int) -> list[list[str]]:
        """``sampling.n`` replies to each user message."""
        ...


class LocalChatModel:
    """A local Hugging Face model; with ``name='self'`` it is the model being unlearned (it sees the current
    weights, so questions and rationales come from the model as it is at that round)."""

    def __init__(self, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str = "self",
                 batch_size: int = 32) -> None:  # fmt: skip
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, name, batch_size

    def complete(self, prompts: Sequence[str], sampling: Sampling, seed: int) -> list[list[str]]:
        formatted = [chat_prompt(self.tokenizer, p) for p in prompts]
        return generate(self.model, self.tokenizer, formatted, sampling, batch_size=self.batch_size, seed=seed)


class OpenAIChatModel:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, llama.cpp server, OpenAI, ...).

    The key comes from ``api_key`` or the environment variable ``api_key_env``; ``n`` replies are asked for
    in one request, and topped up with more requests when a server returns fewer."""

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0) -> None:  # fmt: skip
        import httpx

        self.model = model
        key = api_key or os.environ.get(api_key_env)
        if not key:
            log.warning("no API key: the environment variable %s is not set, so requests to the endpoint go out "
                        "without an Authorization header", api_key_env)  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def _ask(self, prompt: str, sampling: Sampling, n: int, seed: int) -> list[str]:
        import httpx

        body = {
            "model": self.model, "messages": [{"role": "user", "content": prompt}], "n": n,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_new_tokens,
            "seed": seed,
        }  # fmt: skip
        try:
            response = self.client.post("/chat/completions", json=body)
            response.raise_for_status()
            choices = response.json()["choices"]
            return [str(c["message"]["content"]).strip() for c in choices]
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            raise ObliviateError(f"chat endpoint {self.client.base_url} failed: {exc}") from None

    def complete(self, prompts: Sequence[str], sampling: Sampling, seed: int) -> list[list[str]]:
        out = []
        for k, prompt in enumerate(prompts):
            replies: list[str] = []
            while len(replies) < sampling.n:
                replies += self._ask(prompt, sampling, sampling.n - len(replies), seed + 7919 * k + len(replies))
            out.append(replies[: sampling.n])
        return out


class FallingBack:
    """A backend whose failure does not stop the run (``fallback: true``): the first error is said once, and from
    then on it returns no candidates, so every item falls through to the next backend (the template one)."""

    def __init__(self, inner: Backend) -> None:
        self.inner, self.name = inner, inner.name
        self.error: str | None = None

    def _ask(self, task: str, items: Sequence, empty: list, *args) -> list:
        if self.error is None:
            try:
                return getattr(self.inner, task)(items, *args)
            except ObliviateError as exc:
                self.error = str(exc)
                log.warning("the %s generator failed (%s); the template backend writes every item from now on",
                            self.name, exc)  # fmt: skip
        return empty

    def questions(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        return self._ask("questions", items, [[] for _ in items], n, seed)

    def wrong_answers(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        return self._ask("wrong_answers", items, [[] for _ in items], n, seed)

    def rationales(self, requests: Sequence[tuple[Association, str, str]], seed: int) -> list[str]:
        return self._ask("rationales", requests, ["" for _ in requests], seed)

    def escalations(self, requests: Sequence[tuple[Association, str]], n: int, seed: int) -> list[list[str]]:
        return self._ask("escalations", requests, [[] for _ in requests], n, seed)


class Backend(Protocol):
    name: str

    def questions(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]: ...
    def wrong_answers(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]: ...
    def rationales(self, requests: Sequence[tuple[Association, str, str]], seed: int) -> list[str]: ...
    def escalations(self, requests: Sequence[tuple[Association, str]], n: int, seed: int) -> list[list[str]]: ...


def _short(text: str, max_words: int) -> str:
    """A generated answer cut to its first line, without a trailing full stop or quotes; '' when too long."""
    line = first_line(text).strip().strip("\"'*").rstrip(".!").strip()
    for lead in ("The answer is ", "Answer: ", "A: "):
        if line.startswith(lead):
            line = line[len(lead) :]
    return line if 0 < len(line.split()) <= max_words else ""


class ChatBackend:
    """The four tasks as prompts to a chat model (sampled, so a small model still gives varied candidates)."""

    def __init__(self, chat: ChatModel, *, temperature: float = 0.9, max_rationale_tokens: int = 64) -> None:
        self.chat, self.name = chat, chat.name
        self.temperature, self.max_rationale_tokens = temperature, max_rationale_tokens

    def questions(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        prompts = [
            f"Write one short question about {a.subject} whose answer is {a.answer}. "
            f"Do not write the answer. Reply with the question only." for a in items
        ]  # fmt: skip
        replies = self.chat.complete(prompts, Sampling(self.temperature, max_new_tokens=40, n=n), seed)
        return [[first_line(r) for r in group] for group in replies]

    def wrong_answers(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        prompts = [
            f"Name one {a.answer_type} that could be mistaken for {a.answer} but is not {a.answer}. "
            "Reply with the name only." for a in items
        ]  # fmt: skip
        replies = self.chat.complete(prompts, Sampling(max(self.temperature, 1.0), max_new_tokens=12, n=n), seed)
        return [[_short(r, 5) for r in group] for group in replies]

    def rationales(self, requests: Sequence[tuple[Association, str, str]], seed: int) -> list[str]:
        prompts = [
            f"Question: {question}\nAnswer: {wrong}\nIn one or two sentences, explain why the answer is {wrong}. "
            f"Do not mention {a.answer}." for a, question, wrong in requests
        ]  # fmt: skip
        sampling = Sampling(0.7, max_new_tokens=self.max_rationale_tokens)
        return [group[0] for group in self.chat.complete(prompts, sampling, seed)]

    def escalations(self, requests: Sequence[tuple[Association, str]], n: int, seed: int) -> list[list[str]]:
        prompts = [
            f"Rewrite this question so that it is harder or more direct, keeping its meaning: {question}\n"
            "Reply with the new question only." for _, question in requests
        ]  # fmt: skip
        temperature = random.Random(seed).uniform(0.0, 1.3)  # the authors draw it from [0, 1.3]
        replies = self.chat.complete(prompts, Sampling(temperature, max_new_tokens=40, n=n), seed)
        return [[first_line(r) for r in group] for group in replies]


_QUESTION_TEMPLATES = (
    "What is the {relation} of {subject}?",
    "Which {type} is the {relation} of {subject}?",
    "Name the {relation} of {subject}.",
    "Tell me the {relation} of {subject}.",
    "What do we call the {relation} of {subject}?",
    "Can you tell me the {relation} of {subject}?",
    "I need the {relation} of {subject}. What is it?",
    "Quick question: what is the {relation} of {subject}?",
    "{subject}: what is its {relation}?",
    "Do you know the {relation} of {subject}?",
)
_ESCALATION_TEMPLATES = (
    "Answer directly: {question}",
    "In one word: {question}",
    "Be precise. {question}",
    "Without any explanation, {lower}",
    "I am quizzing you. {question}",
    "Think carefully: {question}",
)
_TYPE_POOLS = {
    "city": ["Lyon", "Marseille", "Osaka", "Kyoto", "Milan", "Naples", "Munich", "Hamburg", "Barcelona", "Porto",
             "Manchester", "Toronto", "Sydney", "Chicago", "Istanbul", "Geneva", "Vienna", "Prague"],
    "country": ["Spain", "Portugal", "Belgium", "Austria", "Norway", "Sweden", "Greece", "Poland", "Chile", "Peru"],
    "person": ["Christopher Marlowe", "Ben Jonson", "Charles Dickens", "Jane Austen", "Mark Twain", "Leo Tolstoy",
               "Victor Hugo", "Homer", "Dante Alighieri", "Geoffrey Chaucer", "John Milton", "Oscar Wilde"],
}  # fmt: skip


class TemplateBackend:
    """Deterministic: template paraphrases; wrong answers from the association's own ``distractors``, then
    same-type answers of the other associations and built-in pools; a one-sentence rationale."""

    name = "template"

    def __init__(self, associations: Sequence[Association] = ()) -> None:
        self.pool: dict[str, list[str]] = {t: list(v) for t, v in _TYPE_POOLS.items()}
        for a in associations:
            self.pool.setdefault(a.answer_type, [])
            if a.answer not in self.pool[a.answer_type]:
                self.pool[a.answer_type].insert(0, a.answer)

    def questions(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        out = []
        for a in items:
            filled = [t.format(relation=a.relation or "answer", subject=a.subject, type=a.answer_type)
                      for t in _QUESTION_TEMPLATES]  # fmt: skip
            random.Random(f"{seed}-{a.id}").shuffle(filled)
            out.append(filled[:n])
        return out

    def wrong_answers(self, items: Sequence[Association], n: int, seed: int) -> list[list[str]]:
        out = []
        for a in items:
            pool = [c for c in self.pool.get(a.answer_type, []) if normalize(c) != normalize(a.answer)]
            if not (pool or a.distractors):
                raise ConfigError(f"no same-type wrong answers for {a.id!r} (answer_type {a.answer_type!r})")
            random.Random(f"{seed}-{a.id}").shuffle(pool)
            own = [d for d in a.distractors if normalize(d) != normalize(a.answer)]  # the record's own, first
            out.append([*own, *(c for c in pool if c not in own)][:n])
        return out

    def rationales(self, requests: Sequence[tuple[Association, str, str]], seed: int) -> list[str]:
        return [f"The {a.relation or 'answer'} of {a.subject} is {wrong}." for a, _, wrong in requests]

    def escalations(self, requests: Sequence[tuple[Association, str]], n: int, seed: int) -> list[list[str]]:
        out = []
        for k, (_, question) in enumerate(requests):
            lower = question[:1].lower() + question[1:]
            filled = [t.format(question=question, lower=lower) for t in _ESCALATION_TEMPLATES]
            random.Random(f"{seed}-{k}").shuffle(filled)
            out.append(filled[:n])
        return out
