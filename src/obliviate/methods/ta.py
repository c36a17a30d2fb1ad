"""TA (task arithmetic) from "To Each (Textual Sequence) Its Own" (TAU, in tau.py, builds on it).

TA descends on the forget set from theta_s and judges the edited model theta_s + c * (theta_t - theta_s),
c < 0; the edited model is the result. If the forget set starts too memorized (mean MA >= first_threshold),
TA first runs GA until it is not, and theta_s is taken at the switch. TAU runs SGA until mean MA drops below
its first threshold, then TA with c = -1 (Adam's state carries over unless reset)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import Field

from obliviate.editing import TaskVector, effective_weights
from obliviate.methods.base import ASCENT, DESCENT, MemorizationMethod
from obliviate.methods.rules import StopRule, Thresholds, select_memorized, select_outliers
from obliviate.methods.spec import MethodConfig, MethodSpec, register

if TYPE_CHECKING:
    from obliviate.training.engine import Engine

EDIT = "ta"


class TAConfig(MethodConfig):
    name: Literal["ta"] = "ta"
    coefficient: float = Field(-3.0, lt=0, description="edit scale c of theta_s + c (theta_t - theta_s)")
    first_threshold: float = Field(0.9, gt=0, le=1, description="gradient ascent first while mean MA >= this")


class TaskArithmetic(MemorizationMethod):
    name = "ta"
    default_coefficient = -3.0
    default_first_threshold = 0.9
    first_phase = "ga"

    def __init__(
        self,
        rule: StopRule,
        thresholds: Thresholds,
        *,
        coefficient: float | None = None,
        first_threshold: float | None = None,
        gamma: float | None = None,
        reset_optimizer: bool = False,
    ) -> None:
        super().__init__(rule, thresholds)
        self.coefficient = self.default_coefficient if coefficient is None else coefficient
        self.first_threshold = self.default_first_threshold if first_threshold is None else first_threshold
        self.gamma = thresholds.upper if gamma is None else gamma
        self.reset_optimizer = reset_optimizer
        self.phase = "start"
        self.theta_s: dict[str, torch.Tensor] | None = None
        self._edited: torch.nn.Module | None = None

    # phases ---------------------------------------------------------------------------------------------
    def observe(self, engine: Engine, ma: np.ndarray) -> np.ndarray:
        if self.phase == "start":
            self.phase = self.first_phase if ma.mean() >= self.first_threshold else EDIT
            if self.phase == EDIT:
                self._switch(engine, reset=False)
        elif self.phase == self.first_phase and ma.mean() < self.first_threshold:
            self._switch(engine, reset=self.reset_optimizer)
        return ma  # at the switch the edited model equals the trained one, so the scores stand

    def _switch(self, engine: Engine, reset: bool) -> None:
        self.phase = EDIT
        self.theta_s = effective_weights(engine.unwrapped)
        self._edited = None
        if reset:
            engine.reset_optimizer()

    # what a step does -----------------------------------------------------------------------------------
    def sign(self) -> float:
        return DESCENT if self.phase == EDIT else ASCENT

    def select(self, ma: np.ndarray) -> np.ndarray:
        if self.phase == EDIT:
            return select_outliers(ma, self.thresholds.upper) if self.rule == "outliers" else np.arange(len(ma))
        if self.phase == "sga":
            return select_memorized(ma, self.gamma, self.band_upper)
        return np.arange(len(ma))  # GA

    # which model is judged ------------------------------------------------------------------------------
    def scored_model(self, engine: Engine) -> torch.nn.Module:
        if self.phase != EDIT:
            return engine.unwrapped
        return self.edited_model(engine)

    def edited_model(self, engine: Engine) -> torch.nn.Module:
        """theta_s + c * (theta_t - theta_s), written into a plain copy of the model."""
        assert self.theta_s is not None
        if self._edited is None:
            self._edited = _plain_copy(engine.unwrapped)
        vector = TaskVector.between(self.theta_s, effective_weights(engine.unwrapped))
        return vector.apply_to(self._edited, scale=self.coefficient, base=self.theta_s)

    def result(self, engine: Engine) -> torch.nn.Module:
        return self.edited_model(engine) if self.phase == EDIT else engine.unwrapped

    # checkpoints ----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"phase": self.phase}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"theta_s.{k}": v for k, v in (self.theta_s or {}).items()}

    def load_state(self, state: dict[str, Any], engine: Engine, tensors: dict[str, torch.Tensor]) -> None:
        self.phase = state["phase"]
        theta = {k.removeprefix("theta_s."): v for k, v in tensors.items() if k.startswith("theta_s.")}
        self.theta_s = theta or None
        self._edited = None


def _plain_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy without adapters (LoRA merged in), in eval mode, for evaluating edits."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return copy.deepcopy(model).merge_and_unload().eval()
    return copy.deepcopy(model).eval()


register(MethodSpec(
    "ta", "task arithmetic: learn the forget set, subtract c times the task vector", TAConfig,
    stepwise=lambda cfg, rule, thresholds: TaskArithmetic(rule, thresholds, **cfg.params()),
))  # fmt: skip
