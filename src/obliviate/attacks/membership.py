"""Membership attack on question-answer data: the loss attack's ROC - score = minus the answer's per-token NLL
(higher: more likely trained on) - forget pairs (members) against never-trained pairs. An AUC near 0.5 means the
forget answers look never seen; the AUC counts in either direction (a forget set made suspiciously UNlikely is
as visible as one still remembered). The memorization benchmark's membership attack is MIAU (metrics.mia:
LOSS, zlib, Min-K%, Min-K%++, neighbourhood, two-sided MA), run in its audit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.spec import AttackSpec, register
from obliviate.metrics.answers import answer_nlls
from obliviate.metrics.roc import roc_summary
from obliviate.metrics.uncertainty import auc_intervals

register(AttackSpec("membership", "can an attacker tell the forget set from never-seen data?",
                    frozenset({"memorization", "qa", "tofu", "associations", "muse-news"})))  # fmt: skip


def membership_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, members: Sequence[tuple[str, str]],
                      nonmembers: Sequence[tuple[str, str]], member_nlls: Sequence[float] | None = None, *,
                      seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """ROC of the loss attack with bootstrap intervals of its AUC and AUC either way (``auc_ci``,
    ``auc_either_ci``; ``seed`` seeds the resampling). ``member_nlls``: the members' NLLs when already computed."""
    member = answer_nlls(model, tokenizer, members) if member_nlls is None else np.asarray(member_nlls, dtype=float)
    nonmember = answer_nlls(model, tokenizer, nonmembers)
    ci = auc_intervals(-member, -nonmember, seed=seed)
    return roc_summary(-member, -nonmember) | {"auc_ci": ci["auc"], "auc_either_ci": ci["auc_either"]}
