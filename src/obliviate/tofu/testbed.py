"""A CPU-sized TOFU: fine-tune a small model on a few fictitious authors (the retain authors plus the forget
authors of a forget split), and the retain-only model that never saw the forget authors - the reference that
forget quality compares against. The evaluation sets are TOFU's own perturbed files, the retain one cut to the
retain authors actually trained on."""

from __future__ import annotations

from dataclasses import dataclass, replace

from obliviate.errors import DataError
from obliviate.tofu.data import TofuItem, load_split
from obliviate.tofu.evaluate import TofuEvalSets

QA_PER_AUTHOR = 20


@dataclass(frozen=True)
class TofuMini:
    forget: list[TofuItem]  # training rows of the forget authors (with their perturbed fields)
    retain: list[TofuItem]  # training rows of the retain authors
    eval_sets: TofuEvalSets

    @property
    def full_pairs(self) -> list[tuple[str, str]]:
        return [(x.question, x.answer) for x in (*self.retain, *self.forget)]

    @property
    def retain_pairs(self) -> list[tuple[str, str]]:
        return [(x.question, x.answer) for x in self.retain]


def tofu_mini(root: str, *, retain_authors: int = 8, forget_split: str = "forget01", eval_limit: int | None = None,
              retain_eval_limit: int | None = None) -> TofuMini:  # fmt: skip
    """The first ``retain_authors`` authors of TOFU's full set (those ``retain_perturbed`` covers) and the
    authors of ``forget_split``; real authors / world facts cut to ``eval_limit`` items each, the retain
    evaluation items to ``retain_eval_limit``."""
    if not 1 <= retain_authors <= 19:
        raise DataError(f"retain_authors must be 1..19 (the authors retain_perturbed covers), got {retain_authors}")
    full = load_split("full", root)
    forget = load_split(f"{forget_split}_perturbed", root)
    forget_questions = {x.question for x in forget}
    retain = full[: retain_authors * QA_PER_AUTHOR]
    if forget_questions & {x.question for x in retain}:
        raise DataError("the forget split overlaps the retain authors")
    retain_questions = {x.question for x in retain}
    sets = TofuEvalSets.load(root, forget_split)
    retain_eval = [x for x in sets.retain if x.question in retain_questions][:retain_eval_limit]
    sets = replace(sets, retain=retain_eval, real_authors=sets.real_authors[:eval_limit],
                   world_facts=sets.world_facts[:eval_limit])  # fmt: skip
    return TofuMini(forget, retain, sets)
