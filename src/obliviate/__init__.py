"""obliviate: make a causal language model forget, and prove it.

The names below are imported on first use, so ``import obliviate`` stays light (no torch, no matplotlib) and
leaves the caller's matplotlib backend alone; ``from obliviate import unlearn`` loads what ``unlearn`` needs."""

from __future__ import annotations

import importlib
from typing import Any

from obliviate._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "ModelConfig": "obliviate.config",
    "ScoringConfig": "obliviate.config",
    "TrainingConfig": "obliviate.config",
    "MemorizationRunConfig": "obliviate.config",
    "TestbedConfig": "obliviate.config",
    "UnlearnConfig": "obliviate.config",
    "UnstarConfig": "obliviate.unstar.config",
    "TofuConfig": "obliviate.config",
    "load_config": "obliviate.config",
    "ObliviateError": "obliviate.errors",
    "ConfigError": "obliviate.errors",
    "DataError": "obliviate.errors",
    "load_facts": "obliviate.data",
    "load_sequences": "obliviate.data",
    "TaskVector": "obliviate.editing",
    "audit_memorization": "obliviate.metrics.audit",
    "load_model": "obliviate.models",
    "LoadedModel": "obliviate.models",
    "audit": "obliviate.api",
    "unlearn": "obliviate.api",
    "evaluate": "obliviate.api",
    "run_unstar": "obliviate.api",
    "generate_antisamples": "obliviate.api",
    "run_tofu": "obliviate.api",
    "build_testbed": "obliviate.api",
    "compare": "obliviate.api",
    "RunResult": "obliviate.api",
    "RunConfig": "obliviate.api",
    "run_unlearning": "obliviate.api",
    "run_memorization": "obliviate.api",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'obliviate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

