"""The ``obliviate`` command line: a thin layer over :mod:`obliviate.api`. Every flag maps to a config field;
``--config FILE`` loads a YAML config and flags given on the command line override it."""

from obliviate.cli import commands, evaluate, unlearn  # noqa: F401  (each module registers its commands)
from obliviate.cli.common import app

__all__ = ["app"]
