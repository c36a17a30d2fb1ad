"""The shared attacks on a muse-news run, measured with MUSE's VerbMem: relearning (a few steps on the first half
of the forget chunks, VerbMem on the other half) and quantization (VerbMem of 8 / 4-bit copies); and MUSE's
PrivLeak read from the per-sequence audit's Min-K% AUCs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from obliviate.attacks.quantization import quantization_attack
from obliviate.attacks.relearning import relearning_on_texts
from obliviate.metrics.tokens import encode_windows
from obliviate.models import LoadedModel
from obliviate.muse.metrics import muse_privleak, verbmem
from obliviate.muse.scores import verbmem_tokens
from obliviate.muse.testbed import verbmem_items

MIN_K = "mink"  # the audit's name of the Min-K% score


def privleak_min_k(metrics: dict[str, Any], when: str = "after") -> float | None:
    """MUSE's PrivLeak (its sign, :func:`muse_privleak`) of the model ``when`` ('before': the starting model,
    'after': the unlearned one) on the Min-K% attack, against the retain-only model's AUC (None without one)."""
    gold = (metrics.get("gold_standard") or {}).get("auc_retain_only") or {}
    if MIN_K not in gold:
        return None
    return muse_privleak(metrics[when]["miau"][MIN_K]["auc"], gold[MIN_K])


def muse_attacks(unlearned: LoadedModel, prepared: Any, before: dict[str, Any], after: dict[str, Any], b: Any,
                 learning_rate: float, seed: int) -> dict[str, Any]:  # fmt: skip
    tok, tokens = unlearned.tokenizer, verbmem_tokens(prepared)
    out: dict[str, Any] = {}
    half = len(prepared.forget) // 2
    if b.relearn_steps and not half:
        out["relearning"] = {"skipped": "one forget chunk: nothing to hold back"}
    elif b.relearn_steps:
        train, held = prepared.forget[:half], prepared.forget[half:]
        items = verbmem_items(tok, held)

        def held_verbmem(model: torch.nn.Module) -> float:
            return float(verbmem(model, tok, items, max_new_tokens=tokens)["mean"])

        def held_mean(scores: dict[str, Any]) -> float:
            return float(np.mean(scores["verbmem"]["values"][half:]))

        windows = encode_windows(tok, [c.text for c in train], prepared.chunk_tokens + 8)
        out["relearning"] = relearning_on_texts(
            unlearned.model, tok.pad_token_id, windows, held_verbmem, steps=b.relearn_steps,
            learning_rate=learning_rate, before=held_mean(after), before_unlearning=held_mean(before), seed=seed,
        )  # fmt: skip
    if b.quantization_bits:
        items = verbmem_items(tok, prepared.forget)
        out["quantization"] = quantization_attack(
            unlearned.model, lambda m: float(verbmem(m, tok, items, max_new_tokens=tokens)["mean"]),
            b.quantization_bits)  # fmt: skip
    return out
