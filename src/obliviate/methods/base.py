"""What a memorization-unlearning method is: per step, which sequences to train on and in which direction,
which model the stop rule judges, and which model is the result. The engine and the loop do the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from obliviate.methods.rules import StopRule, Thresholds, should_stop

if TYPE_CHECKING:
    from obliviate.training.engine import Engine

ASCENT, DESCENT = -1.0, 1.0


def by_length(windows: list[list[int]], selected: list[int]) -> list[int]:
    """``selected`` longest window first (ties in their given order): consecutive micro-batches of similar length."""
    return sorted(selected, key=lambda i: -len(windows[i]))


class MemorizationMethod:
    """Base class: gradient ascent on every sequence, judged on the trained model (that is GA)."""

    name: ClassVar[str] = "base"

    def __init__(self, rule: StopRule, thresholds: Thresholds) -> None:
        self.rule, self.thresholds = rule, thresholds
        self.phase = self.name
        # the scored model's per-sequence scores (ma, loss, entropy), set by the loop before each step
        self.scores: dict[str, np.ndarray] = {}

    @property
    def losses(self) -> np.ndarray | None:
        """Per-sequence mean NLL of the scored model at this step (None before the first)."""
        return self.scores.get("loss")

    def calibrate(self, engine: Engine, windows: list[list[int]], reference_windows: list[list[int]],
                  masks: list[list[int]] | None = None, reference_masks: list[list[int]] | None = None,
                  tokenizer: Any = None, start_stats: tuple[list, list] | None = None) -> None:
        """Called once before the first step with the forget and the never-seen reference windows (the starting
        model): a method that sets per-sequence targets from never-seen text does it here. ``start_stats``: the
        starting model's teacher-forced statistics (``TokenStats``) of both window lists when an audit has just
        scored them (same model, windows and settings), so they need not be scored again."""

    @property
    def stop_rule_name(self) -> str:
        return self.rule

    def should_stop(self, ma: np.ndarray) -> bool:
        """True when the forget set meets the run's stop rule (a method with its own rule overrides this)."""
        return should_stop(ma, self.rule, self.thresholds)

    @property
    def band_upper(self) -> float | None:
        """The band's upper edge when the per-sequence rule is on (selection never goes below it)."""
        return self.thresholds.upper if self.rule == "outliers" else None

    def sign(self) -> float:
        return ASCENT

    def step(self, engine: Engine, windows: list[list[int]], selected: list[int],
             masks: list[list[int]] | None = None) -> dict[str, float]:  # fmt: skip
        """One optimizer step on the selected windows: sign * their mean NLL (the engine's micro-batched step);
        ``masks``: the tokens that count (an answer's, on question-answer data), None for all. The rows go longest
        first, so each micro-batch pads only to rows of similar length (the mean does not depend on the order)."""
        return engine.step(windows, by_length(windows, selected), self.sign(), masks)

    def select(self, ma: np.ndarray) -> np.ndarray:
        return np.arange(len(ma))

    def scored_model(self, engine: Engine) -> torch.nn.Module:
        """The model whose per-sequence MA drives selection and stopping."""
        return engine.unwrapped

    def observe(self, engine: Engine, ma: np.ndarray) -> np.ndarray:
        """Called with the scored model's MA before each step; may change phase. Returns the MA to act on."""
        return ma

    def result(self, engine: Engine) -> torch.nn.Module:
        return engine.unwrapped

    def state(self) -> dict[str, Any]:
        return {"phase": self.phase}

    def load_state(self, state: dict[str, Any], engine: Engine, tensors: dict[str, torch.Tensor]) -> None:
        self.phase = state["phase"]

    def tensors(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint must keep besides the model (e.g. TA's theta_s)."""
        return {}
