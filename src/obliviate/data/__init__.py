"""Data layer: text sequences and question-answer facts, their loaders, and built-in example sets."""

from __future__ import annotations

from obliviate.data.examples import BUILTIN_SETS, builtin_sequences
from obliviate.data.facts import Fact, FactSet, load_facts
from obliviate.data.sequences import Sequence, SequenceSet, load_sequences

__all__ = [
    "BUILTIN_SETS",
    "Fact",
    "FactSet",
    "Sequence",
    "SequenceSet",
    "builtin_sequences",
    "load_facts",
    "load_sequences",
]
