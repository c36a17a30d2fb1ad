"""Benchmarks, one module each, registered by name in :data:`BENCHMARKS` (see :mod:`.spec`)."""

from obliviate.benchmarks import associations, memorization, muse, qa, tofu  # noqa: F401
from obliviate.benchmarks.spec import BENCHMARKS, BenchmarkConfig, BenchmarkSpec, RunContext

__all__ = ["BENCHMARKS", "BenchmarkConfig", "BenchmarkSpec", "RunContext"]
