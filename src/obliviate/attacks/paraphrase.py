"""Paraphrase attack: ask the forget questions in other words. Unlearning that only learned to refuse the exact
wording leaves the paraphrased questions answered: the answers' probability and ROUGE-L recall of greedy replies.
(On the associations benchmark the forget set itself is held-out paraphrases, so every result there is one.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.spec import AttackSpec, register
from obliviate.metrics.answers import answer_probability_of, rouge_l_recall
from obliviate.models.generation import GREEDY, chat_prompt, generate

register(AttackSpec("paraphrase", "are the forget facts still answered when asked in other words?",
                    frozenset({"qa", "tofu"})))  # fmt: skip


def paraphrase_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    """(paraphrased question, true answer) pairs: the answers' probability and the replies' ROUGE-L recall."""
    if not pairs:
        return {"skipped": "no paraphrased questions"}
    replies = [r[0] for r in generate(model, tokenizer, [chat_prompt(tokenizer, q) for q, _ in pairs], GREEDY)]
    return {"n": len(pairs), "probability": answer_probability_of(model, tokenizer, pairs),
            "rouge_l_recall": rouge_l_recall(replies, [a for _, a in pairs])}  # fmt: skip
