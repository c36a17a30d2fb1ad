"""Unlearning methods. Each is a small class; shared pieces live in :mod:`losses` and :mod:`rules`."""

from __future__ import annotations

from obliviate.config import UnlearnConfig
from obliviate.methods.base import MemorizationMethod
from obliviate.methods.gradient_ascent import GradientAscent, SelectiveGradientAscent
from obliviate.methods.rules import Thresholds
from obliviate.methods.task_arithmetic import TaskArithmetic, TaskArithmeticUnlearning

METHODS = {cls.name: cls for cls in (GradientAscent, SelectiveGradientAscent, TaskArithmetic, TaskArithmeticUnlearning)}


def build_method(cfg: UnlearnConfig, thresholds: Thresholds) -> MemorizationMethod:
    """The configured method with the authors' defaults unless the config overrides them."""
    rule, gamma = cfg.stop_rule(), cfg.gamma_value()
    if cfg.method == "ga":
        return GradientAscent(rule, thresholds)
    if cfg.method == "sga":
        return SelectiveGradientAscent(rule, thresholds, gamma)
    cls = TaskArithmetic if cfg.method == "ta" else TaskArithmeticUnlearning
    return cls(
        rule, thresholds, coefficient=cfg.ta_coefficient, first_threshold=cfg.first_threshold,
        gamma=gamma, reset_optimizer=cfg.reset_optimizer,
    )  # fmt: skip


__all__ = ["METHODS", "MemorizationMethod", "Thresholds", "build_method"]
