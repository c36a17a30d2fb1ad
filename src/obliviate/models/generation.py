"""Batched text generation, shared by everything that asks a model something (UnSTAR's generators and probes,
question-answer evaluation): chat formatting, left padding, Hugging Face ``generate`` with its KV cache, and
seeded sampling so that a run can be repeated."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Sampling:
    """How to decode: ``temperature`` 0 is greedy; ``n`` answers per prompt."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    n: int = 1

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.max_new_tokens < 1 or self.n < 1 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid sampling settings {self}")


GREEDY = Sampling()


def chat_prompt(tokenizer: PreTrainedTokenizerBase, user: str, assistant_prefix: str = "") -> str:
    """``user`` as one chat turn, ready for the assistant's reply (``assistant_prefix`` starts that reply).

    Models without a chat template get a plain ``Question: ... / Answer:`` layout."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
        )
    else:
        text = f"Question: {user}\nAnswer:" + (" " if assistant_prefix else "")
    return text + assistant_prefix


@torch.no_grad()
def generate(
    model: PreTrainedModel | torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    sampling: Sampling = GREEDY,
    *,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
    desc: str = "generating",
    strip: bool = True,
    stop: tuple[str, ...] = (),
) -> list[list[str]]:
    """``sampling.n`` completions of each already-formatted prompt (see :func:`chat_prompt`), in order.

    Prompts are batched by length with left padding; sampling is seeded per batch, so the output does not
    depend on what ran before.
    ``strip``: strip each completion's surrounding whitespace (off: as decoded, e.g. for MUSE's answer cut).
    ``stop``: a completion ends once prompt + completion ends with one of these strings (so a stop may begin in
    the prompt's last characters); the text before it is the same as without, and a batch ends once all its
    completions have."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    config = GenerationConfig(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=sampling.temperature > 0,
        temperature=sampling.temperature if sampling.temperature > 0 else None,
        top_p=sampling.top_p if sampling.temperature > 0 else None,
        top_k=None,
        num_return_sequences=sampling.n,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        stop_strings=list(stop) or None,
    )
    out: list[list[str]] = [[] for _ in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        starts = range(0, len(order), batch_size)
        for number, start in enumerate(tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False)):
            rows = order[start : start + batch_size]
            encoded = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = {k: v.to(device) for k, v in encoded.items()}
            torch.manual_seed(seed * 1_000_003 + number)
            tokens = model.generate(**encoded, generation_config=config, tokenizer=tokenizer if stop else None)
            texts = tokenizer.batch_decode(tokens[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
            for k, row in enumerate(rows):
                out[row] = [t.strip() if strip else t for t in texts[k * sampling.n : (k + 1) * sampling.n]]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def first_line(text: str) -> str:
    """The first non-empty line of a reply (small models tend to ramble on after it)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
