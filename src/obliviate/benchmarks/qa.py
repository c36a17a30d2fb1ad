"""The ``qa`` benchmark: any question-answer file to forget, an optional one to keep and optional never-trained
facts (membership non-members). Every fact is judged on its own before and after: does the greedy reply give the
answer (the answer judge), the answer's probability, ROUGE-L recall of the reply; the same for the facts'
paraphrased questions (the paraphrase attack) and for the retain facts. Objective methods train in epochs of
shuffled batches, each with as many retain facts; UnSTAR trains towards the facts' wrong answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from obliviate.benchmarks.spec import BenchmarkConfig, BenchmarkSpec, RunContext, register
from obliviate.benchmarks.summary import accuracy_sets, membership_entries, paired, summary
from obliviate.config import MembershipSettings
from obliviate.methods.spec import MethodSpec


class QAConfig(BenchmarkConfig, MembershipSettings):
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
    stop: Literal["mean", "outliers"] = Field(
        "outliers", description="sga / ta / tau: stop once no answer is above the never-seen band, or on the mean"
    )
    max_steps: int = Field(50, ge=0, description="sga / ta / tau: cap on optimizer steps")
    k_sigma: float = Field(2.0, gt=0, description="sga / ta / tau: never-seen band mu +- k sigma of answer-token MA")


def support(method: MethodSpec) -> str | None:
    return None  # objective methods train in epochs; step-wise ones on each fact's answer-token MA


STEPWISE_ONLY, OBJECTIVE_ONLY = frozenset({"stop", "max_steps", "k_sigma"}), frozenset({"epochs", "batch_size"})


def applies(key: str, method: MethodSpec) -> bool:
    """Step-wise methods (sga / ta / tau) stop on a rule within max_steps; the others train for epochs."""
    if method.own_stop and key == "stop":
        return False  # match stops on its own rule
    return key not in (OBJECTIVE_ONLY if method.objective is None else STEPWISE_ONLY)


def prepare(ctx: RunContext) -> None:
    from obliviate.benchmarks.qa_run import load_facts_into

    load_facts_into(ctx)


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.benchmarks.qa_run import run_qa

    return run_qa(ctx)


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    extra = {name: {when: {k: v for k, v in m[when][name]["aggregate"].items() if k != "accuracy"}
                    for when in ("before", "after")} for name in m["sets"]}  # fmt: skip
    per_sample = {name: paired(m["before"][name]["per_sample"], m["after"][name]["per_sample"]) for name in m["sets"]}
    if "answer_ma" in m:  # step-wise methods: each fact's answer-token MA, and its mean
        for sid, values in paired({k: {"answer_ma": v} for k, v in m["answer_ma"]["before"].items()},
                                  {k: {"answer_ma": v} for k, v in m["answer_ma"]["after"].items()}).items():
            per_sample["forget"].setdefault(sid, {}).update(values)
        for when in ("before", "after"):
            extra["forget"][when]["answer_ma"] = sum(m["answer_ma"][when].values()) / len(m["answer_ma"][when])
    attacks = {}
    if "relearning" in m["attacks"]:
        r = m["attacks"]["relearning"]
        attacks["relearning"] = {"recovery": r.get("recovery"), "before": r.get("before"), "after": r.get("after")}
    if m["attacks"].get("quantization"):
        attacks["quantization"] = {f"probability_{k}": v for k, v in m["attacks"]["quantization"].items()}
    if m["attacks"].get("membership"):
        attacks.update(membership_entries(m["attacks"]))
    if m["attacks"].get("paraphrase"):
        p = m["attacks"]["paraphrase"]
        attacks["paraphrase"] = {"probability": p["probability"], "rouge_l_recall": p["rouge_l_recall"]}
    return summary(sets=accuracy_sets(m["sets"], extra), per_sample=per_sample, attacks=attacks, utility=None,
                   steps=m.get("steps"), unlearning_seconds=m.get("seconds_unlearning"))  # fmt: skip


register(BenchmarkSpec(
    "qa", "any question-answer file: greedy-answer accuracy, answer probability, ROUGE-L, paraphrases, retain",
    QAConfig, default_forget="", support=support, run=run, prepare=prepare,
    summarize=summarize, applies=applies,
))  # fmt: skip
