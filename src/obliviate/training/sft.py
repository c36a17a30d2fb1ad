"""Supervised fine-tuning on chat examples (question -> reply) through the engine: UnSTAR's anti-sample and
retain training, and the relearning attack."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from obliviate.metrics.losses import sequence_nll
from obliviate.metrics.tokens import right_pad
from obliviate.models.chat import encode_chat_examples
from obliviate.training.engine import Engine

# Per step, the term added to the SFT loss (model -> scalar), or None for no term this step.
ExtraTerm = Callable[[], Callable[[torch.nn.Module], torch.Tensor] | None]


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
    extra: ExtraTerm | None = None,
) -> list[float]:
    """``passes`` seeded, shuffled passes of next-token training on (question, reply) pairs; the loss per step.
    ``extra``: called once per step for a term added to that step's loss (e.g. UnSTAR's unlikelihood on the true
    answer); the divergence guard still watches the SFT NLL."""
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
            rows = order[start : start + batch_size]
            term = extra() if extra is not None else None
            if term is None:
                losses.append(engine.step(windows, rows, 1.0, masks)["forget_nll"])
            else:
                losses.append(engine.objective_step(_with_term(engine, windows, masks, rows, term))["loss"])
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    return losses


def _with_term(engine: Engine, windows: list[list[int]], masks: list[list[int]], rows: list[int],
               term: Callable[[torch.nn.Module], torch.Tensor]):  # fmt: skip
    """The objective of one step: mean SFT NLL of ``rows`` plus ``term``; (loss, NLL) for the guard."""
    ids, attention = right_pad([windows[i] for i in rows], engine.pad_id, engine.device)
    target = right_pad([masks[i] for i in rows], 0, engine.device)[0]

    def objective(model: torch.nn.Module):
        nll = sequence_nll(model(input_ids=ids, attention_mask=attention).logits, ids, target).mean()
        return nll + term(model), nll

    return objective
