"""No pass computed twice on the hot paths, and the results exactly as before: MATCH's calibration reuses the
before-audit's statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.config import ScoringConfig, TrainingConfig
from obliviate.data import SequenceSet
from obliviate.data.sequences import Sequence
from obliviate.methods import match as match_module
from obliviate.methods.match import NeverSeenMatching
from obliviate.methods.rules import Thresholds
from obliviate.metrics.audit import audit_memorization
from obliviate.metrics.reference import ReferenceStats
from obliviate.metrics.tokens import encode_windows
from obliviate.training.engine import Engine

TARGETS = ("targets", "ma_targets", "entropy_targets", "minkpp_targets")
TOLERANCES = ("tol", "entropy_tol", "minkpp_tol", "cap")


def _set(name, texts):
    return SequenceSet(name, tuple(Sequence(f"{name}{i}", t) for i, t in enumerate(texts)))


@pytest.fixture(scope="module")
def audited(memorizing_model):
    cfg = ScoringConfig(el_n=[], max_tokens=48, neighbours=2, bootstrap=0)
    forget, reference = _set("t", TRAINED_TEXTS), _set("u", UNSEEN_TEXTS)
    audit = audit_memorization(memorizing_model, forget, reference, cfg, progress=False)
    tok = memorizing_model.tokenizer
    windows = [encode_windows(tok, s.texts, cfg.max_tokens) for s in (forget, reference)]
    return audit, windows


def _calibrated(loaded, windows, reference_windows, thresholds, **kwargs):
    engine = Engine(copy.deepcopy(loaded.model), loaded.tokenizer.pad_token_id, TrainingConfig())
    method = NeverSeenMatching("outliers", thresholds)
    method.calibrate(engine, windows, reference_windows, **kwargs)
    return method


def test_match_calibrated_from_the_audits_statistics_sets_exactly_the_rescored_targets(
    memorizing_model, audited, monkeypatch
):
    audit, (windows, reference_windows) = audited
    assert audit.target.stats is not None and len(audit.reference.stats) == len(reference_windows)
    thresholds = Thresholds.from_reference(ReferenceStats.from_values(audit.reference.values["ma"]), 2.0)
    rescored = _calibrated(memorizing_model, windows, reference_windows, thresholds)
    passes = []
    monkeypatch.setattr(match_module, "_token_stats", lambda *a, **k: passes.append(a) or [])
    reused = _calibrated(memorizing_model, windows, reference_windows, thresholds,
                         start_stats=(audit.target.stats, audit.reference.stats))  # fmt: skip
    assert passes == []  # no teacher-forced pass: both sets came from the audit
    for name in TARGETS:
        assert np.array_equal(getattr(reused, name), getattr(rescored, name)), name
    for name in TOLERANCES:
        assert getattr(reused, name) == getattr(rescored, name), name
    for key, values in rescored._start_scores.items():
        assert np.array_equal(reused._start_scores[key], values), key


def test_audit_scores_the_neighbourhood_copies_in_the_originals_batches(memorizing_model, monkeypatch):
    """One length-sorted pass over originals and copies: fewer forwards, the same values as scoring them apart."""
    from obliviate.metrics import audit as audit_module
    from obliviate.metrics.scoring import score_windows

    cfg = ScoringConfig(el_n=[4], max_tokens=48, neighbours=3, batch_size=4, bootstrap=0)
    model, tok = memorizing_model.model, memorizing_model.tokenizer
    texts, pad = list(TRAINED_TEXTS), tok.pad_token_id
    calls = []

    def counted(*args, **kwargs):
        calls.append(len(args[1]))
        return score_windows(*args, **kwargs)

    monkeypatch.setattr(audit_module, "score_windows", counted)
    scores = audit_module.score_set(memorizing_model, _set("t", texts), cfg, progress=False)
    assert calls == [len(texts) * 4]  # one pass: 16 windows in 4 batches (apart: 1 + 3 batches, 2 passes)
    windows = encode_windows(tok, texts, cfg.max_tokens)
    apart = score_windows(model, windows, pad_id=pad, batch_size=4, el_ns=(4,), progress=False)
    copies = audit_module._neighbour_windows(tok, tok.batch_decode(windows), cfg)
    copy_ll = -score_windows(model, copies, pad_id=pad, batch_size=4, progress=False).memorization()["loss"]
    expected = apart.memorization()
    for key in ("ma", "es", "el_4"):
        assert np.array_equal(scores.values[key], expected[key]), key
    assert scores.values["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    gap = -expected["loss"] - copy_ll.reshape(len(texts), 3).mean(axis=1)
    assert scores.values["neighbourhood_gap"] == pytest.approx(gap, rel=1e-5, abs=1e-6)
    assert len(scores.stats) == len(texts) and scores.values["el_4"].shape == (len(texts),)


def _match_run(loaded, tmp_path, name):
    from obliviate import unlearn

    return unlearn(model=loaded, forget=TRAINED_TEXTS, reference=UNSEEN_TEXTS, method="match",
                   output_dir=str(tmp_path / name), progress=False, save_model=False, report=False,
                   **{"benchmark.training.learning_rate": 2e-3, "benchmark.training.max_steps": 3,
                      "benchmark.scoring.max_tokens": 48, "benchmark.scoring.neighbours": 2,
                      "benchmark.scoring.bootstrap": 20, "benchmark.utility.fluency_prompts": 0})  # fmt: skip


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if "seconds" not in k and k not in ("timings",
                "run_dir", "started", "finished", "model_path")}  # fmt: skip
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_memorization_run_reuses_the_before_audit_and_its_figures_are_unchanged(memorizing_model, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """MATCH's calibration and the loop's first scoring take the before-audit's statistics (no pass of their own);
    every figure of the run - metrics, per-step trace - is what the run gives when both score again."""
    import json

    from obliviate.benchmarks import memorization_run
    from obliviate.training.engine import Engine as EngineClass

    passes, calibrations = [], []
    score, token_stats = EngineClass.score, match_module._token_stats
    monkeypatch.setattr(EngineClass, "score", lambda self, *a, **k: passes.append(1) or score(self, *a, **k))
    monkeypatch.setattr(match_module, "_token_stats", lambda *a, **k: calibrations.append(1) or token_stats(*a, **k))
    reused = _match_run(memorizing_model, tmp_path, "reused")
    trace = [json.loads(line) for line in (reused.run_dir / "trace.jsonl").read_text().splitlines()]
    assert (len(passes), len(calibrations)) == (len(trace) - 1, 0)  # the starting model: no pass of their own
    monkeypatch.setattr(memorization_run, "_audited_stats", lambda *a, **k: None)
    passes.clear()
    rescored = _match_run(memorizing_model, tmp_path, "rescored")
    again = [json.loads(line) for line in (rescored.run_dir / "trace.jsonl").read_text().splitlines()]
    assert (len(passes), len(calibrations)) == (len(again), 2) and len(again) >= 2  # every step scored, both sets
    assert _without_timings(trace) == _without_timings(again)
    assert _without_timings(reused.metrics) == _without_timings(rescored.metrics)


def test_step_micro_batches_go_longest_first_with_the_same_gradient(memorizing_model, monkeypatch):
    """Base methods (GA, SGA, TA, TAU) hand the engine their rows longest first: each micro-batch pads to rows of
    similar length, and the gradient is the one of the given order (to float rounding)."""
    import torch

    from obliviate.methods.base import MemorizationMethod, by_length
    from obliviate.training import engine as engine_module

    tok = memorizing_model.tokenizer
    windows = [tok(t).input_ids[:n] for t, n in zip(TRAINED_TEXTS, (12, 40, 20, 48))]
    padded = []
    right_pad = engine_module.right_pad

    def counted(rows, *args):
        padded.append(len(rows) * max(map(len, rows)))
        return right_pad(rows, *args)

    monkeypatch.setattr(engine_module, "right_pad", counted)
    grads, losses = [], []
    for order in ([0, 1, 2, 3], by_length(windows, [0, 1, 2, 3])):
        engine = Engine(copy.deepcopy(memorizing_model.model), 256, TrainingConfig(micro_batch_size=2))
        losses.append(engine.accumulate_gradients(windows, order, sign=-1.0))
        grads.append(torch.cat([p.grad.flatten() for p in engine.unwrapped.parameters()]))
    assert by_length(windows, [0, 1, 2, 3]) == [3, 1, 2, 0]
    assert padded == [2 * 40, 2 * 48, 2 * 48, 2 * 20]  # 176 padded tokens in the given order, 136 longest first
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    method = MemorizationMethod("outliers", None)
    seen = []
    monkeypatch.setattr(Engine, "step", lambda self, w, selected, *a: seen.append(selected) or {})
    method.step(engine, windows, [0, 1, 2, 3])
    assert seen == [[3, 1, 2, 0]]


def test_scoring_splits_a_batch_where_padding_costs_more_than_a_forward(memorizing_model, monkeypatch):
    """A length-sorted batch of very different lengths runs as groups of similar length (fewer padded tokens),
    with the values of scoring each window alone (to float rounding)."""
    from obliviate.metrics import scoring

    tok = memorizing_model.tokenizer
    text = " ".join(TRAINED_TEXTS + UNSEEN_TEXTS)
    windows = [tok(text).input_ids[:n] for n in (12, 120, 20, 110, 16, 116)]
    padded = []
    forward = scoring.forward_token_stats

    def counted(model, ids, *args, **kwargs):
        padded.append(ids.numel())
        return forward(model, ids, *args, **kwargs)

    monkeypatch.setattr(scoring, "forward_token_stats", counted)
    scored = scoring.score_windows(memorizing_model.model, windows, pad_id=256, batch_size=8, progress=False)
    assert padded == [3 * 120, 3 * 20]  # one batch of 6 split in two: 420 padded tokens instead of 6 x 120 = 720
    alone = scoring.score_windows(memorizing_model.model, windows, pad_id=256, batch_size=1, progress=False)
    for key, values in alone.memorization().items():
        assert scored.memorization()[key] == pytest.approx(values, rel=1e-5, abs=1e-6), key
