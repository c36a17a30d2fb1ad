"""Objective methods (NPO, SimNPO, GradDiff, RMU, ...) in the step-wise loop of the memorization benchmark: each
step takes the method's loss on the selected sequences - every token a target - and, for methods with a retain
term, on as many retain sequences (cycled); methods that compare with the starting model get a frozen copy of it.
Selection follows the per-sequence rule: under ``outliers`` only sequences still above the never-seen band."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from obliviate.errors import ConfigError
from obliviate.methods.base import MemorizationMethod
from obliviate.methods.objective import ObjectiveMethod, QABatch, sequence_batch
from obliviate.methods.rules import StopRule, Thresholds, select_outliers
from obliviate.metrics.tokens import right_pad

if TYPE_CHECKING:
    from obliviate.training.engine import Engine


class ObjectiveOnSequences(MemorizationMethod):
    def __init__(self, objective: ObjectiveMethod, rule: StopRule, thresholds: Thresholds,
                 retain_windows: list[list[int]] | None = None) -> None:  # fmt: skip
        super().__init__(rule, thresholds)
        self.objective, self.retain_windows = objective, retain_windows or []
        self.name = objective.name
        self.phase = objective.name
        self._reference = None
        self._cursor = 0

    def select(self, ma: np.ndarray) -> np.ndarray:
        if self.band_upper is not None:
            return select_outliers(ma, self.band_upper)
        return np.arange(len(ma))

    def step(self, engine: Engine, windows: list[list[int]], selected: list[int],
             masks: list[list[int]] | None = None) -> dict[str, float]:  # fmt: skip
        if self.objective.needs_reference and self._reference is None:
            self._reference = copy.deepcopy(engine.unwrapped).eval().requires_grad_(False)
        pad = engine.pad_id
        forget = sequence_batch([windows[i] for i in selected], pad, engine.device)
        if masks is not None:
            target = right_pad([masks[i] for i in selected], 0, engine.device)[0]
            forget = QABatch(forget.input_ids, forget.attention_mask, target)
        retain = None
        if self.retain_windows:
            n = len(self.retain_windows)
            rows = [self.retain_windows[(self._cursor + k) % n] for k in range(len(selected))]
            self._cursor += len(selected)
            retain = sequence_batch(rows, pad, engine.device)
        return engine.objective_step(lambda m: self.objective.loss(m, self._reference, forget, retain))

    def load_state(self, state, engine, tensors) -> None:
        if self.objective.needs_reference:
            raise ConfigError(f"{self.name} compares with the model before unlearning, which a checkpoint does not "
                              "keep: start the run again instead of resuming it")  # fmt: skip
        super().load_state(state, engine, tensors)
