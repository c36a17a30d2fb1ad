"""obliviate: make a causal language model forget, and prove it."""

__version__ = "0.1.0"

from obliviate.config import MemorizationRunConfig, ModelConfig, ScoringConfig, TestbedConfig
from obliviate.data import load_facts, load_sequences
from obliviate.metrics.audit import audit_memorization
from obliviate.models import load_model

__all__ = [
    "MemorizationRunConfig",
    "ModelConfig",
    "ScoringConfig",
    "TestbedConfig",
    "__version__",
    "audit_memorization",
    "load_facts",
    "load_model",
    "load_sequences",
]
