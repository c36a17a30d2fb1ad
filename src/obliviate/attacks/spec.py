"""The attack registry: every attack is one module that registers an :class:`AttackSpec` - what it asks, and the
benchmarks it runs on. A benchmark runs the attacks its config names (``attacks``), each through the attack's own
function, and reports them in one layout (``summary.attacks`` of metrics.json)."""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.registry import Registry


@dataclass(frozen=True)
class AttackSpec:
    name: str
    question: str  # what the attack asks of an unlearned model
    benchmarks: frozenset[str]  # where it runs


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register(spec: AttackSpec) -> AttackSpec:
    return ATTACKS.add(spec.name, spec)
