"""Supervised fine-tuning on chat examples (question -> reply) through the engine: UnSTAR's anti-sample and
retain training, and the relearning attack."""

from __future__ import annotations

import random
from collections.abc import Sequence

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from obliviate.models.chat import encode_chat_examples
from obliviate.training.engine import Engine


def sft(
    engine: Engine,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    *,
    passes: int,
    batch_size: int,
    train_on_prompt: bool = False,
    seed: int = 0,
    progress: bool = False,
    desc: str = "SFT",
) -> list[float]:
    """``passes`` seeded, shuffled passes of next-token training on (question, reply) pairs; the loss per step."""
    if not pairs:
        return []
    windows, masks = encode_chat_examples(tokenizer, pairs, train_on_prompt=train_on_prompt)
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    losses: list[float] = []
    bar = tqdm(total=passes * -(-len(pairs) // batch_size), desc=desc, unit="step", leave=False, disable=not progress)
    for _ in range(passes):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            losses.append(engine.step(windows, order[start : start + batch_size], 1.0, masks)["forget_nll"])
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    return losses
