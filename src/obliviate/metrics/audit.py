"""Per-sequence memorization audit of a model: a target set judged against never-seen reference text.

Gives every metric per sequence and aggregated, the unseen-reference distribution and thresholds, the outlier
count c(D_f) in both definitions, and MIAU (can an attacker tell target members from never-seen text?)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from obliviate.config import ScoringConfig
from obliviate.data import SequenceSet
from obliviate.errors import DataError
from obliviate.metrics.mia import mia_scores
from obliviate.metrics.perturb import neighbours
from obliviate.metrics.reference import (
    ReferenceStats,
    calibrated_outlier_count,
    fixed_outlier_count,
    two_sided_outlier_score,
)
from obliviate.metrics.roc import roc_summary
from obliviate.metrics.scoring import WindowScores, score_windows
from obliviate.metrics.teacher_forcing import TokenStats
from obliviate.metrics.tokens import encode_windows
from obliviate.metrics.uncertainty import auc_intervals, band_intervals, ks_forget_quality, privleak
from obliviate.models import LoadedModel

MIA_SCORES = ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp")


@dataclass
class SetScores:
    """Metric values per sequence of one set (arrays aligned with ``ids``)."""

    ids: list[str]
    values: dict[str, np.ndarray]
    # the teacher-forced statistics they came from (one per sequence; None where scores were loaded, not scored):
    # a method calibrating on the same model, windows and settings reuses them instead of scoring again
    stats: list[TokenStats] | None = field(default=None, repr=False, compare=False)

    def per_sample(self) -> dict[str, dict[str, float]]:
        return {sid: {k: float(v[i]) for k, v in self.values.items()} for i, sid in enumerate(self.ids)}

    def aggregate(self) -> dict[str, dict[str, float]]:
        out = {}
        for key, values in self.values.items():
            finite = values[np.isfinite(values)]
            if finite.size:
                out[key] = {
                    "mean": float(finite.mean()),
                    "std": float(finite.std()),
                    "min": float(finite.min()),
                    "median": float(np.median(finite)),
                    "max": float(finite.max()),
                }
        return out


def score_set(
    loaded: LoadedModel, sequences: SequenceSet, cfg: ScoringConfig, *, progress: bool = True, desc: str = ""
) -> SetScores:
    """Memorization metrics (MA, ES, loss, EL_n), MIA scores and the neighbourhood gap for every sequence."""
    tokenizer, model = loaded.tokenizer, loaded.model
    windows = encode_windows(tokenizer, sequences.texts, cfg.max_tokens, ids=sequences.ids)
    if cfg.el_n:
        need = max(cfg.el_n) + 1
        short = [(sid, len(w)) for sid, w in zip(sequences.ids, windows) if len(w) < need]
        if short:
            shown = ", ".join(f"{sid!r} ({n} tokens)" for sid, n in short[:5]) + (" ..." if len(short) > 5 else "")
            raise DataError(f"EL_{max(cfg.el_n)} needs sequences of at least {need} tokens; {len(short)} of "
                            f"{sequences.name!r} are shorter: {shown}. Lower --el-n or drop them.")  # fmt: skip
    texts = tokenizer.batch_decode(windows)
    copies = _neighbour_windows(tokenizer, texts, cfg)
    # the neighbourhood copies share the originals' length-sorted batches (only the originals are decoded for EL)
    scored = score_windows(
        model,
        windows + copies,
        pad_id=tokenizer.pad_token_id,
        batch_size=cfg.batch_size,
        el_ns=tuple(cfg.el_n),
        el_stride=cfg.el_stride,
        decode_batch_size=cfg.decode_batch_size,
        progress=progress,
        desc=f"scoring {desc}".strip() + (f" (+ {len(copies)} neighbours)" if copies else ""),
        el_rows=len(windows),
    )
    own = WindowScores(stats=scored.stats[: len(windows)], extraction=scored.extraction)
    values = own.memorization(cfg.es_convention, cfg.drop_last_token)
    mia = [mia_scores(stats, text, cfg.min_k, minkpp_floor=cfg.minkpp_floor, drop_last_token=cfg.drop_last_token)
           for stats, text in zip(own.stats, texts)]  # fmt: skip
    for key in MIA_SCORES:
        values[key] = np.array([row[key] for row in mia])
    if copies:  # ll(x) - mean ll(perturbations of x)
        neighbour_ll = np.array([s.target_logprob.mean() for s in scored.stats[len(windows) :]])
        values["neighbourhood_gap"] = -values["loss"] - neighbour_ll.reshape(len(texts), cfg.neighbours).mean(axis=1)
    return SetScores(ids=list(sequences.ids), values=values, stats=own.stats)


def _neighbour_windows(tokenizer, texts: list[str], cfg: ScoringConfig) -> list[list[int]]:
    """``cfg.neighbours`` perturbed copies of each text, grouped per text, as windows; each set is perturbed on
    its own (never reusing another's)."""
    if not cfg.neighbours:
        return []
    perturbed = neighbours(texts, cfg.neighbours, seed=cfg.seed, fraction=cfg.perturb_fraction)
    return encode_windows(tokenizer, [variant for variants in perturbed for variant in variants], cfg.max_tokens)


@dataclass
class MemorizationAudit:
    target: SetScores
    reference: SetScores
    cfg: ScoringConfig
    _miau: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def reference_stats(self, metric: str = "ma") -> ReferenceStats:
        return ReferenceStats.from_values(self.reference.values[metric])

    def outliers(self) -> dict[str, Any]:
        ma = self.target.values["ma"]
        calibrated = calibrated_outlier_count(ma, self.reference_stats("ma"), self.cfg.k_sigma)
        if self.cfg.bootstrap:  # where the band's edges, and so the counts, could lie given the never-seen sample
            calibrated["intervals"] = band_intervals(self.reference.values["ma"], ma, self.cfg.k_sigma,
                                                     **self._bootstrap())  # fmt: skip
        return {"fixed": fixed_outlier_count(ma, self.cfg.fixed_low, self.cfg.fixed_high), "calibrated": calibrated}

    def _bootstrap(self) -> dict[str, Any]:
        return {"resamples": self.cfg.bootstrap, "confidence": self.cfg.confidence, "seed": self.cfg.seed}

    def attack_scores(self, scores: SetScores) -> dict[str, np.ndarray]:
        """MIAU scores for one set (higher = more likely a member)."""
        out = {"memorization_two_sided": two_sided_outlier_score(scores.values["ma"], self.reference_stats())}
        if "neighbourhood_gap" in scores.values:
            out["neighbourhood"] = np.abs(scores.values["neighbourhood_gap"])
        out |= {key.removeprefix("mia_"): scores.values[key] for key in MIA_SCORES}
        return out

    def miau(self) -> dict[str, dict[str, Any]]:
        """ROC summary per attack score (computed once; the scores do not change)."""
        if self._miau is None:
            members, nonmembers = self.attack_scores(self.target), self.attack_scores(self.reference)
            self._miau = {name: roc_summary(members[name], nonmembers[name]) for name in members}
            if self.cfg.bootstrap:
                for name, summary in self._miau.items():
                    ci = auc_intervals(members[name], nonmembers[name], **self._bootstrap())
                    summary.update(auc_ci=ci["auc"], auc_either_ci=ci["auc_either"])
        return self._miau

    def to_dict(self) -> dict[str, Any]:
        miau = self.miau()
        best = max(miau, key=lambda name: miau[name]["auc_either"])  # an inverted attack counts too
        metrics = [m for m in ("ma", "es", *(f"el_{n}" for n in self.cfg.el_n)) if m in self.reference.values]
        return {
            "target": {"aggregate": self.target.aggregate(), "per_sample": self.target.per_sample()},
            "reference": {
                "aggregate": self.reference.aggregate(),
                "per_sample": self.reference.per_sample(),
                "distribution": {m: self.reference_stats(m).to_dict() for m in metrics},
            },
            "thresholds": {m: self.reference_stats(m).mean for m in metrics},
            "outliers": self.outliers(),
            "miau": {name: {k: v for k, v in s.items() if k != "curve"} for name, s in miau.items()},
            "miau_best": {"score": best, "auc": miau[best]["auc"], "auc_either": miau[best]["auc_either"],
                          "direction": miau[best]["direction"], "auc_either_ci": miau[best].get("auc_either_ci"),
                          "auc_min": min(s["auc"] for s in miau.values()),
                          "auc_max": max(s["auc"] for s in miau.values())},
        }


log = logging.getLogger("obliviate")
MIN_REFERENCE = 2  # the never-seen band needs a spread: one sequence gives a band of width 0
FEW_REFERENCE = 20  # below this, the band's edges move a lot with the sample (see the bootstrap intervals)


def check_reference(target: SequenceSet, reference: SequenceSet) -> None:
    """The never-seen reference must be other text than the target, and enough of it for a band: a reference
    that shares texts with the target, or holds fewer than 2 sequences, is an error; fewer than 20 a warning.
    Called once per run on its inputs, before the run directory is made (not on every audit)."""
    seen = {" ".join(t.split()) for t in target.texts}
    shared = [sid for sid, t in zip(reference.ids, reference.texts) if " ".join(t.split()) in seen]
    if shared:
        raise DataError(f"the never-seen reference {reference.name!r} contains {len(shared)} of the target's own "
                        f"texts (e.g. {shared[0]!r}); the reference must be text the model never saw, not the forget "
                        "set")  # fmt: skip
    if len(reference) < MIN_REFERENCE:
        raise DataError(f"the never-seen reference {reference.name!r} has {len(reference)} sequence(s); the band "
                        f"mu +- k sigma needs at least {MIN_REFERENCE} ({FEW_REFERENCE} or more for a stable "
                        "band)")  # fmt: skip
    if len(reference) < FEW_REFERENCE:
        log.warning("the never-seen reference %r has only %d sequences: too few for the band mu +- k sigma it is "
                    "asked to give (use %d or more); its edges, the outlier counts and the AUCs rest on few values - "
                    "see their bootstrap intervals in the report",
                    reference.name, len(reference), FEW_REFERENCE)  # fmt: skip


def audit_memorization(
    loaded: LoadedModel,
    target: SequenceSet,
    reference: SequenceSet,
    cfg: ScoringConfig | None = None,
    *,
    progress: bool = True,
) -> MemorizationAudit:
    """Score ``target`` and the never-seen ``reference`` set with the same settings."""
    cfg = cfg or ScoringConfig()
    return MemorizationAudit(
        target=score_set(loaded, target, cfg, progress=progress, desc="target"),
        reference=score_set(loaded, reference, cfg, progress=progress, desc="reference"),
        cfg=cfg,
    )


def against_retain_only(unlearned: MemorizationAudit, retain_only: MemorizationAudit, model: str) -> dict[str, Any]:
    """The unlearned model judged against the gold standard, a model that never saw the forget set (same sets,
    same settings): MUSE's PrivLeak for every attack score (the largest in size is the headline) and the KS
    forget quality of the forget set's per-sequence MA and loss distributions."""
    mine, gold = unlearned.miau(), retain_only.miau()
    shared = [name for name in mine if name in gold]
    # PrivLeak divides by the retain-only model's MUSE AUC: undefined where that is 0 (tiny sets, perfectly separated)
    values = {name: privleak(mine[name]["auc"], gold[name]["auc"]) for name in shared}
    leaks = {name: value for name, value in values.items() if value is not None}
    worst = max(leaks, key=lambda name: abs(leaks[name])) if leaks else None
    return {
        "model": model,
        "auc_retain_only": {name: gold[name]["auc"] for name in shared},
        "privleak": leaks,
        "privleak_undefined": [name for name in shared if name not in leaks],
        "privleak_best": {"score": worst, "value": leaks[worst] if worst else None},
        "forget_quality": {
            metric: ks_forget_quality(unlearned.target.values[metric], retain_only.target.values[metric])
            for metric in ("ma", "loss")
        },
    }
