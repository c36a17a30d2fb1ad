"""A tiny randomly initialised Llama model with a byte-level tokenizer, built in code (no files, no network).
Used by the tests and for quick experiments; it learns a few short sequences in seconds on a CPU."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

TINY_PREFIX = "tiny"
_EOS = "<|endoftext|>"


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer: one token per byte (256) plus an end-of-text token used for padding."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    vocab[_EOS] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([_EOS])
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=_EOS, pad_token=_EOS)


def build_tiny_model(
    seed: int = 0,
    *,
    vocab_size: int = 257,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_positions: int = 1024,
) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()
