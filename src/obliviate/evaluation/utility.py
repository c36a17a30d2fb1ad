"""Model utility: zero-shot multiple choice by summed log-likelihood (lm-evaluation-harness' ``acc``) and
perplexity on never-seen text.

Multiple-choice files are JSON lines in the llm-foundry local-data formats: ``{query, choices, gold}`` (PIQA,
ARC, COPA, OpenBookQA, MathQA, BoolQ) or ``{context_options, continuation, gold}`` (WinoGrande: the shared
continuation is scored after each context). ``limit`` takes a fixed seeded subset."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from obliviate.config import UtilityConfig
from obliviate.errors import DataError
from obliviate.metrics.losses import token_nll
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.tokens import length_sorted_batches, right_pad
from obliviate.models import LoadedModel

log = logging.getLogger("obliviate")


@dataclass(frozen=True)
class MultipleChoiceItem:
    contexts: tuple[str, ...]  # one per choice
    continuations: tuple[str, ...]  # one per choice
    gold: int


def _item(record: dict[str, Any], where: str) -> MultipleChoiceItem:
    try:
        if "context_options" in record:
            contexts = tuple(record["context_options"])
            continuations = (record["continuation"],) * len(contexts)
        else:
            continuations = tuple(record["choices"])
            contexts = (record["query"],) * len(continuations)
        gold = int(record["gold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: not a multiple-choice record ({exc!r})") from None
    if not 0 <= gold < len(contexts) or len(contexts) < 2:
        raise DataError(f"{where}: gold {gold} out of range for {len(contexts)} choices")
    return MultipleChoiceItem(contexts, continuations, gold)


def load_multiple_choice(path: str | Path, limit: int | None = None, seed: int = 0) -> list[MultipleChoiceItem]:
    """Items of a JSON-lines multiple-choice file; with ``limit``, a fixed random subset (same seed, same items)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"multiple-choice file {path} does not exist")
    items = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
                items.append(_item(record, f"{path}:{number}"))
    if not items:
        raise DataError(f"{path} holds no items")
    if limit is not None and limit < len(items):
        keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
        items = [items[i] for i in keep]
    return items


def _join(context: str, continuation: str) -> tuple[str, str]:
    if context and not context[-1].isspace() and continuation and not continuation[0].isspace():
        continuation = " " + continuation
    return context, continuation


@torch.no_grad()
def score_continuations(
    loaded: LoadedModel, pairs: list[tuple[str, str]], *, batch_size: int = 16, progress: bool = False
) -> np.ndarray:
    """Summed log p(continuation | context) for each (context, continuation) pair, batched."""
    tokenizer, model = loaded.tokenizer, loaded.model
    rows, starts = [], []
    for context, continuation in (_join(c, x) for c, x in pairs):
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
        start = min(len(context_ids), len(whole) - 1)
        if start < 1:  # an empty context: condition on the first token
            start = 1
        rows.append(whole)
        starts.append(start)
    device = next(model.parameters()).device
    out = np.zeros(len(rows))
    batches = length_sorted_batches(rows, batch_size)
    for indices in tqdm(batches, desc="multiple choice", unit="batch", disable=not progress, leave=False):
        input_ids, mask = right_pad([rows[i] for i in indices], tokenizer.pad_token_id, device)
        target = torch.zeros_like(mask)
        for row, index in enumerate(indices):
            target[row, starts[index] : len(rows[index])] = 1
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        out[indices] = (-token_nll(logits, input_ids, target).sum(dim=1)).double().cpu().numpy()
    return out


def multiple_choice_accuracy(
    loaded: LoadedModel, items: list[MultipleChoiceItem], *, batch_size: int = 16, progress: bool = False
) -> dict[str, Any]:
    """Accuracy of picking the choice with the highest summed log-likelihood."""
    pairs = [(c, x) for item in items for c, x in zip(item.contexts, item.continuations)]
    scores = score_continuations(loaded, pairs, batch_size=batch_size, progress=progress)
    correct, offset = [], 0
    for item in items:
        choice_scores = scores[offset : offset + len(item.contexts)]
        correct.append(int(np.argmax(choice_scores)) == item.gold)
        offset += len(item.contexts)
    return {"accuracy": float(np.mean(correct)), "n": len(items)}


def perplexity(loaded: LoadedModel, windows: list[list[int]], batch_size: int = 8) -> float:
    """exp of the mean next-token NLL over every token of ``windows``."""
    scored = score_windows(loaded.model, windows, pad_id=loaded.tokenizer.pad_token_id, batch_size=batch_size,
                           progress=False)  # fmt: skip
    total = sum(float(-s.target_logprob.sum()) for s in scored.stats)
    count = sum(len(s.target_logprob) for s in scored.stats)
    return math.exp(total / count)


def fluency(loaded: LoadedModel, windows: list[list[int]], prompts: int = 8, prompt_tokens: int = 32,
            new_tokens: int = 48) -> dict[str, Any]:  # fmt: skip
    """Greedy continuations of the first ``prompt_tokens`` tokens of ``prompts`` never-seen texts: distinct-2
    (unique word bigrams / bigrams, pooled) and the share of continuations that repeat themselves."""
    from obliviate.metrics.text import repeats_itself
    from obliviate.models.generation import Sampling, generate

    chosen = [w[:prompt_tokens] for w in windows if len(w) > prompt_tokens][:prompts]
    if not chosen:
        return {"n": 0}
    texts = loaded.tokenizer.batch_decode(chosen, skip_special_tokens=True)
    replies = [r[0] for r in generate(loaded.model, loaded.tokenizer, texts, Sampling(max_new_tokens=new_tokens))]
    bigrams = [b for r in replies for b in zip(r.lower().split(), r.lower().split()[1:])]
    return {
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        "repeating_share": sum(repeats_itself(r) for r in replies) / len(replies), "n": len(replies),
    }  # fmt: skip


def evaluate_utility(
    loaded: LoadedModel, cfg: UtilityConfig, text_windows: list[list[int]] | None = None, *, progress: bool = False,
    text_nll: Any = None,
) -> dict[str, Any]:
    """Zero-shot accuracy on each configured benchmark file and perplexity on ``text_windows`` (from
    ``text_nll``, each window's mean NLL under this model, when an audit has already scored them)."""
    out: dict[str, Any] = {}
    if cfg.perplexity and text_windows:
        if text_nll is not None:
            counts = np.array([len(w) - 1 for w in text_windows], dtype=float)
            out["perplexity"] = math.exp(float((np.asarray(text_nll, dtype=float) * counts).sum() / counts.sum()))
        else:
            out["perplexity"] = perplexity(loaded, text_windows, cfg.batch_size)
    if cfg.fluency_prompts and text_windows:
        out["fluency"] = fluency(loaded, text_windows, cfg.fluency_prompts)
    if cfg.data_dir is None:
        if cfg.benchmarks:
            log.info("utility: no utility.data_dir given, zero-shot benchmarks skipped")
        return out
    for name in cfg.benchmarks:
        items = load_multiple_choice(Path(cfg.data_dir) / f"{name}.jsonl", cfg.limit, cfg.seed)
        out[name] = multiple_choice_accuracy(loaded, items, batch_size=cfg.batch_size, progress=progress)
    return out
