"""Unlearning methods, one module each, registered by name in :data:`METHODS` (see :mod:`.spec`). Shared pieces
live once: token losses in :mod:`.losses`, preference losses in :mod:`.preference_losses`, per-step selection and
stop rules in :mod:`.rules`, the objective base class and batches in :mod:`.objective`."""

from __future__ import annotations

from obliviate.config import UnlearnConfig
from obliviate.methods import ga, graddiff, idkdpo, idknll, match, npo, rmu, sga, simnpo, ta, tau, unstar  # noqa: F401
from obliviate.methods.base import MemorizationMethod
from obliviate.methods.rules import Thresholds
from obliviate.methods.spec import METHODS, MethodConfig, MethodSpec


def build_method(cfg: UnlearnConfig, thresholds: Thresholds) -> MemorizationMethod:
    """The step-wise method of a memorization ``UnlearnConfig`` with the authors' defaults unless it overrides them."""
    spec = METHODS.get(cfg.method)
    values = {"gamma": cfg.gamma_value(), "coefficient": cfg.ta_coefficient, "first_threshold": cfg.first_threshold,
              "reset_optimizer": cfg.reset_optimizer}  # fmt: skip
    known = spec.config.model_fields
    method_cfg = spec.make_config(**{k: v for k, v in values.items() if k in known and v is not None})
    return spec.stepwise(method_cfg, cfg.stop_rule(), thresholds)


__all__ = ["METHODS", "MemorizationMethod", "MethodConfig", "MethodSpec", "Thresholds", "build_method"]
