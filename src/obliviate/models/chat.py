"""Chat-formatted training examples: a question as the chat template prompts it, followed by the reply and the
end-of-turn marker, with the mask of the tokens a loss counts."""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from obliviate.models.generation import chat_prompt


def encode_chat_examples(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], *, train_on_prompt: bool = False
) -> tuple[list[list[int]], list[list[int]]]:
    """Token windows (chat prompt + reply + end of turn) and the mask of tokens the loss counts: the reply
    only, or the prompt too (as the UnSTAR authors trained)."""
    windows, masks = [], []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for question, reply in pairs:
        prompt_text = chat_prompt(tokenizer, question)
        prompt = tokenizer(prompt_text, add_special_tokens=False).input_ids
        target = tokenizer(reply_text(tokenizer, prompt_text, question, reply), add_special_tokens=False).input_ids
        if not getattr(tokenizer, "chat_template", None):
            target += eos
        windows.append(prompt + target)
        masks.append([int(train_on_prompt)] * len(prompt) + [1] * len(target))
    return windows, masks


def reply_text(tokenizer: PreTrainedTokenizerBase, prompt_text: str, question: str, reply: str) -> str:
    """The reply as the chat template writes it after the prompt (with its end-of-turn marker)."""
    if not getattr(tokenizer, "chat_template", None):
        return " " + reply if not prompt_text.endswith(" ") else reply
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": reply}], tokenize=False
    )
    if not full.startswith(prompt_text):  # a template that rewrites earlier turns: fall back to the plain reply
        return reply + (tokenizer.eos_token or "")
    return full[len(prompt_text) :]
