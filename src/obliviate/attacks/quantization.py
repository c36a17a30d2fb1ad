"""Quantization attack (Zhang et al. 2024, "Does your LLM truly unlearn?"): quantize the unlearned model's
weights and ask again - unlearning that moved the weights less than one quantization step is undone by rounding.

Weights are quantized round-to-nearest, symmetric, per output channel (8-bit) or per group of 128 inputs
(4-bit), and stored back dequantized ("fake" quantization): numerically what an int8 / int4 weight-only kernel
computes, on any backend, CPU included (bitsandbytes' real 4-bit kernels need CUDA)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch

from obliviate.attacks.spec import AttackSpec, register

register(AttackSpec("quantization", "does rounding the weights to 8 / 4 bits bring the forgotten answers back?",
                    frozenset({"qa", "associations", "tofu", "muse-news"})))  # fmt: skip

QUANTIZATION_NOTE = (
    "round-to-nearest weight-only quantization, stored dequantized: what an int8 / int4 kernel computes; "
    "no bitsandbytes reload, whose 8/4-bit kernels need CUDA"
)


def quantize_weight(weight: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Symmetric round-to-nearest quantization of a 2-D weight, returned dequantized in its dtype; one scale per
    output row, or per ``group_size`` consecutive inputs of a row."""
    if bits < 2 or bits > 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    rows, cols = weight.shape
    w = weight.detach().float()
    if group_size:
        if cols % group_size:
            raise ValueError(f"input size {cols} is not a multiple of the group size {group_size}")
        w = w.reshape(rows, cols // group_size, group_size)
    levels = 2 ** (bits - 1) - 1
    scale = w.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
    q = torch.clamp(torch.round(w / scale), -levels - 1, levels) * scale
    return q.reshape(rows, cols).to(weight.dtype)


def quantized_copy(model: torch.nn.Module, bits: int, group_size: int | None = None) -> torch.nn.Module:
    """A copy of ``model`` with every Linear weight quantized (embeddings and norms kept); the input model is
    not modified. Default grouping: per channel for 8-bit, groups of 128 below."""
    if group_size is None and bits < 8:
        group_size = 128
    out = copy.deepcopy(model)
    with torch.no_grad():
        for module in out.modules():
            if isinstance(module, torch.nn.Linear):
                cols = module.weight.shape[1]
                size = group_size if group_size and cols % group_size == 0 else None
                module.weight.copy_(quantize_weight(module.weight, bits, size))
    return out


def quantization_attack(model: torch.nn.Module, measure: Callable[[torch.nn.Module], float],
                        bits: Sequence[int]) -> dict[str, float]:  # fmt: skip
    """``measure`` of round-to-nearest quantized copies of ``model``, per bit width (keys ``8bit``, ``4bit``)."""
    return {f"{b}bit": measure(quantized_copy(model, b)) for b in bits}
