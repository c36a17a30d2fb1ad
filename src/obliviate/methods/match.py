"""MATCH: per-sequence two-sided unlearning to the never-seen level - each forget sequence is moved until it
looks like text the model never saw, from either side, and then left alone.

Targets. Before the first step every forget sequence gets its own targets from the never-seen reference under
the starting model: the forget set, ranked by its loss (mean NLL per token), is mapped quantile for quantile onto
the never-seen loss distribution (the most memorized sequence gets the lowest never-seen quantile); likewise its
mean predictive entropy and its MA (kept inside the band). Reaching them, the forget set has the never-seen
set's spread of likelihoods and of uncertainty - not one value below all of them, nor confidently wrong
predictions, the signatures loss and Min-K%++ attacks read in either direction.

Steps. Each step minimises, over the sequences still off target, (NLL_i - t_i)^2 + (entropy_i - e_i)^2 plus a
hinge that flips the greedy match of the few tokens cheapest to flip until the sequence's MA reaches its target
(or, below it, restores the closest misses): ascent on a sequence still too likely, descent on one pushed too
far; the squared distances make the steps shrink as a sequence nears its targets. Ascending, the loss gradient
skips tokens already less likely than the never-seen Min-K% tail edge (gradient ascent would drive those few
ever lower). Optional terms: KL to the starting model on retain sequences (``--retain``); the likelihood gap to
a fresh perturbed copy (``neighbour_weight``, off: it did not close the neighbourhood gap in our tries).

Stop. Once every sequence is within ``tolerance`` never-seen standard deviations of its loss target and inside
the MA band on both sides, i.e. c(D_f) 0/0 (the entropy term is optimised until then, not waited for); this
rule replaces ``--stop``."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from obliviate.methods.base import MemorizationMethod
from obliviate.methods.match_objective import (  # noqa: F401 - flip_term, lowest_fraction_mean: MATCH's API
    RowGoals,
    TermSettings,
    flip_term,
    lowest_fraction_mean,
    mean_nll,
    row_terms,
)
from obliviate.methods.objective import sequence_batch
from obliviate.methods.preference_losses import token_kl
from obliviate.methods.rules import StopRule, Thresholds
from obliviate.methods.spec import MethodConfig, MethodSpec, register
from obliviate.metrics.tokens import length_groups

if TYPE_CHECKING:
    from obliviate.training.engine import Engine


class MatchConfig(MethodConfig):
    name: Literal["match"] = "match"
    tolerance: float = Field(
        1.0, gt=0, description="on target within this many never-seen standard deviations of its target loss and "
        "entropy"
    )
    flip_weight: float = Field(
        2.0, ge=0, description="weight of the token term that moves each sequence's MA to its never-seen target"
    )
    margin: float = Field(0.1, gt=0, description="logit margin by which a chosen token's greedy match is flipped")
    entropy_weight: float = Field(
        1.0, ge=0, description="weight of the term that moves each sequence's mean predictive entropy to its target"
    )
    neighbour_weight: float = Field(
        0.0, ge=0, description="weight of the term that moves each sequence's likelihood gap to a perturbed copy of "
        "itself to its never-seen target (a fresh perturbation every step, never the audit's; doubles a step's "
        "cost; off: at 1 and 5 it did not close the neighbourhood gap on builtin:famous)",
    )
    retain_weight: float = Field(
        1.0, ge=0, description="weight of the KL to the starting model on retain sequences (only with --retain)"
    )
    retarget_every: int = Field(
        0, ge=0, description="every N steps, re-score the never-seen set under the current model and move the "
        "targets onto its quantiles (the forget set keeps its starting order): the never-seen level drifts as "
        "the model changes (0: targets from the starting model only)",
    )
    minkpp_weight: float = Field(
        1.0, ge=0, description="weight of the term that moves each sequence's Min-K%++ score (mean of its lowest "
        "20% token log-probabilities, each standardised by the model's own predictive distribution) to its "
        "never-seen quantile",
    )


def quantile_targets(current: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-sequence target values: ``current`` ranked and mapped onto the quantiles (i + 0.5) / n of
    ``reference`` (linear interpolation), so the targets keep the current order and have the reference's spread."""
    current, reference = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)
    levels = (np.arange(current.size) + 0.5) / current.size
    targets = np.empty(current.size)
    targets[np.argsort(current, kind="stable")] = np.quantile(reference, levels)
    return targets


class NeverSeenMatching(MemorizationMethod):
    name = "match"

    def __init__(self, rule: StopRule, thresholds: Thresholds, tolerance: float = 1.0, flip_weight: float = 2.0,
                 margin: float = 0.1, entropy_weight: float = 1.0, neighbour_weight: float = 0.0,
                 retain_weight: float = 1.0, minkpp_weight: float = 1.0, retarget_every: int = 0,
                 retain_windows: list[list[int]] | None = None) -> None:  # fmt: skip
        super().__init__(rule, thresholds)
        self.tolerance, self.flip_weight, self.margin = tolerance, flip_weight, margin
        self.entropy_weight, self.neighbour_weight = entropy_weight, neighbour_weight
        self.gap_targets: np.ndarray | None = None  # per sequence: target neighbourhood gap (None: term off)
        self._tokenizer = None
        self._steps = 0
        self.entropy_targets: np.ndarray | None = None  # per sequence: target mean predictive entropy
        self.entropy_tol = 0.0
        self.minkpp_weight, self.retarget_every = minkpp_weight, retarget_every
        self._start_scores: dict[str, np.ndarray] | None = None  # the forget set under the starting model
        self._reference: tuple[list[list[int]], list[list[int]] | None] | None = None
        self.minkpp_targets: np.ndarray | None = None  # per sequence: target Min-K%++ score
        self.minkpp_tol = 0.0
        self.retain_weight, self.retain_windows = retain_weight, retain_windows or []
        self.targets: np.ndarray | None = None  # per sequence: target loss
        self.ma_targets: np.ndarray | None = None  # per sequence: target MA
        self.tol = 0.0  # the tolerance in loss units, set by calibrate
        self.cap = float("inf")  # token NLL of the never-seen min-k tail's edge, set by calibrate
        self.tail = 0.2
        self._ma: np.ndarray | None = None
        self._minkpp: np.ndarray | None = None  # per sequence, as of its last step (None before the first)
        self._start: torch.nn.Module | None = None
        self._cursor = 0
        self._engine: Engine | None = None  # the engine of the last step (to re-score the never-seen set)

    @property
    def stop_rule_name(self) -> str:
        return "never-seen match"

    def calibrate(self, engine, windows, reference_windows, masks=None, reference_masks=None,
                  tokenizer=None, start_stats=None) -> None:  # fmt: skip
        start = engine.unwrapped
        if tokenizer is not None and masks is None and self.neighbour_weight:
            self._tokenizer = tokenizer
            gaps = [_gaps(engine, start, tokenizer, w, NEIGHBOUR_SEED, 2) for w in (windows, reference_windows)]
            self.gap_targets = quantile_targets(*gaps)
        forget_stats, reference_stats = start_stats or (None, None)
        if forget_stats is None:
            forget_stats = _token_stats(start, windows, engine.pad_id)
        forget, _ = _scores_and_token_nll(forget_stats, masks, tail=self.tail)
        self._start_scores, self._reference = forget, (reference_windows, reference_masks)
        self._set_targets(start, engine.pad_id, reference_stats)

    def _set_targets(self, model, pad_id: int, stats=None) -> None:
        """Targets from the never-seen set scored under ``model`` (``stats``: its statistics, when already
        scored); the forget set keeps its starting ranks."""
        assert self._start_scores is not None and self._reference is not None
        forget = self._start_scores
        windows, masks = self._reference
        if stats is None:
            stats = _token_stats(model, windows, pad_id)
        reference, reference_tokens = _scores_and_token_nll(stats, masks, tail=self.tail)
        self.targets = quantile_targets(forget["loss"], reference["loss"])
        self.ma_targets = np.clip(quantile_targets(forget["ma"], reference["ma"]), self.thresholds.lower,
                                  self.thresholds.upper)  # fmt: skip
        self.tol = self.tolerance * float(reference["loss"].std())
        self.entropy_targets = quantile_targets(forget["entropy"], reference["entropy"])
        self.entropy_tol = self.tolerance * float(reference["entropy"].std())
        self.cap = float(np.quantile(reference_tokens, 1 - self.tail))
        self.minkpp_targets = quantile_targets(forget["minkpp"], reference["minkpp"])
        self.minkpp_tol = self.tolerance * float(reference["minkpp"].std())

    def off_target(self, ma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per sequence: its loss is off target; its entropy is; its MA is outside the never-seen band."""
        assert self.targets is not None and self.losses is not None, "calibrate() runs before the first step"
        loss_off = np.abs(self.losses - self.targets) > self.tol
        entropy_off = np.zeros_like(loss_off)
        if self.entropy_weight and "entropy" in self.scores:
            entropy_off = np.abs(self.scores["entropy"] - self.entropy_targets) > self.entropy_tol
        if self.minkpp_weight and self._minkpp is not None:  # best effort, like the entropy
            entropy_off = entropy_off | (np.abs(self._minkpp - self.minkpp_targets) > self.minkpp_tol)
        ma_off = (ma > self.thresholds.upper) | (ma < self.thresholds.lower)
        return loss_off, entropy_off, ma_off

    def should_stop(self, ma: np.ndarray) -> bool:
        """Every sequence inside the band and at its loss target; the entropy term is best effort (it moves
        slowly on formulaic text and would keep the run going long after the attacks stop separating)."""
        loss_off, _, ma_off = self.off_target(ma)
        return not (loss_off | ma_off).any()

    def select(self, ma: np.ndarray) -> np.ndarray:
        self._ma = ma
        if self.retarget_every and self._steps and self._steps % self.retarget_every == 0 and self._engine:
            self._set_targets(self._engine.unwrapped, self._engine.pad_id)
        loss_off, entropy_off, ma_off = self.off_target(ma)
        return np.flatnonzero(loss_off | entropy_off | ma_off)

    def step(self, engine: Engine, windows, selected, masks=None) -> dict[str, float]:
        self._engine = engine
        assert self._ma is not None and self.ma_targets is not None
        self._steps += 1
        goals = self._row_goals(engine, windows, selected, masks)
        settings = TermSettings(cap=self.cap, margin=self.margin, tail=self.tail)
        perturbed = None
        if self.gap_targets is not None:  # one fresh perturbation of each selected sequence, never the audit's seed
            seed = NEIGHBOUR_SEED + self._steps
            perturbed = _perturbed_windows(self._tokenizer, [windows[i] for i in selected], seed)
        # rows of similar length run together (one padded batch under DDP, which wants one forward per backward)
        lengths = [len(windows[i]) for i in selected]
        groups = length_groups(lengths) if engine.world == 1 else [list(range(len(selected)))]
        order = [k for group in groups for k in group]
        ordered = goals.rows(order)
        retain = self._retain_batch(engine, len(selected))
        terms: dict[str, float] = {}

        def objective(model: torch.nn.Module) -> torch.Tensor:
            parts = [row_terms(model, [windows[selected[k]] for k in group],
                               None if masks is None else [masks[selected[k]] for k in group],
                               goals.rows(group), settings, engine.pad_id) for group in groups]  # fmt: skip
            rows = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
            nll = rows["nll"]
            loss = (rows["steer"] + self.flip_weight * rows["flip"] + self.entropy_weight * rows["spread"]).mean()
            if "minkpp" in rows:
                loss = loss + self.minkpp_weight * (rows["minkpp"] - ordered.minkpp).square().mean()
                self._record_minkpp([selected[k] for k in order], rows["minkpp"].detach())
                terms["minkpp"] = float(rows["minkpp"].detach().mean())
            if perturbed is not None:
                copies = torch.cat([mean_nll(model, [perturbed[k] for k in group], engine.pad_id, engine.device)
                                    for group in groups])  # fmt: skip
                gap = copies - nll
                loss = loss + self.neighbour_weight * (gap - ordered.gap).square().mean()
                terms["gap"] = float(gap.detach().mean())
            terms.update(forget_nll=float(nll.detach().mean()), flip=float(rows["flip"].detach().mean()),
                         entropy=float(rows["entropy"].detach().mean()))  # fmt: skip
            if retain is not None:
                with torch.no_grad():
                    start_logits = self._start(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
                own = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
                kl = token_kl(own[:, :-1], start_logits[:, :-1], retain.attention_mask[:, 1:])
                terms["retain_kl"] = float(kl.detach())
                loss = loss + self.retain_weight * kl
            return loss, nll.mean()  # the divergence guard watches the forget NLL

        return engine.objective_step(objective) | terms

    def _row_goals(self, engine: Engine, windows, selected, masks) -> RowGoals:
        """Each selected row's targets, and the greedy matches its flip term moves (MA excess x its tokens)."""
        device = engine.device
        loss_off, _, _ = self.off_target(self._ma)

        def per_row(values, dtype=torch.float32):
            return torch.tensor(np.asarray(values)[selected], dtype=dtype, device=device)

        counts = np.array([sum(m[1:]) for m in masks] if masks is not None else [len(w) - 1 for w in windows])
        excess = np.round((self._ma - self.ma_targets).astype(np.float32) * counts.astype(np.float32))
        return RowGoals(
            loss=per_row(self.targets), entropy=per_row(self.entropy_targets), pull=per_row(loss_off),
            excess=per_row(excess, torch.long),
            minkpp=per_row(self.minkpp_targets) if self.minkpp_weight else None,
            gap=per_row(self.gap_targets) if self.gap_targets is not None else None,
        )  # fmt: skip

    def _record_minkpp(self, selected, values: torch.Tensor) -> None:
        if self._minkpp is None:
            self._minkpp = np.array(self.minkpp_targets, dtype=float) * np.nan
        self._minkpp[np.asarray(selected)] = values.cpu().numpy()

    def _retain_batch(self, engine: Engine, n: int):
        if not self.retain_windows or self.retain_weight == 0:
            return None
        if self._start is None:
            self._start = copy.deepcopy(engine.unwrapped).eval().requires_grad_(False)
        rows = [self.retain_windows[(self._cursor + k) % len(self.retain_windows)] for k in range(n)]
        self._cursor += n
        return sequence_batch(rows, engine.pad_id, engine.device)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "targets": _listed(self.targets), "ma_targets": _listed(self.ma_targets),
                "entropy_targets": _listed(self.entropy_targets), "gap_targets": _listed(self.gap_targets),
                "minkpp_targets": _listed(self.minkpp_targets), "minkpp_tol": self.minkpp_tol,
                "tol": self.tol, "entropy_tol": self.entropy_tol, "cap": self.cap, "steps": self._steps}  # fmt: skip

    def load_state(self, state, engine, tensors) -> None:
        super().load_state(state, engine, tensors)
        self.targets, self.tol = np.asarray(state["targets"], dtype=float), float(state["tol"])
        self.ma_targets, self.cap = np.asarray(state["ma_targets"], dtype=float), float(state["cap"])
        self.entropy_targets = np.asarray(state["entropy_targets"], dtype=float)
        self.entropy_tol, self._steps = float(state["entropy_tol"]), int(state["steps"])
        if state.get("minkpp_targets") is not None:
            self.minkpp_targets = np.asarray(state["minkpp_targets"], dtype=float)
            self.minkpp_tol = float(state["minkpp_tol"])
        gaps = state.get("gap_targets")
        self.gap_targets = None if gaps is None else np.asarray(gaps, dtype=float)


NEIGHBOUR_SEED = 10_007  # the audit perturbs with the scoring seed (0 by default); training never uses its copies


def _perturbed_windows(tokenizer, windows: list[list[int]], seed: int, n: int = 1) -> list[list[int]]:
    """``n`` word-level perturbations of each window's text (rows grouped per window), re-encoded."""
    from obliviate.metrics.perturb import neighbours

    texts = tokenizer.batch_decode(windows)
    rows = [v for variants in neighbours(texts, n, seed=seed) for v in variants]
    longest = max(len(w) for w in windows) + 8
    return [tokenizer(t, add_special_tokens=False).input_ids[:longest] or [tokenizer.pad_token_id] for t in rows]


@torch.no_grad()
def _gaps(engine, model, tokenizer, windows: list[list[int]], seed: int, n: int) -> np.ndarray:
    """Per window: mean NLL of ``n`` perturbed copies minus its own (the audit's neighbourhood gap)."""
    own = engine.score(model, windows, 8)["loss"]
    copies = engine.score(model, _perturbed_windows(tokenizer, windows, seed, n), 8)["loss"]
    return copies.reshape(len(windows), n).mean(1) - own


def _token_stats(model, windows, pad_id, batch_size: int = 8):
    """One teacher-forced pass over ``windows`` (the statistics the audit's ``score_set`` computes)."""
    from obliviate.metrics.scoring import score_windows

    return score_windows(model, windows, pad_id=pad_id, batch_size=batch_size, progress=False).stats


def _scores_and_token_nll(stats, masks=None, tail: float = 0.2):
    """From one teacher-forced pass's statistics: per window its MA, mean NLL and mean entropy (as
    ``Engine.score``) and its Min-K%++ score (as the audit's, lowest ``tail``), and every counted token's NLL
    (one flat array)."""
    from obliviate.metrics.mia import min_k_plus_plus

    keep = [np.asarray(masks[i][1:], dtype=bool) if masks else slice(None) for i in range(len(stats))]
    nll = [-s.target_logprob[k] for s, k in zip(stats, keep)]
    scores = {"ma": np.array([s.matches[k].mean() for s, k in zip(stats, keep)]),
              "loss": np.array([n.mean() for n in nll]),
              "entropy": np.array([-s.expected_logprob[k].mean() for s, k in zip(stats, keep)]),
              "minkpp": np.array([min_k_plus_plus(s, tail, k) for s, k in zip(stats, keep)])}  # fmt: skip
    return scores, np.concatenate(nll)


def _listed(values: np.ndarray | None) -> list[float] | None:
    return None if values is None else values.tolist()


register(MethodSpec(
    "match", "moves each sequence to its own never-seen loss quantile from either side, then stops (c(D_f) 0/0)",
    MatchConfig, own_stop=True,
    stepwise=lambda cfg, rule, thresholds, retain_windows=None: NeverSeenMatching(
        rule, thresholds, **cfg.params(), retain_windows=retain_windows),
))  # fmt: skip
