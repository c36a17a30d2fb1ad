"""Built-in example sequence sets for a memorization audit demo.

* ``famous`` - eight well-known public-domain or permissively licensed passages (the opening of the
  Declaration of Independence, the Gettysburg Address, lorem ipsum, the MIT license, ...) that a
  web-trained language model has very likely seen many times.
* ``fresh`` - eight passages of similar length and register written for this package, so a model cannot have
  seen them in training; they serve as never-seen reference text.
"""

from __future__ import annotations

from importlib import resources

from obliviate.data.sequences import SequenceSet, load_sequences
from obliviate.errors import DataError

__all__ = ["BUILTIN_SETS", "builtin_sequences"]

BUILTIN_SETS: tuple[str, ...] = ("famous", "fresh")


def builtin_sequences(name: str) -> SequenceSet:
    """Load the built-in sequence set ``name`` (one of :data:`BUILTIN_SETS`)."""
    if name not in BUILTIN_SETS:
        raise DataError(f"unknown built-in sequence set {name!r}; valid names: {', '.join(BUILTIN_SETS)}")
    resource = resources.files("obliviate.data").joinpath("examples", f"{name}.jsonl")
    with resources.as_file(resource) as path:
        return load_sequences(path, name=name)
