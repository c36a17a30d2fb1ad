"""The ``qa`` benchmark: any question-answer file to forget, an optional one to keep and optional never-trained
facts (membership non-members). Every fact is judged on its own before and after: does the greedy reply give the
answer (the answer judge), the answer's probability, ROUGE-L recall of the reply; the same for the facts'
paraphrased questions (the paraphrase attack) and for the retain facts. Objective methods train in epochs of
shuffled batches, each with as many retain facts; UnSTAR trains towards the facts' wrong answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from obliviate.benchmarks.spec import BenchmarkConfig, BenchmarkSpec, RunContext, register
from obliviate.methods.spec import MethodSpec


class QAConfig(BenchmarkConfig):
    name: Literal["qa"] = "qa"
    retain: str | None = Field(None, description="question-answer facts to keep (the retain term)")
    holdout: str | None = Field(None, description="never-trained facts: membership attack non-members")
    epochs: int = Field(5, ge=1, description="passes over the forget facts")
    batch_size: int = Field(4, ge=1, description="forget facts per step (with as many retain facts)")
    learning_rate: float = Field(2e-5, gt=0, description="Adam learning rate")
    judge: list[str] = Field(
        default_factory=lambda: ["exact", "fuzzy"], description="answer judge: exact | fuzzy | embedding"
    )
    relearn_steps: int = Field(5, ge=0, description="relearning attack: SFT steps on half the forget facts")
    quantization_bits: list[int] = Field(default_factory=lambda: [8, 4], description="quantization attack widths")


def support(method: MethodSpec) -> str | None:
    if method.objective is None:
        return ("it is step-wise on per-sequence memorization scores; question-answer facts have no per-answer "
                "memorization score yet (use the memorization benchmark)")  # fmt: skip
    return None


def prepare(ctx: RunContext) -> None:
    from obliviate.benchmarks.qa_run import load_facts_into

    load_facts_into(ctx)


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.benchmarks.qa_run import run_qa

    return run_qa(ctx)


register(BenchmarkSpec(
    "qa", "any question-answer file: greedy-answer accuracy, answer probability, ROUGE-L, paraphrases, retain",
    QAConfig, default_forget="", support=support, run=run, prepare=prepare,
))  # fmt: skip
