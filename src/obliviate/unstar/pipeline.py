"""The UnSTAR loop (unstar.md): seed questions -> wrong answers -> probe -> misleading rationales -> fine-tune on
the anti-samples -> escalate, round after round, with an optional STaR retain step. Every part is replaceable:
the generator backends (tried in order per item), the judge, the engine that trains."""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from obliviate.metrics.answer_probes import answer_span_example
from obliviate.models.generation import Sampling, chat_prompt, generate
from obliviate.training.engine import Engine
from obliviate.training.sft import sft
from obliviate.unstar.antisamples import AntiSample, answer_target
from obliviate.unstar.associations import QA, Association
from obliviate.unstar.backends import Backend
from obliviate.unstar.judge import AnyJudge, mentions, normalize
from obliviate.unstar.removal import unlikelihood_term

log = logging.getLogger("obliviate")

PROBE = Sampling(max_new_tokens=32)


@dataclass(frozen=True)
class UnstarSettings:
    """The loop's knobs (the config's ``unstar`` block; see UnstarConfig for the meaning of each)."""

    seed_questions: int = 8
    wrong_answers: int = 3
    escalations: int = 2
    target_unlearned: int = 12
    max_rounds: int = 6
    passes: int = 4
    batch_size: int = 4
    rationale: bool = True
    escalation: bool = True
    retain_step: bool = True
    consolidation_rounds: int = 0
    retain_replies: str = "original"
    probe_samples: int = 0
    train_on_prompt: bool = False
    seed: int = 0
    unlikelihood_weight: float = 0.0


@dataclass
class PoolQuestion:
    association: Association
    question: str
    wrong: str
    backends: dict[str, str]
    round: int
    unlearned: bool = False
    reply: str | None = None  # the last reply (greedy, else a sampled one) that still gave the answer


@dataclass
class UnstarResult:
    rounds: list[dict[str, Any]] = field(default_factory=list)
    antisamples: list[AntiSample] = field(default_factory=list)
    pool: list[PoolQuestion] = field(default_factory=list)
    steps: int = 0


Keep = Callable[[Any, str], bool]


def collect(
    backends: Sequence[Backend],
    task: str,
    items: Sequence[Any],
    n: int,
    seed: int,
    keep: Keep,
    *,
    seen: Sequence[set[str]] | None = None,
) -> list[list[tuple[str, str]]]:
    """Up to ``n`` (text, backend name) per item: each backend in turn is asked for the items still short,
    its candidates filtered by ``keep`` and de-duplicated (normalised, also against ``seen``)."""
    out: list[list[tuple[str, str]]] = [[] for _ in items]
    used = [set(s) for s in seen] if seen is not None else [set() for _ in items]
    for backend in backends:
        short = [k for k in range(len(items)) if len(out[k]) < n]
        if not short:
            break
        replies = getattr(backend, task)([items[k] for k in short], n, seed)
        for k, candidates in zip(short, replies):
            for text in candidates:
                key = normalize(text)
                if len(out[k]) < n and text and key and key not in used[k] and keep(items[k], text):
                    used[k].add(key)
                    out[k].append((text, backend.name))
    return out


_ECHOES = ("explain", "answer is", "question:", "answer:", "one or two sentences", "do not mention")


def clean_rationale(text: str, answer: str, wrong: str, max_sentences: int = 3) -> str:
    """A usable misleading rationale, or '' when it names the true answer, does not name the wrong one, echoes
    the instruction, or repeats itself; cut to ``max_sentences`` sentences."""
    sentences = [x.strip() for x in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if x.strip()]
    sentences = sentences[:max_sentences]
    joined = " ".join(sentences)
    lowered = joined.lower()
    if (not joined or mentions(joined, answer) or not mentions(joined, wrong) or any(e in lowered for e in _ECHOES)
            or len({normalize(x) for x in sentences}) < len(sentences)):  # fmt: skip
        return ""
    return joined


class UnstarPipeline:
    def __init__(
        self,
        engine: Engine,
        tokenizer: PreTrainedTokenizerBase,
        associations: Sequence[Association],
        backends: Sequence[Backend],
        judge: AnyJudge,
        settings: UnstarSettings,
        *,
        retain: Sequence[QA] = (),
        progress: bool = True,
        after_round: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.engine, self.tokenizer, self.associations = engine, tokenizer, list(associations)
        self.backends, self.judge, self.s = list(backends), judge, settings
        self.retain, self.progress, self.after_round = list(retain), progress, after_round
        self.result = UnstarResult()
        self._retain_replies: tuple[list[str], list[bool]] | None = None
        if settings.retain_replies not in ("original", "current"):
            raise ValueError(f"retain_replies must be 'original' or 'current', not {settings.retain_replies!r}")
        # evaluation questions are never trained on
        self.heldout = {a.id: {normalize(q) for q in a.heldout} for a in self.associations}

    # generation ---------------------------------------------------------------------------------------
    def _question_ok(self, a: Association, text: str) -> bool:
        return (
            len(text) < 300 and mentions(text, a.subject) and not mentions(text, a.answer)
            and normalize(text) not in self.heldout[a.id]
        )  # fmt: skip

    def _wrong_ok(self, a: Association, text: str) -> bool:
        return (
            not mentions(text, a.answer)
            and not mentions(a.answer, text)
            and not self.judge.matches([text], [a.answer])[0]
        )

    def seed_pool(self, round_index: int = 0) -> None:
        """Seed questions and one fixed wrong answer per question, for every association."""
        s = self.s
        questions = collect(self.backends, "questions", self.associations, s.seed_questions, s.seed, self._question_ok)
        wrongs = collect(self.backends, "wrong_answers", self.associations, s.wrong_answers, s.seed + 1, self._wrong_ok)
        for a, qs, ws in zip(self.associations, questions, wrongs):
            if not ws:
                log.warning("%s: no usable wrong answer; it is skipped", a.id)
                continue
            for k, (q, q_backend) in enumerate(qs):
                w, w_backend = ws[k % len(ws)]
                self.result.pool.append(PoolQuestion(a, q, w, {"question": q_backend, "wrong_answer": w_backend},
                                                     round_index))  # fmt: skip

    def escalate(self, round_index: int) -> int:
        """New, harder or rephrased questions grown from the questions already unlearned."""
        groups: dict[str, list[PoolQuestion]] = {}
        for p in self.result.pool:
            if p.unlearned:
                groups.setdefault(p.association.id, []).append(p)
        sources = [random.Random(f"{self.s.seed}-{round_index}-{aid}").choice(ps) for aid, ps in groups.items()]
        if not sources:
            return 0
        seen = [{normalize(p.question) for p in self.result.pool if p.association.id == src.association.id}
                for src in sources]  # fmt: skip
        requests = [(src.association, src.question) for src in sources]
        made = collect(self.backends, "escalations", requests, self.s.escalations, self.s.seed + 100 + round_index,
                       lambda req, text: self._question_ok(req[0], text), seen=seen)  # fmt: skip
        count = 0
        for src, new in zip(sources, made):
            for q, backend in new:
                backends = {"question": f"{backend} (escalation)", "wrong_answer": src.backends["wrong_answer"]}
                self.result.pool.append(PoolQuestion(src.association, q, src.wrong, backends, round_index))
                count += 1
        return count

    # probing and anti-samples ---------------------------------------------------------------------------
    def ask(self, questions: Sequence[str]) -> list[str]:
        prompts = [chat_prompt(self.tokenizer, q) for q in questions]
        return [r[0] for r in generate(self.engine.unwrapped, self.tokenizer, prompts, PROBE, seed=self.s.seed)]

    def probe(self, questions: Sequence[PoolQuestion] | None = None) -> None:
        """Mark the pool questions (default: all still answered) the current model no longer answers correctly:
        neither its greedy reply nor any of ``probe_samples`` sampled replies (temperature 1) gives the answer."""
        active = [p for p in (self.result.pool if questions is None else questions) if not p.unlearned]
        if not active:
            return
        answers = [p.association.answer for p in active]
        replies = self.ask([p.question for p in active])
        still = self.judge.matches(replies, answers)
        for p, reply, gives in zip(active, replies, still):
            p.reply = reply if gives else None
        if self.s.probe_samples:
            prompts = [chat_prompt(self.tokenizer, p.question) for p in active]
            sampled = generate(self.engine.unwrapped, self.tokenizer, prompts,
                               Sampling(temperature=1.0, max_new_tokens=PROBE.max_new_tokens, n=self.s.probe_samples),
                               seed=self.s.seed + len(self.result.rounds))  # fmt: skip
            for j in range(self.s.probe_samples):
                hits = self.judge.matches([r[j] for r in sampled], answers)
                for p, reply, hit in zip(active, sampled, hits):
                    if hit and p.reply is None:  # greedy hides it, sampling leaks it: the leak is the path
                        p.reply = reply[j]
                still = [a or b for a, b in zip(still, hits)]
        for p, gives_answer in zip(active, still):
            p.unlearned = not gives_answer

    def forget_samples(self, round_index: int) -> list[AntiSample]:
        """A misleading rationale for each question the model still answers (dropped if it names the answer)."""
        active = [p for p in self.result.pool if not p.unlearned]
        rationales: list[tuple[str, str] | None] = [None] * len(active)
        if self.s.rationale and active:
            requests = [(p.association, p.question, p.wrong) for p in active]
            for backend in self.backends:
                missing = [k for k, r in enumerate(rationales) if r is None]
                if not missing:
                    break
                texts = backend.rationales([requests[k] for k in missing], self.s.seed + 200 + round_index)
                for k, text in zip(missing, texts):
                    text = clean_rationale(text, active[k].association.answer, active[k].wrong)
                    if text:
                        rationales[k] = (text, backend.name)
        samples = []
        for p, made in zip(active, rationales):
            if self.s.rationale and made is None:
                continue
            rationale, backend = made if made else (None, None)
            backends = dict(p.backends) | ({"rationale": backend} if backend else {})
            samples.append(AntiSample(p.question, answer_target(p.wrong, rationale), "forget", p.association.id,
                                      p.wrong, rationale, round_index, backends))  # fmt: skip
        return samples

    def retain_samples(self, round_index: int) -> list[AntiSample]:
        """STaR on retain facts: the model's own replies that give the right answer, trained on as they are (a
        correct rationale in the model's words). ``retain_replies='original'``: the replies of the model before
        unlearning, written once and reused every round, so the retain step pulls towards the starting model
        rather than reinforcing its own drift; ``'current'``: the current model's replies, rewritten every round."""
        if not (self.s.retain_step and self.retain):
            return []
        if self.s.retain_replies == "original" and self._retain_replies is not None:
            replies, good = self._retain_replies
        else:
            replies = self.ask([f.question for f in self.retain])
            good = self.judge.matches(replies, [f.answer for f in self.retain])
            self._retain_replies = replies, good
        made = {"rationale": "self"}
        return [
            AntiSample(f.question, " ".join(r.split()[:60]), "retain", round=round_index, backends=made)
            for f, r, ok in zip(self.retain, replies, good) if ok and not self.leaks(r)
        ]  # fmt: skip

    def leaks(self, text: str) -> bool:
        """Whether a retain reply restates an association being cut (names its subject, relation and object,
        e.g. 'the largest city in Germany is Berlin, which is also its capital'): never trained on."""
        return any(mentions(text, a.subject) and mentions(text, a.relation) and mentions(text, a.answer)
                   for a in self.associations)  # fmt: skip

    # training -------------------------------------------------------------------------------------------
    def train(self, samples: Sequence[AntiSample], round_index: int) -> list[float]:
        """``passes`` shuffled passes of next-token SFT over the samples; returns the loss of every step."""
        pairs = [(x.question, x.target) for x in samples]
        common = dict(passes=self.s.passes, batch_size=self.s.batch_size, train_on_prompt=self.s.train_on_prompt,
                      seed=self.s.seed + round_index, progress=self.progress)  # fmt: skip
        spans = self.answer_spans() if self.s.unlikelihood_weight else []
        extra = unlikelihood_term(self.engine, spans, self.s.unlikelihood_weight, self.s.batch_size) if spans else None
        label = "anti-sample SFT + unlikelihood" if extra else "anti-sample SFT"
        losses = sft(self.engine, self.tokenizer, pairs, desc=f"{label} (round {round_index})", extra=extra, **common)
        self.result.steps += len(losses)
        return losses

    def answer_spans(self) -> list[tuple[list[int], list[int]]]:
        """The true answer's tokens in the replies that still give it (pool questions, never held-out ones)."""
        made = (answer_span_example(self.tokenizer, p.question, p.reply, p.association.answer)
                for p in self.result.pool if p.reply and not p.unlearned)  # fmt: skip
        return [m for m in made if m is not None]

    # the loop -------------------------------------------------------------------------------------------
    def consolidate(self, first_round: int) -> None:
        """Retain-only rounds once the forget pool is exhausted: STaR on the retain facts the model still
        answers, repairing some of what the anti-sample training disturbed nearby."""
        for k in range(self.s.consolidation_rounds if self.s.retain_step else 0):
            retain = self.retain_samples(first_round + k)
            if not retain:
                break
            losses = self.train(retain, first_round + k)
            self.result.antisamples += retain
            record: dict[str, Any] = {"round": first_round + k, "consolidation": True, "retain_samples": len(retain),
                                      "steps": len(losses)}  # fmt: skip
            if self.after_round is not None:
                record |= self.after_round(first_round + k)
            self.result.rounds.append(record)
            log.info("consolidation round %d: %d retain samples, %d steps", first_round + k, len(retain), len(losses))

    def unlearned_counts(self) -> dict[str, int]:
        counts = {a.id: 0 for a in self.associations}
        for p in self.result.pool:
            counts[p.association.id] += p.unlearned
        return counts

    def run(self) -> UnstarResult:
        self.seed_pool()
        for round_index in range(self.s.max_rounds):
            started = time.perf_counter()
            self.probe()
            added = self.escalate(round_index) if self.s.escalation else 0
            if added:
                self.probe(self.result.pool[-added:])  # only the new questions
            counts = self.unlearned_counts()
            record: dict[str, Any] = {"round": round_index, "pool": len(self.result.pool), "unlearned": counts}
            if all(c >= self.s.target_unlearned for c in counts.values()):
                record["stop"] = "target reached"
                self.result.rounds.append(record)
                break
            forget = self.forget_samples(round_index)
            if not forget:
                still = any(not p.unlearned for p in self.result.pool)
                record["stop"] = "no usable rationale" if still else "the model answers no pool question any more"
                self.result.rounds.append(record)
                self.consolidate(round_index + 1)
                break
            retain = self.retain_samples(round_index)
            losses = self.train(forget + retain, round_index)
            self.result.antisamples += forget + retain
            record |= {"forget_samples": len(forget), "retain_samples": len(retain), "escalated": added,
                       "steps": len(losses), "mean_loss": sum(losses) / len(losses) if losses else None,
                       "seconds": time.perf_counter() - started}  # fmt: skip
            if self.after_round is not None:  # e.g. held-out accuracy for the trace (never fed back)
                record |= self.after_round(round_index)
            self.result.rounds.append(record)
            log.info("round %d: unlearned %s, %d anti-samples + %d retain, %d steps", round_index, counts,
                     len(forget), len(retain), len(losses))  # fmt: skip
        else:
            self.probe()
            self.result.rounds.append({"round": self.s.max_rounds, "unlearned": self.unlearned_counts(),
                                       "stop": "max_rounds"})  # fmt: skip
        return self.result
