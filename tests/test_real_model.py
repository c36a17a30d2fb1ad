"""Tests on the embedded SmolLM2-135M-Instruct (marked real_model; the first use converts it to a cache)."""

from __future__ import annotations

import pytest

from obliviate.api import run_memorization
from obliviate.config import MemorizationRunConfig, ScoringConfig

pytestmark = pytest.mark.real_model


def test_smollm2_memorizes_famous_passages_more_than_fresh_text(tmp_path):
    cfg = MemorizationRunConfig(
        sequences="builtin:famous",
        reference="builtin:fresh",
        scoring=ScoringConfig(max_tokens=48, el_n=[5], neighbours=2),
        output_dir=str(tmp_path),
        progress=False,
    )
    run_dir, metrics = run_memorization(cfg)
    famous, fresh = metrics["target"]["aggregate"], metrics["reference"]["aggregate"]
    assert famous["ma"]["mean"] > fresh["ma"]["mean"] + 0.15
    assert famous["el_5"]["mean"] > fresh["el_5"]["mean"]
    assert metrics["outliers"]["calibrated"]["high"] >= 3  # several famous texts are far above never-seen text
    assert metrics["miau"]["loss"]["auc"] > 0.8
    assert (run_dir / "ma_histogram.png").stat().st_size > 1000
