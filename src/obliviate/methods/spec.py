"""The method registry: every unlearning method is one module that registers a :class:`MethodSpec` - its name,
its typed config (every hyperparameter, settable from YAML and from ``--set method.KEY=VALUE``) and how to build
it for the loops it runs in.

Two kinds of loops exist. The **step-wise** loop (memorization benchmark) re-scores every forget sample after
every step, selects what to train on and stops on a per-sample rule; ``stepwise(config, rule, thresholds)``
builds a :class:`~obliviate.methods.base.MemorizationMethod` for it. The **objective** loops step on one scalar
loss per batch (forget, optional retain, optional alternative answers); ``objective(config)`` builds an
:class:`~obliviate.methods.objective.ObjectiveMethod`. A method may provide either or both; UnSTAR (anti-sample
generation) is run by its own benchmark driver."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from obliviate.registry import Registry


class MethodConfig(BaseModel):
    """A method's hyperparameters; subclasses add theirs and fix ``name``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str

    def params(self) -> dict[str, Any]:
        """The hyperparameters without the name (the constructor's keyword arguments)."""
        return self.model_dump(exclude={"name"})


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    config: type[MethodConfig]
    objective: Callable[[Any], Any] | None = None  # config -> ObjectiveMethod
    stepwise: Callable[..., Any] | None = None  # (config, rule, thresholds) -> MemorizationMethod
    antisample: bool = False  # UnSTAR: writes its own training data
    needs: frozenset[str] = field(default_factory=frozenset)  # data a run must provide, e.g. "alternatives"
    own_stop: bool = False  # step-wise with its own stop rule: the benchmark's stop rule settings do not apply

    def make_config(self, **values: Any) -> MethodConfig:
        return self.config.model_validate({"name": self.name, **values})


METHODS: Registry[MethodSpec] = Registry("method")


def register(spec: MethodSpec) -> MethodSpec:
    return METHODS.add(spec.name, spec)
