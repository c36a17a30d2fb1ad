"""Membership attack on question-answer data: the loss attack's ROC - score = minus the answer's per-token NLL
(higher: more likely trained on) - forget pairs (members) against never-trained pairs. An AUC near 0.5 means the
forget answers look never seen; the AUC counts in either direction (a forget set made suspiciously UNlikely is
as visible as one still remembered). The memorization benchmark's membership attack is MIAU (metrics.mia:
LOSS, zlib, Min-K%, Min-K%++, neighbourhood, two-sided MA), run in its audit.

:func:`membership_attacks` adds OpenUnlearning's GradNorm attack and, given a reference model (e.g. the base
model before fine-tuning, or a retain-only model), its reference attack. OpenUnlearning signs its scores like a
loss (higher: less likely a member); here every score is negated so that higher means member, as everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from obliviate.attacks.spec import AttackSpec, register
from obliviate.metrics.answers import answer_nlls, encode_qa, logits_of
from obliviate.metrics.losses import sequence_nll
from obliviate.metrics.roc import roc_summary
from obliviate.metrics.uncertainty import auc_intervals

register(AttackSpec("membership", "can an attacker tell the forget set from never-seen data?",
                    frozenset({"memorization", "qa", "tofu", "associations", "muse-news"})))  # fmt: skip

Pairs = Sequence[tuple[str, str]]


def attack_summary(member_scores: np.ndarray, nonmember_scores: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """ROC summary (AUC, AUC either way, TPRs, curve) with bootstrap intervals of the AUC and the AUC either way
    (``auc_ci``, ``auc_either_ci``; ``seed`` seeds the resampling)."""
    ci = auc_intervals(member_scores, nonmember_scores, seed=seed)
    return roc_summary(member_scores, nonmember_scores) | {"auc_ci": ci["auc"], "auc_either_ci": ci["auc_either"]}


def membership_attack(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, members: Pairs, nonmembers: Pairs,
                      member_nlls: Sequence[float] | None = None, *, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """The loss attack's :func:`attack_summary`. ``member_nlls``: the members' NLLs when already computed."""
    return membership_attacks(model, tokenizer, members, nonmembers, member_nlls=member_nlls, gradnorm=False,
                              seed=seed)["loss"]  # fmt: skip


def without_last_target(target_mask: torch.Tensor) -> torch.Tensor:
    """``target_mask`` with each row's last target token unmarked (OpenUnlearning's token-wise log-probabilities
    leave out the last labelled token)."""
    positions = torch.arange(target_mask.shape[1], device=target_mask.device)
    last = torch.where(target_mask.bool(), positions, -1).max(dim=1).values
    return target_mask * (positions[None, :] != last[:, None]).to(target_mask.dtype)


def gradnorm_scores(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, pairs: Pairs, p: float = 2.0,
                    drop_last_token: bool = True) -> np.ndarray:  # fmt: skip
    """GradNorm per pair (OpenUnlearning's mia_gradnorm, negated): the answer's mean token NLL is backpropagated
    alone; score = minus the mean over parameters (those that get a gradient) of each gradient's p-norm (p: 1, 2
    or inf). ``drop_last_token``: the loss leaves out the last answer token, as OpenUnlearning's. The model's
    own gradients are left untouched; it runs in the mode it is in (OpenUnlearning switches to train mode: the
    same for models without dropout)."""
    if p not in (1, 2, float("inf")):
        raise ValueError(f"GradNorm's p must be 1, 2 or inf; got {p}")
    device = next(model.parameters()).device
    params = [param for param in model.parameters() if param.requires_grad]
    scores = np.zeros(len(pairs))
    for i, pair in enumerate(pairs):
        batch = encode_qa(tokenizer, [pair], device)
        mask = without_last_target(batch.target_mask) if drop_last_token else batch.target_mask
        with torch.enable_grad():
            loss = sequence_nll(logits_of(model, batch), batch.input_ids, mask)[0]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        norms = [grad.detach().float().norm(p=p) for grad in grads if grad is not None]
        scores[i] = -float(torch.stack(norms).mean())
    return scores


def reference_scores(model: torch.nn.Module, reference_model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                     pairs: Pairs, nlls: Sequence[float] | None = None) -> np.ndarray:  # fmt: skip
    """OpenUnlearning's reference attack, negated: the reference model's per-token answer NLL minus the target
    model's (every answer token counted, as its evaluate_probability; ``nlls``: the target's, when already
    computed). Higher: the target finds the answer likelier than the reference does."""
    own = answer_nlls(model, tokenizer, pairs) if nlls is None else np.asarray(nlls, dtype=float)
    return answer_nlls(reference_model, tokenizer, pairs) - own


def membership_attacks(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, members: Pairs, nonmembers: Pairs,
                       *, member_nlls: Sequence[float] | None = None, reference_model: torch.nn.Module | None = None,
                       gradnorm: bool = True, gradnorm_p: float = 2.0, drop_last_token: bool = True,
                       seed: int = 0) -> dict[str, dict[str, Any]]:  # fmt: skip
    """:func:`attack_summary` per attack: 'loss'; 'gradnorm' (one backward pass per pair; ``gradnorm=False``
    skips it; ``drop_last_token`` as in :func:`gradnorm_scores`); 'reference' when ``reference_model`` is given
    (an in-memory model sharing ``tokenizer``). ``member_nlls``: the members' answer NLLs when already computed."""
    nlls = (answer_nlls(model, tokenizer, members) if member_nlls is None else np.asarray(member_nlls, dtype=float),
            answer_nlls(model, tokenizer, nonmembers))  # fmt: skip
    out = {"loss": attack_summary(-nlls[0], -nlls[1], seed)}
    if gradnorm:
        out["gradnorm"] = attack_summary(*(gradnorm_scores(model, tokenizer, pairs, gradnorm_p, drop_last_token)
                                           for pairs in (members, nonmembers)), seed)  # fmt: skip
    if reference_model is not None:
        out["reference"] = attack_summary(*(reference_scores(model, reference_model, tokenizer, pairs, own)
                                            for pairs, own in zip((members, nonmembers), nlls)), seed)  # fmt: skip
    return out
