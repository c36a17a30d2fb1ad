"""Fine-grained targeted evaluation of cutting (subject, relation, object) associations.

- forget: accuracy on the held-out paraphrases of each association (never trained on);
- subject / object: accuracy on other facts about the subject and about the object;
- unrelated: accuracy on facts about neither;
- relearning: a few fine-tuning steps on half of the held-out paraphrases (true answers), then accuracy on the
  other half - how fast the association comes back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.membership import membership_attack
from obliviate.attacks.relearning import relearning_attack
from obliviate.config import TrainingConfig
from obliviate.metrics.answer_probes import Choice, frame_of, leak_at_k, multiple_choice, true_answer_logprob
from obliviate.models.generation import Sampling, chat_prompt, generate
from obliviate.unstar.antisamples import answer_target
from obliviate.unstar.associations import QA, Association
from obliviate.unstar.judge import AnyJudge

ANSWER = Sampling(max_new_tokens=32)


def evaluation_sets(associations: Sequence[Association], unrelated: Sequence[QA]) -> dict[str, list[tuple[str, QA]]]:
    """(association id or '-', fact) per evaluation set."""
    return {
        "forget": [(a.id, QA(q, a.answer)) for a in associations for q in a.heldout],
        "subject": [(a.id, f) for a in associations for f in a.subject_facts],
        "object": [(a.id, f) for a in associations for f in a.object_facts],
        "unrelated": [("-", f) for f in unrelated],
    }


@torch.no_grad()
def answer_accuracy(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, facts: Sequence[QA], judge: AnyJudge
) -> tuple[float, list[dict[str, Any]]]:
    """Share of facts whose greedy reply gives the answer, and each reply with its verdict."""
    if not facts:
        return float("nan"), []
    prompts = [chat_prompt(tokenizer, f.question) for f in facts]
    replies = [r[0] for r in generate(model, tokenizer, prompts, ANSWER, batch_size=32)]
    verdicts = judge.matches(replies, [f.answer for f in facts])
    items = [{"question": f.question, "answer": f.answer, "reply": r, "correct": bool(v)}
             for f, r, v in zip(facts, replies, verdicts)]  # fmt: skip
    return sum(verdicts) / len(verdicts), items


def targeted_evaluation(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    associations: Sequence[Association],
    unrelated: Sequence[QA],
    judge: AnyJudge,
) -> dict[str, Any]:
    """Accuracy on the four sets, overall and per association."""
    out: dict[str, Any] = {}
    for name, pairs in evaluation_sets(associations, unrelated).items():
        accuracy, items = answer_accuracy(model, tokenizer, [f for _, f in pairs], judge)
        per: dict[str, list[bool]] = {}
        for (aid, _), item in zip(pairs, items):
            item["association"] = aid
            per.setdefault(aid, []).append(item["correct"])
        out[name] = {
            "accuracy": accuracy, "n": len(items), "items": items,
            "per_association": {k: sum(v) / len(v) for k, v in per.items() if k != "-"},
        }  # fmt: skip
    return out


def relearning_check(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    associations: Sequence[Association],
    judge: AnyJudge,
    training: TrainingConfig,
    *,
    steps: int = 5,
    before_items: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The relearning attack on associations: fine-tune a copy for ``steps`` steps on the first half of each
    association's held-out paraphrases with the true answer; judged accuracy on the second half before and after.
    ``before_items``: the forget set's judged replies before unlearning (targeted_evaluation's items), for the
    share of what unlearning took from the second half that relearning gives back (``recovery``)."""
    first = [QA(q, a.answer) for a in associations for q in a.heldout[: len(a.heldout) // 2]]
    second = [QA(q, a.answer) for a in associations for q in a.heldout[len(a.heldout) // 2 :]]
    if not first or not second:
        return {"skipped": "the relearning check needs at least two held-out paraphrases per association"}
    pairs = [(f.question, answer_target(f.answer, None)) for f in first]
    held_back = {f.question for f in second}
    known = [i["correct"] for i in before_items if i["question"] in held_back]
    out = relearning_attack(model, tokenizer, pairs, lambda m: answer_accuracy(m, tokenizer, second, judge)[0],
                            steps=steps, learning_rate=training.learning_rate,
                            before_unlearning=sum(known) / len(known) if known else None,
                            batch_size=max(1, -(-len(pairs) // steps)))  # fmt: skip
    return {**out, "measured_on": len(second)}


def association_probes(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                       associations: Sequence[Association], judge: AnyJudge, *, leak_k: int, seed: int = 0,
                       unknown: Sequence[QA] = (),
                       frames: dict[str, str | None] | None = None) -> dict[str, Any]:  # fmt: skip
    """On the held-out paraphrases: multiple choice against each association's distractors (by answer
    likelihood), leak@k at temperature 1 (``leak_k`` 0: skipped), the true answer's log-probability and, with
    ``unknown`` facts (ones the model never knew), the membership attack on it: held-out paraphrases (members)
    against those facts, AUC either way with a bootstrap interval - a forgotten fact should look never known,
    neither more likely (still known) nor less (over-unlearned). ``frames``: per held-out question the start of
    the model's reply before unlearning up to the answer (``frame_of``), in which the answers are scored; the
    membership attack scores bare answers on both sides (never-known facts have no such frame)."""
    facts = [(q, a.answer) for a in associations for q in a.heldout]
    framed = [(frames or {}).get(q) for q, _ in facts]
    choices = [Choice(q, a.answer, a.distractors, (frames or {}).get(q)) for a in associations for q in a.heldout]
    out: dict[str, Any] = {"answer_logprob": true_answer_logprob(model, tokenizer, facts, framed)}
    if unknown and facts:
        roc = membership_attack(model, tokenizer, facts, [(f.question, f.answer) for f in unknown], seed=seed)
        out["membership"] = {k: v for k, v in roc.items() if k != "curve"}
    if any(c.distractors for c in choices):  # associations without distractors have no multiple choice
        out["multiple_choice"] = multiple_choice(model, tokenizer, choices)
    if leak_k:
        out["leak_at_k"] = leak_at_k(model, tokenizer, facts, judge, k=leak_k, seed=seed)
    return out


def probe_rows(probes: dict[str, Any]) -> list[list[str]]:
    """Rows (probe, before, after, note) of the probes before and after unlearning."""
    before, after = probes["before"], probes["after"]
    rows = []
    if "multiple_choice" in before:
        mc_b, mc_a = before["multiple_choice"], after["multiple_choice"]
        rows.append(["multiple choice accuracy (true answer vs distractors, by likelihood in the model's own reply "
                     "frame)", f"{mc_b['accuracy']:.3f}",
                     f"{mc_a['accuracy']:.3f}", f"chance {mc_b['chance']:.3f}, {mc_b['n']} questions"])  # fmt: skip
    rows.append(["true answer log-probability (in the reply frame)", f"{before['answer_logprob']['mean']:.3f}",
                 f"{after['answer_logprob']['mean']:.3f}", f"{before['answer_logprob']['n']} questions"])  # fmt: skip
    if "leak_at_k" in before:
        k = before["leak_at_k"]["k"]
        rows.append([f"leak@{k} (any of {k} replies at temperature 1 gives the answer)",
                     f"{before['leak_at_k']['leak']:.3f}", f"{after['leak_at_k']['leak']:.3f}",
                     f"share of sampled replies correct {before['leak_at_k']['mean_hit_rate']:.3f} -> "
                     f"{after['leak_at_k']['mean_hit_rate']:.3f}"])  # fmt: skip
    if "membership" in before:
        mb, ma = before["membership"], after["membership"]
        ci = ma["auc_either_ci"]
        rows.append(["membership: true answer likelihood vs facts never known, AUC either way [95% CI]",
                     f"{mb['auc_either']:.3f} ({mb['direction']})",
                     f"{ma['auc_either']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}] ({ma['direction']})",
                     f"members {ma['direction']} than never-known facts; {ma['n_members']} vs "
                     f"{ma['n_nonmembers']}"])  # fmt: skip
    return rows


def reply_frames(items: Sequence[dict[str, Any]]) -> dict[str, str | None]:
    """Per question of targeted_evaluation's items, the start of its reply up to the true answer (None where the
    reply does not give it)."""
    return {i["question"]: frame_of(i["reply"], i["answer"]) for i in items}
