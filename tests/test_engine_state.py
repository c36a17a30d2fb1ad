"""Two runs in one process with different precision settings (two API calls): Accelerate's process-wide state
would refuse the second; the engine resets it in a single process (found on the GPU path)."""

from __future__ import annotations

from obliviate.config import TrainingConfig
from obliviate.models import load_model
from obliviate.training.engine import Engine


def test_a_second_engine_may_use_another_mixed_precision_in_the_same_process():
    loaded = load_model("tiny", device="cpu", dtype="float32")
    first = Engine(loaded.model, loaded.tokenizer.pad_token_id, TrainingConfig(mixed_precision="no"), cpu=True)
    assert first.accelerator.mixed_precision == "no"
    second = Engine(loaded.model, loaded.tokenizer.pad_token_id, TrainingConfig(mixed_precision="bf16"), cpu=True)
    assert second.accelerator.mixed_precision == "bf16"
    windows = [loaded.tokenizer("a short text to step on").input_ids]
    terms = second.step(windows, [0], 1.0)
    assert terms["forget_nll"] > 0
