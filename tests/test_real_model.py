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


def test_smollm2_knows_every_builtin_association_and_retention_fact():
    # the built-in UnSTAR set only makes sense for a model that answers all of it correctly before unlearning
    from obliviate.models import load_model
    from obliviate.unstar.associations import resolve_associations, resolve_qa
    from obliviate.unstar.evaluation import targeted_evaluation
    from obliviate.unstar.judge import build_judge

    loaded = load_model("embedded", device="cpu", dtype="float32")
    associations = list(resolve_associations("builtin:associations"))
    result = targeted_evaluation(loaded.model, loaded.tokenizer, associations, resolve_qa("builtin:unrelated"),
                                 build_judge(["exact"]))  # fmt: skip
    wrong = [item["question"] for name in result for item in result[name]["items"] if not item["correct"]]
    assert not wrong
    retain = resolve_qa("builtin:retain")
    kept = targeted_evaluation(loaded.model, loaded.tokenizer, [], retain, build_judge(["exact"]))["unrelated"]
    assert kept["accuracy"] == 1.0  # the STaR retain step trains on the model's own correct replies
    assert len(associations) >= 3 and all(len(a.heldout) >= 4 for a in associations)


def test_rmu_with_its_default_settings_steers_smollm2s_block_seven_like_openunlearning():
    # the default layer fits SmolLM2's depth (30 blocks -> round(7/32 * 30) = 7) and means model.layers[7]'s output
    import torch

    from obliviate.methods import METHODS
    from obliviate.methods.objective import encode_qa
    from obliviate.models import load_model

    loaded = load_model("embedded", device="cpu", dtype="float32")
    model, tok = loaded.model, loaded.tokenizer
    rmu = METHODS.get("rmu").objective(METHODS.get("rmu").make_config())
    forget = encode_qa(tok, [("What is the capital of France?", "Paris."),
                             ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet.")], torch.device("cpu"))
    retain = encode_qa(tok, [("What colour is the sky?", "Blue.")], torch.device("cpu"))
    seen = {}
    hook = model.model.layers[7].register_forward_hook(lambda m, i, out: seen.update(h=out[0] if isinstance(out, tuple)
                                                                                       else out))  # fmt: skip
    try:
        steered = rmu.activations(model, forget)
    finally:
        hook.remove()
    torch.testing.assert_close(steered, seen["h"])
    assert len(model.model.layers) == 30 and rmu.layer is None and rmu.layer_of(30) == 7
    reference = load_model("embedded", device="cpu", dtype="float32").model
    loss = rmu.loss(model, reference, forget, retain)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert model.model.layers[7].mlp.down_proj.weight.grad is not None
