"""obliviate: make a causal language model forget, and prove it."""

__version__ = "0.1.0"

from obliviate.config import (
    MemorizationRunConfig,
    ModelConfig,
    ScoringConfig,
    TestbedConfig,
    TrainingConfig,
    UnlearnConfig,
    UnstarConfig,
)
from obliviate.data import load_facts, load_sequences
from obliviate.editing import TaskVector
from obliviate.metrics.audit import audit_memorization
from obliviate.models import load_model
from obliviate.unlearning.run import run_unlearning as unlearn
from obliviate.unstar.run import generate_antisamples, run_unstar

__all__ = [
    "MemorizationRunConfig",
    "ModelConfig",
    "ScoringConfig",
    "TaskVector",
    "TestbedConfig",
    "TrainingConfig",
    "UnlearnConfig",
    "UnstarConfig",
    "__version__",
    "audit_memorization",
    "generate_antisamples",
    "load_facts",
    "load_model",
    "load_sequences",
    "run_unstar",
    "unlearn",
]
