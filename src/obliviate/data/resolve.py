"""Sequence sets named on the command line: a file path, or ``builtin:NAME`` for a set shipped with obliviate."""

from __future__ import annotations

from obliviate.data.examples import builtin_sequences
from obliviate.data.sequences import SequenceSet, load_sequences
from obliviate.errors import ConfigError

BUILTIN_PREFIX = "builtin:"


def resolve_sequences(spec: str, limit: int | None = None) -> SequenceSet:
    """A sequence file path, or ``builtin:NAME`` for a set shipped with obliviate."""
    if spec.startswith(BUILTIN_PREFIX):
        sequences = builtin_sequences(spec.removeprefix(BUILTIN_PREFIX))
        return sequences.subset(sequences.ids[:limit]) if limit else sequences
    return load_sequences(spec, limit=limit)


def reference_for(target_spec: str, reference_spec: str | None) -> str:
    """The never-seen reference set: the given one, or builtin:fresh beside a built-in target set."""
    if reference_spec is not None:
        return reference_spec
    if not target_spec.startswith(BUILTIN_PREFIX):
        raise ConfigError("A reference set of never-seen sequences is required (--reference FILE)")
    return "builtin:fresh"
