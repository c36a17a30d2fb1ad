"""The quantization attack's round-to-nearest quantizer on hand-checked weights, and a copy that leaves the
input model alone."""

from __future__ import annotations

import pytest
import torch

from obliviate.attacks.quantization import quantize_weight, quantized_copy
from obliviate.models import load_model


def test_quantize_weight_by_hand():
    w = torch.tensor([[1.0, -0.5, 0.26, 0.0], [0.1, 0.2, -0.4, 0.05]])
    # 2 bits: levels -2..1 times max|w|; row 0: 1 -> 1, -0.5 -> round(-0.5) = 0 (half to even), 0.26 -> 0
    q = quantize_weight(w, bits=2)
    assert q[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    # 8 bits, per row: error at most half a step
    q8 = quantize_weight(w, bits=8)
    steps = w.abs().amax(dim=1, keepdim=True) / 127
    assert ((q8 - w).abs() <= steps / 2 + 1e-7).all()
    # groups of 2: each pair has its own scale, so the small second pair of row 0 keeps more precision
    g = quantize_weight(w, bits=4, group_size=2)
    assert g[0, 2].item() == pytest.approx(0.26) and g[0, 3].item() == 0.0
    with pytest.raises(ValueError, match="group size"):
        quantize_weight(w, bits=4, group_size=3)
    with pytest.raises(ValueError, match="bits"):
        quantize_weight(w, bits=1)


def test_quantized_copy_changes_only_the_copy():
    loaded = load_model("tiny:1", device="cpu", dtype="float32")
    original = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    q4 = quantized_copy(loaded.model, bits=4)
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in original.items())
    linear = next(n for n, m in q4.named_modules() if isinstance(m, torch.nn.Linear))
    w_q = dict(q4.named_modules())[linear].weight
    w = dict(loaded.model.named_modules())[linear].weight
    assert not torch.equal(w_q, w) and (w_q - w).abs().max() < w.abs().max() / 7 / 2 + 1e-6
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(quantized_copy(loaded.model, bits=8)(ids).logits, loaded.model(ids).logits, atol=0.05)
