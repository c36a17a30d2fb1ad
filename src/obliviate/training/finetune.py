"""Plain next-token fine-tuning on token windows (used to inject sequences into a model for a testbed)."""

from __future__ import annotations

import logging
import math

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from obliviate.errors import ObliviateError
from obliviate.metrics.tokens import right_pad

log = logging.getLogger("obliviate")


def finetune_on_windows(
    model: PreTrainedModel,
    windows: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
    desc: str = "fine-tuning",
) -> list[float]:
    """One pass over ``windows`` in the given order with AdamW (no weight decay); returns the loss per step."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    steps = math.ceil(len(windows) / batch_size)
    bar = tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False)
    for step in bar:
        batch = windows[step * batch_size : (step + 1) * batch_size]
        input_ids, mask = right_pad(batch, pad_id, device)
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        if not torch.isfinite(loss):
            raise ObliviateError(f"Fine-tuning diverged at step {step}: loss {loss.item()}; lower the learning rate")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    log.info("%s: %d steps, first loss %.4f, last loss %.4f", desc, steps, losses[0], losses[-1])
    return losses
