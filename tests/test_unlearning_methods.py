"""The engine and the GA / SGA / TA / TAU methods on a tiny model that has memorized four sequences."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.config import TrainingConfig, UnlearnConfig
from obliviate.editing import effective_weights
from obliviate.methods import build_method
from obliviate.methods.rules import Thresholds
from obliviate.metrics.losses import sequence_nll
from obliviate.metrics.reference import ReferenceStats
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.tokens import right_pad
from obliviate.training.engine import Engine, TrainingDiverged, WeightsDiverged
from obliviate.unlearning.loop import UnlearningLoop

IDS = [f"t{i}" for i in range(len(TRAINED_TEXTS))]


@pytest.fixture(scope="module")
def setup(memorizing_model):
    tok = memorizing_model.tokenizer
    windows = [tok(t).input_ids[:48] for t in TRAINED_TEXTS]
    unseen = [tok(t).input_ids[:48] for t in UNSEEN_TEXTS]
    ref = score_windows(memorizing_model.model, unseen, pad_id=256, progress=False, full_stats=False)
    thresholds = Thresholds.from_reference(ReferenceStats.from_values(ref.memorization()["ma"]), 2.0)
    return memorizing_model, windows, thresholds


def _engine(model, **training):
    cfg = TrainingConfig(**({"learning_rate": 2e-3, "micro_batch_size": 2} | training))
    return Engine(copy.deepcopy(model), 256, cfg)


def _run(
    setup, method, stop="outliers", max_steps=30, engine_kwargs=None, run_dir=None, checkpoint_every=0,
    thresholds=None, **cfg,
):  # fmt: skip
    loaded, windows, default_thresholds = setup
    thresholds = thresholds or default_thresholds
    engine = _engine(loaded.model, **(engine_kwargs or {}))
    unlearn_cfg = UnlearnConfig(method=method, stop=stop, **cfg)
    m = build_method(unlearn_cfg, thresholds)
    loop = UnlearningLoop(
        engine, m, windows, IDS, rule=unlearn_cfg.stop_rule(), thresholds=thresholds, max_steps=max_steps,
        checkpoint_every=checkpoint_every, run_dir=run_dir, progress=False,
    )  # fmt: skip
    return engine, m, loop


def test_the_memorized_set_starts_above_the_unseen_band(setup):
    loaded, windows, thresholds = setup
    ma = score_windows(loaded.model, windows, pad_id=256, progress=False, full_stats=False).memorization()["ma"]
    assert (ma > thresholds.upper).sum() >= 3


def test_engine_gradient_is_the_gradient_of_the_mean_sequence_nll(setup):
    loaded, windows, _ = setup
    engine = _engine(loaded.model, micro_batch_size=1)
    selected = [0, 2, 3]
    mean = engine.accumulate_gradients(windows, selected, sign=-1.0)
    reference = copy.deepcopy(loaded.model)
    ids, mask = right_pad([windows[i] for i in selected], 256, torch.device("cpu"))
    nll = sequence_nll(reference(input_ids=ids, attention_mask=mask).logits, ids, mask)
    (-nll.mean()).backward()
    assert mean == pytest.approx(nll.mean().item(), rel=1e-5)
    for (name, p), q in zip(engine.unwrapped.named_parameters(), reference.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name


def test_engine_refuses_an_exploding_or_nan_loss_and_leaves_weights_alone(setup):
    loaded, windows, _ = setup
    engine = _engine(loaded.model, max_loss=1e-3)
    before = {k: v.clone() for k, v in engine.unwrapped.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="max_loss"):
        engine.step(windows, [0, 1], sign=-1.0)
    assert all(torch.equal(before[k], v) for k, v in engine.unwrapped.state_dict().items())
    engine = _engine(loaded.model)
    with torch.no_grad():
        engine.unwrapped.model.norm.weight[0] = float("nan")
    with pytest.raises(WeightsDiverged, match="non-finite loss or gradient at optimizer step 1"):
        engine.step(windows, [0], sign=-1.0)


def test_objective_step_guard_watches_the_forget_nll_when_given(setup):
    loaded, windows, _ = setup
    engine = _engine(loaded.model, max_loss=50.0)
    ids = torch.tensor([windows[0]])

    def composite(model, watched=True):
        nll = sequence_nll(model(input_ids=ids).logits, ids, torch.ones_like(ids)).mean()
        loss = nll + 1000.0  # a large sum of squared distances, not a destroyed model
        return (loss, nll) if watched else loss

    assert engine.objective_step(composite)["loss"] > 1000  # the NLL (< 50) is what the guard reads
    with pytest.raises(TrainingDiverged, match="max_loss"):
        engine.objective_step(lambda m: composite(m, watched=False))


def test_engine_stops_when_a_step_leaves_nan_weights(setup):
    """A finite loss and gradient whose update overflows a weight (what float16 does): the step is taken, the
    weights are checked right after it, and the run must stop, naming the step (here the overflow is injected into
    the optimizer's update of one weight)."""
    loaded, windows, _ = setup
    engine = _engine(loaded.model)
    engine.step(windows, [0], sign=-1.0)  # a sane first step
    original = engine.optimizer.step

    def overflowing_step(*args, **kwargs):
        out = original(*args, **kwargs)
        with torch.no_grad():
            engine.unwrapped.model.norm.weight.mul_(float("inf"))
        return out

    engine.optimizer.step = overflowing_step
    with pytest.raises(WeightsDiverged, match=r"optimizer step 2 turned weights into NaN/inf \(float32\)"):
        engine.step(windows, [0], sign=-1.0)


def test_ga_lowers_memorization_until_the_mean_rule_fires(setup):
    _, _, thresholds = setup
    _, _, loop = _run(setup, "ga", stop="mean")
    result = loop.run()
    assert result.stop_reason.startswith("stop rule 'mean'")
    assert 0 < result.steps < 30
    assert result.final_ma.mean() < thresholds.tau < result.trace[0]["mean_ma"]
    assert all(len(r["selected"]) == len(IDS) for r in result.trace if "selected" in r)  # GA: everything


def test_sga_per_sequence_rule_clears_every_outlier_and_never_trains_inside_the_band(setup):
    _, _, thresholds = setup
    _, _, loop = _run(setup, "sga")
    result = loop.run()
    assert result.stop_reason.startswith("stop rule 'outliers'")
    assert (result.final_ma <= thresholds.upper).all()
    for record in result.trace:
        for sid in record.get("selected", []):
            assert record["ma"][sid] > thresholds.upper
    selections = [len(r["selected"]) for r in result.trace if "selected" in r]
    assert min(selections) < len(IDS)  # it really selects per sequence


def test_stop_rules_fire_at_once_or_at_the_cap(setup):
    met_at_once = dataclasses.replace(setup[2], tau=1.1)  # every mean MA is below 1.1
    _, _, loop = _run(setup, "ga", stop="mean", thresholds=met_at_once)
    result = loop.run()
    assert result.steps == 0 and result.stop_reason.startswith("stop rule")
    _, _, loop = _run(setup, "ga", stop="outliers", max_steps=2, engine_kwargs={"learning_rate": 1e-6})
    result = loop.run()
    assert result.steps == 2 and result.stop_reason == "max_steps"


def test_ta_result_is_theta_s_plus_c_times_the_task_vector(setup):
    # first_threshold below the starting mean MA: GA runs first, theta_s is taken at the switch
    engine, method, loop = _run(setup, "ta", stop="mean", first_threshold=0.5, max_steps=12)
    result = loop.run()
    phases = [r["phase"] for r in result.trace]
    assert phases[0] == "ga" and "ta" in phases
    theta_s, theta_t = method.theta_s, effective_weights(engine.unwrapped)
    edited = dict(method.result(engine).named_parameters())
    for name in theta_s:
        expected = theta_s[name] + (-3.0) * (theta_t[name] - theta_s[name])
        assert torch.allclose(edited[name], expected, atol=1e-6), name
    assert result.stop_reason.startswith("stop rule")


def test_tau_runs_sga_then_ta_and_carries_adam_state(setup):
    engine, method, loop = _run(setup, "tau", stop="mean", first_threshold=0.8, max_steps=20)
    result = loop.run()
    phases = [r["phase"] for r in result.trace]
    assert phases[0] == "sga" and phases[-1] == "ta"
    assert method.coefficient == -1.0
    assert len(engine.optimizer.optimizer.state) > 0  # carried over (not reset)
    engine, method, loop = _run(setup, "tau", stop="mean", first_threshold=0.8, max_steps=20, reset_optimizer=True)
    reset_calls = []
    engine.reset_optimizer = lambda: reset_calls.append(True)
    loop.run()
    assert reset_calls == [True]


def test_checkpoint_and_resume_continue_exactly(setup, tmp_path):
    straight_dir, first_dir, second_dir = (tmp_path / n for n in ("a", "b", "c"))
    for d in (straight_dir, first_dir, second_dir):
        d.mkdir()
    kwargs = {"stop": "mean", "tau": 0.0, "engine_kwargs": {"learning_rate": 5e-4}}
    _, _, loop = _run(setup, "ta", max_steps=4, run_dir=straight_dir, first_threshold=0.5, **kwargs)
    straight = loop.run()
    _, _, loop = _run(setup, "ta", max_steps=2, run_dir=first_dir, checkpoint_every=2, first_threshold=0.5, **kwargs)
    loop.run()
    checkpoint = first_dir / "checkpoints" / "step-0002"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    _, _, loop = _run(setup, "ta", max_steps=4, run_dir=second_dir, first_threshold=0.5, **kwargs)
    loop.resume_from(checkpoint)
    resumed = loop.run()
    assert resumed.steps == straight.steps == 4
    assert [r["phase"] for r in resumed.trace] == [r["phase"] for r in straight.trace]
    np.testing.assert_allclose(resumed.final_ma, straight.final_ma, atol=1e-9)


def test_lora_sga_changes_only_the_adapter(setup):
    loaded, _, _ = setup
    engine, _, loop = _run(
        setup,
        "sga",
        max_steps=3,
        engine_kwargs={"lora": {"enabled": True, "rank": 4, "alpha": 8}, "learning_rate": 5e-3},
    )
    base = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    result = loop.run()
    assert result.steps >= 1
    model = engine.unwrapped
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    merged = copy.deepcopy(model).merge_and_unload().state_dict()
    assert any(not torch.equal(merged[k], base[k]) for k in base)
    for name, value in model.base_model.model.state_dict().items():
        if "lora_" not in name and "base_layer" not in name:
            assert torch.equal(value, base[name]), name


def test_match_targets_and_flip_term_by_hand():
    from obliviate.methods.match import flip_term, quantile_targets

    # ranked 2nd, 0th, 1st -> the reference's quantiles (i + 0.5) / 3 of [10, 20, 30, 40], order kept
    assert quantile_targets(np.array([3.0, 1.0, 2.0]), np.array([10.0, 20.0, 30.0, 40.0])).tolist() == [35, 15, 25]
    margins = torch.tensor([[2.0, 0.5, -1.0, 3.0], [-0.2, -2.0, 1.0, 0.1]])
    # row 0 has 2 matches too many: its two matched tokens of smallest margin (0.5, 2.0) are pushed 1 below:
    # (1.5 + 3.0) / 2; row 1 has 1 too few: its miss closest to matching (-0.2) is pushed 1 above: 1.2
    out = flip_term(margins, torch.ones(2, 4, dtype=torch.bool), torch.tensor([2, -1]), 1.0)
    assert out.tolist() == pytest.approx([2.25, 1.2])
    assert flip_term(margins, torch.ones(2, 4, dtype=torch.bool), torch.tensor([0, 0]), 1.0).tolist() == [0, 0]


def test_match_moves_every_sequence_into_the_never_seen_band_and_stops_there(setup):
    loaded, windows, thresholds = setup
    tok = loaded.tokenizer
    unseen = [tok(t).input_ids[:48] for t in UNSEEN_TEXTS]
    engine, m, loop = _run(setup, "match", max_steps=60)
    m.calibrate(engine, windows, unseen)
    result = loop.run()
    assert result.stop_reason == "stop rule 'never-seen match' met", result.stop_reason
    final = engine.score(engine.unwrapped, windows, 8)
    assert ((final["ma"] >= thresholds.lower) & (final["ma"] <= thresholds.upper)).all()  # c(D_f) 0/0
    assert np.abs(final["loss"] - m.targets).max() <= m.tol + 1e-6  # each at its own never-seen loss quantile
    reference_loss = engine.score(loaded.model, unseen, 8)["loss"]
    assert sorted(m.targets) == pytest.approx(np.quantile(reference_loss, (np.arange(4) + 0.5) / 4))
    assert any(r["terms"]["flip"] > 0 for r in result.trace if "terms" in r)


def test_match_retain_term_is_the_kl_to_the_starting_model(setup):
    from obliviate.methods.match import NeverSeenMatching

    loaded, windows, thresholds = setup
    unseen = [loaded.tokenizer(t).input_ids[:48] for t in UNSEEN_TEXTS]
    engine = _engine(loaded.model)
    m = NeverSeenMatching("outliers", thresholds, retain_windows=unseen[:2])
    m.calibrate(engine, windows, unseen)
    loop = UnlearningLoop(engine, m, windows, IDS, rule="outliers", thresholds=thresholds, max_steps=2,
                          progress=False)  # fmt: skip
    kls = [r["terms"]["retain_kl"] for r in loop.run().trace if "terms" in r]
    assert len(kls) == 2 and kls[0] == pytest.approx(0.0, abs=1e-6) and kls[1] > 1e-6  # 0 until the model moves


def test_match_minkpp_term_is_the_audits_min_k_plus_plus(setup):
    from obliviate.methods.match import _scores_and_token_nll, _token_stats, lowest_fraction_mean
    from obliviate.metrics.mia import mia_scores
    from obliviate.metrics.scoring import score_windows

    # by hand: row 0 has 5 valid values -> int(5 * 0.4) = 2 smallest (1, 2); row 1 has 2 valid -> max(1, 0) = 1
    values = torch.tensor([[5.0, 1.0, 4.0, 2.0, 3.0], [7.0, -1.0, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])
    assert lowest_fraction_mean(values, valid, 0.4).tolist() == [1.5, -1.0]
    loaded, windows, _ = setup
    stats = score_windows(loaded.model, windows, pad_id=loaded.tokenizer.pad_token_id, batch_size=4,
                          progress=False).stats  # fmt: skip
    expected = [mia_scores(s, "x")["mia_minkpp"] for s in stats]
    got = _scores_and_token_nll(_token_stats(loaded.model, windows, loaded.tokenizer.pad_token_id))[0]["minkpp"]
    assert got == pytest.approx(expected, rel=1e-6)


def test_match_retargets_onto_the_never_seen_set_under_the_current_model(setup):
    from obliviate.methods.match import NeverSeenMatching, quantile_targets

    loaded, windows, thresholds = setup
    unseen = [loaded.tokenizer(t).input_ids[:48] for t in UNSEEN_TEXTS]
    engine = _engine(loaded.model)
    m = NeverSeenMatching("outliers", thresholds, retarget_every=1)
    m.calibrate(engine, windows, unseen)
    start_targets, start_losses = m.targets.copy(), engine.score(loaded.model, windows, 8)["loss"]
    loop = UnlearningLoop(engine, m, windows, IDS, rule="outliers", thresholds=thresholds, max_steps=1,
                          progress=False)  # fmt: skip
    loop.run()
    assert m.targets.tolist() == start_targets.tolist()  # one step: not re-targeted yet
    m.select(engine.score(engine.unwrapped, windows, 8)["ma"])  # before step 2: re-score under the current model
    now = engine.score(engine.unwrapped, unseen, 8)["loss"]
    assert not np.allclose(now, engine.score(loaded.model, unseen, 8)["loss"])
    assert m.targets == pytest.approx(quantile_targets(start_losses, now), rel=1e-5)  # starting order kept
