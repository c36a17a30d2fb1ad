"""The QA baselines on a real tiny model that has learned a few facts: every method, stepping on its own loss
through the engine, makes the forget answer less likely; the retain term keeps the retain answers."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import UNRELATED, ZORBIA
from obliviate.config import AntiSampleTrainingConfig
from obliviate.errors import ConfigError
from obliviate.methods import METHODS
from obliviate.methods.graddiff import GradDiff
from obliviate.methods.objective import idk_pairs
from obliviate.methods.rmu import RMU
from obliviate.metrics.answers import answer_nll, encode_qa
from obliviate.training.engine import Engine
from obliviate.unstar.antisamples import answer_target

OBJECTIVE = {name: spec for name, spec in METHODS.items() if spec.objective is not None}

FORGET = [(q, answer_target(ZORBIA.answer, None)) for q in (ZORBIA.question, *ZORBIA.heldout)]
RETAIN = [(f.question, answer_target(f.answer, None)) for f in (*ZORBIA.subject_facts, *UNRELATED)]


def _run(knowing_model, method, steps=10, lr=1e-3):
    loaded = copy.deepcopy(knowing_model)
    reference = copy.deepcopy(knowing_model.model).eval().requires_grad_(False)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=lr))
    tok, device = loaded.tokenizer, engine.device
    forget, retain = encode_qa(tok, FORGET, device), encode_qa(tok, RETAIN, device)
    idk = encode_qa(tok, idk_pairs([q for q, _ in FORGET]), device)
    with torch.no_grad():
        before = answer_nll(engine.unwrapped, forget).mean().item(), answer_nll(engine.unwrapped, retain).mean().item()
    losses = [engine.objective_step(lambda m: method.loss(m, reference, forget, retain, idk))["loss"]
              for _ in range(steps)]  # fmt: skip
    with torch.no_grad():
        after = answer_nll(engine.unwrapped, forget).mean().item(), answer_nll(engine.unwrapped, retain).mean().item()
    return before, after, losses


@pytest.mark.parametrize("name", sorted(set(OBJECTIVE) - {"rmu"}))
def test_every_output_level_method_makes_the_forget_answer_less_likely(knowing_model, name):
    spec = OBJECTIVE[name]
    # SimNPO's default forget weight (OpenUnlearning's 0.125) is too gentle for 10 steps: the direction is checked
    settings = {"forget_weight": 1.0} if name == "simnpo" else {}
    (forget_before, _), (forget_after, _), losses = _run(knowing_model, spec.objective(spec.make_config(**settings)))
    assert all(torch.isfinite(torch.tensor(losses)))
    # the fact was learned to NLL ~0.01 per token; each method must at least multiply it by 10
    assert forget_after > 10 * forget_before and forget_after > forget_before + 0.1, (name, forget_after)


def test_graddiff_retain_term_keeps_retain_answers_better_than_plain_ascent(knowing_model):
    from obliviate.methods.ga import GradientAscentQA

    _, (_, retain_ga), _ = _run(knowing_model, GradientAscentQA())
    _, (_, retain_kl), _ = _run(knowing_model, GradDiff(retain_term="kl"))
    _, (_, retain_nll), _ = _run(knowing_model, GradDiff(retain_term="nll"))
    assert retain_nll < retain_ga and retain_kl < retain_ga
    with pytest.raises(ValueError, match="retain_term"):
        GradDiff(retain_term="l2")


def test_rmu_pushes_forget_activations_to_the_control_vector_and_keeps_retain_ones(knowing_model):
    from obliviate.methods.preference_losses import activation_mse

    method = RMU(layer=1, coefficient=5.0, retain_weight=10.0)  # the tiny model has 2 layers
    loaded = copy.deepcopy(knowing_model)
    reference = copy.deepcopy(knowing_model.model).eval().requires_grad_(False)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
    forget, retain = (
        encode_qa(loaded.tokenizer, FORGET, engine.device),
        encode_qa(loaded.tokenizer, RETAIN, engine.device),
    )

    def distances():
        with torch.no_grad():
            h_forget = method.activations(engine.unwrapped, forget)
            h_retain = method.activations(engine.unwrapped, retain)
            control = method._control.expand_as(h_forget)
            return (
                activation_mse(h_forget, control, forget.target_mask).item(),
                activation_mse(h_retain, method.activations(reference, retain), retain.target_mask).item(),
            )

    engine.objective_step(lambda m: method.loss(m, reference, forget, retain))
    to_control_before, _ = distances()
    for _ in range(30):
        engine.objective_step(lambda m: method.loss(m, reference, forget, retain))
    to_control, retain_drift = distances()
    assert to_control < 0.5 * to_control_before
    assert retain_drift < 0.1 * to_control
    with pytest.raises(ConfigError, match="RMU layer"):
        RMU(layer=7).loss(engine.unwrapped, reference, forget, retain)


def test_unlearn_qa_loop_runs_epochs_with_retain_and_alternative_batches(knowing_model):
    from obliviate.methods.unstar import AntiSampleNLL
    from obliviate.tofu.unlearn import unlearn_qa

    loaded = copy.deepcopy(knowing_model)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
    forget = encode_qa(loaded.tokenizer, FORGET, engine.device)
    with torch.no_grad():
        before = answer_nll(engine.unwrapped, forget).mean().item()
    wrong = [[(q, "The answer is Lyon."), (q + " Really?", "It is Lyon.")] for q, _ in FORGET]
    seen: list[int] = []
    log = unlearn_qa(engine, loaded.tokenizer, AntiSampleNLL(), FORGET, RETAIN, alternatives=wrong, epochs=3,
                     batch_size=2, progress=False, after_epoch=lambda e: seen.append(e) or {"probe": e})  # fmt: skip
    steps = [r for r in log if "loss" in r]
    assert len(steps) == 3 * 2 and [r["epoch"] for r in steps] == [0, 0, 1, 1, 2, 2]
    assert seen == [0, 1, 2]
    assert [(r["epoch"], r["step"], r["probe"]) for r in log if "probe" in r] == [(0, 2, 0), (1, 4, 1), (2, 6, 2)]
    with torch.no_grad():
        assert answer_nll(engine.unwrapped, forget).mean().item() > before + 0.1
    with pytest.raises(ValueError, match="alternative lists"):
        unlearn_qa(engine, loaded.tokenizer, AntiSampleNLL(), FORGET, RETAIN, alternatives=wrong[:1])
    with pytest.raises(ValueError, match="at least one alternative"):
        unlearn_qa(engine, loaded.tokenizer, AntiSampleNLL(), FORGET, RETAIN, alternatives=[[]] * len(FORGET))
    with pytest.raises(ValueError, match="nothing to forget"):
        unlearn_qa(engine, loaded.tokenizer, AntiSampleNLL(), [], RETAIN)


def test_tofu_mini_splits(shared_data):
    from obliviate.tofu.testbed import tofu_mini

    data = tofu_mini(str(shared_data / "tofu"), retain_authors=3, eval_limit=10)
    assert len(data.forget) == 40 and len(data.retain) == 60 and len(data.full_pairs) == 100
    assert {x.question for x in data.eval_sets.retain} <= {x.question for x in data.retain}
    assert data.eval_sets.retain and len(data.eval_sets.world_facts) == 10
    assert not {q for q, _ in data.retain_pairs} & {x.question for x in data.forget}
