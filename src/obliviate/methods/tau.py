"""TAU ("To Each (Textual Sequence) Its Own"): SGA until mean MA drops below a threshold, then TA with c = -1
(Adam's state carried over unless reset)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from obliviate.methods.spec import MethodConfig, MethodSpec, register
from obliviate.methods.ta import TaskArithmetic

if TYPE_CHECKING:
    from obliviate.training.engine import Engine


class TAUConfig(MethodConfig):
    name: Literal["tau"] = "tau"
    coefficient: float = Field(-1.0, lt=0, description="edit scale c of the TA phase")
    first_threshold: float = Field(0.5, gt=0, le=1, description="SGA until mean MA drops below this")
    gamma: float | None = Field(None, description="SGA phase's selection threshold [band upper edge; paper 0.70]")
    reset_optimizer: bool = Field(False, description="reset Adam's state when switching to TA")


class TaskArithmeticUnlearning(TaskArithmetic):
    name = "tau"
    default_coefficient = -1.0
    default_first_threshold = 0.5
    first_phase = "sga"

    def observe(self, engine: Engine, ma: np.ndarray) -> np.ndarray:
        if self.phase == "start":
            self.phase = self.first_phase  # TAU always starts with SGA
        return super().observe(engine, ma)


register(MethodSpec(
    "tau", "SGA, then task arithmetic (c = -1)", TAUConfig,
    stepwise=lambda cfg, rule, thresholds: TaskArithmeticUnlearning(rule, thresholds, **cfg.params()),
))  # fmt: skip
