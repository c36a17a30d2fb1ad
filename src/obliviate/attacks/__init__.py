"""Attacks on an unlearned model, one module each, registered in :data:`ATTACKS`: relearning, quantization,
paraphrase, membership (MIAU for sequences lives in metrics.mia and runs in the memorization audit)."""

from obliviate.attacks import membership, paraphrase, quantization, relearning  # noqa: F401
from obliviate.attacks.spec import ATTACKS, AttackSpec

__all__ = ["ATTACKS", "AttackSpec"]
