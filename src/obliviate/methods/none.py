"""``none``: no unlearning at all. It is what ``obliviate evaluate`` runs: every benchmark's own evaluation and
attacks, before and after, with the model under evaluation standing in for the unlearned one. It is not in the
method registry (``obliviate unlearn --method none`` is refused): only the runner's evaluation mode uses it."""

from __future__ import annotations

from typing import Literal

from obliviate.methods.spec import MethodConfig, MethodSpec


class NoUnlearningConfig(MethodConfig):
    name: Literal["none"] = "none"


NO_UNLEARNING = MethodSpec("none", "no unlearning: the model is judged as it is (obliviate evaluate)",
                           NoUnlearningConfig)  # fmt: skip


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``, or :data:`NO_UNLEARNING` for ``none``."""
    from obliviate.methods.spec import METHODS

    return NO_UNLEARNING if name == NO_UNLEARNING.name else METHODS.get(name)
