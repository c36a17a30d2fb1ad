"""The QA unlearning loop shared by the baselines: epochs over the forget pairs in seeded shuffled batches,
each step paired with a retain batch of the same size (cycled) and, for the methods that need one, an alternative
(question, answer) pair per forget pair ('I don't know', or UnSTAR's anti-samples: several per pair, one per
epoch in turn)."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from obliviate.methods.objective import ObjectiveMethod, encode_qa, idk_pairs
from obliviate.training.engine import Engine


def unlearn_qa(
    engine: Engine,
    tokenizer: PreTrainedTokenizerBase,
    method: ObjectiveMethod,
    forget: Sequence[tuple[str, str]],
    retain: Sequence[tuple[str, str]],
    *,
    alternatives: Sequence[Sequence[tuple[str, str]]] | None = None,
    epochs: int = 5,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
    after_epoch: Callable[[int], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Train ``method`` for ``epochs`` passes over ``forget``; returns the per-step log (loss, gradient norm).

    ``alternatives[i]`` lists the (question, answer) pairs trained towards for ``forget[i]``, used in turn, one
    per epoch (default: the question with an 'I don't know' answer). ``after_epoch(epoch)``, when given, is
    called after every epoch and what it returns is logged as a record ``{"epoch": e, "step": n, **returned}``
    (the forget/retain trade-off over steps)."""
    if not forget:
        raise ValueError("nothing to forget")
    if alternatives is None:
        alternatives = [[pair] for pair in idk_pairs([q for q, _ in forget], seed)]
    alt = [list(a) for a in alternatives]
    if len(alt) != len(forget):
        raise ValueError(f"{len(alt)} alternative lists for {len(forget)} forget pairs")
    if any(not a for a in alt):
        raise ValueError("every forget pair needs at least one alternative (question, answer)")
    reference = None
    if method.needs_reference:
        reference = copy.deepcopy(engine.unwrapped).eval().requires_grad_(False)
    rng = random.Random(seed)
    retain_order = list(range(len(retain)))
    rng.shuffle(retain_order)
    cursor = 0
    log: list[dict[str, Any]] = []
    steps = epochs * -(-len(forget) // batch_size)
    bar = tqdm(total=steps, desc=f"{method.name} unlearning", unit="step", leave=False, disable=not progress)
    device = engine.device
    for epoch in range(epochs):
        order = list(range(len(forget)))
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batches = [encode_qa(tokenizer, [forget[i] for i in rows], device), None, None]
            if retain:
                picked = [retain_order[(cursor + k) % len(retain)] for k in range(len(rows))]
                cursor += len(rows)
                batches[1] = encode_qa(tokenizer, [retain[i] for i in picked], device)
            if method.needs_idk:
                batches[2] = encode_qa(tokenizer, [alt[i][epoch % len(alt[i])] for i in rows], device)
            record = engine.objective_step(lambda m, b=tuple(batches): method.loss(m, reference, *b))
            log.append({"epoch": epoch, **record})
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
        if after_epoch is not None:
            log.append({"epoch": epoch, "step": sum("loss" in r for r in log), **after_epoch(epoch)})
    bar.close()
    return log
