"""The ``associations`` benchmark: (subject, relation, object) associations to cut, each with held-out paraphrased
questions and other facts about its subject and its object, plus unrelated facts: accuracy on the four sets
before and after, relearning check, quantization attack. UnSTAR's generator-driven loop runs here; the objective
methods (GA, GradDiff, NPO, SimNPO, IdkNLL, IdkDPO, RMU) train on each association's question (the held-out
paraphrases stay unseen, as for UnSTAR) with the retain facts as their retain term, under the same evaluation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from obliviate.benchmarks.derive import benchmark_config, flat_config
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.benchmarks.summary import accuracy_sets, paired, summary
from obliviate.methods.spec import MethodSpec
from obliviate.methods.unstar import UnstarMethodConfig
from obliviate.unstar.config import UnstarConfig

_Base = benchmark_config("associations", UnstarConfig, drop=frozenset(UnstarMethodConfig.model_fields))
# settings of the objective methods' loop only (UnSTAR has its own passes and batch size)
OBJECTIVE_ONLY = frozenset({"epochs", "batch_size"})


class AssociationsConfig(_Base):  # type: ignore[misc,valid-type]
    epochs: int = Field(5, ge=1, description="objective methods: passes over the associations' questions")
    batch_size: int = Field(4, ge=1, description="objective methods: questions per step (with as many retain facts)")


def support(method: MethodSpec) -> str | None:
    if method.antisample or method.objective is not None:
        return None
    return ("it stops each sample on its answer-token MA against never-trained facts, which an associations file "
            "does not have; put the questions in a question-answer file and use the qa benchmark with "
            "benchmark.holdout")  # fmt: skip


def applies(key: str, method: MethodSpec) -> bool:
    """Whether the benchmark setting ``key`` applies to ``method`` (UnSTAR's loop or the objective methods')."""
    return not (method.antisample and key in OBJECTIVE_ONLY)


def prepare(ctx: RunContext) -> None:
    from obliviate.unstar.run import read_inputs

    params = ctx.method.params() if ctx.method_spec.antisample else {}
    read_inputs(flat_config(UnstarConfig, ctx, exclude=OBJECTIVE_ONLY, **params))  # fails before any run directory


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.unstar.run import ObjectiveRun, unstar_in

    spec, b, model = ctx.method_spec, ctx.benchmark, ctx.inputs.get("model")
    if ctx.evaluated is not None:
        return unstar_in(ctx.run_dir, flat_config(UnstarConfig, ctx, exclude=OBJECTIVE_ONLY), ctx.before_model(),
                         evaluated=ctx.evaluated)  # fmt: skip
    if spec.antisample:
        cfg = flat_config(UnstarConfig, ctx, exclude=OBJECTIVE_ONLY, **ctx.method.params())
        return unstar_in(ctx.run_dir, cfg, model)
    objective = ObjectiveRun(spec.name, spec.objective(ctx.method), epochs=b.epochs, batch_size=b.batch_size)
    return unstar_in(ctx.run_dir, flat_config(UnstarConfig, ctx, exclude=OBJECTIVE_ONLY), model, objective=objective)


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    per_sample = {name: paired({a: {"accuracy": v} for a, v in s["per_association"]["before"].items()},
                               {a: {"accuracy": v} for a, v in s["per_association"]["after"].items()})
                  for name, s in m["sets"].items()}  # fmt: skip
    attacks: dict[str, Any] = {}
    relearn = m.get("relearning") or {}
    if "after" in relearn:
        attacks["relearning"] = {"before": relearn["before"], "after": relearn["after"]}
        if relearn.get("recovery") is not None:
            attacks["relearning"]["recovery"] = relearn["recovery"]
    probes = m.get("probes") or {}
    if probes:
        b, a = probes["before"], probes["after"]
        if "multiple_choice" in b:
            mc_b, mc_a = b["multiple_choice"], a["multiple_choice"]
            attacks["multiple_choice"] = {"before": mc_b["accuracy"], "after": mc_a["accuracy"],
                                          "chance": mc_b["chance"]}  # fmt: skip
        attacks["answer_logprob"] = {"before": b["answer_logprob"]["mean"], "after": a["answer_logprob"]["mean"]}
        if "membership" in a:  # forgotten facts against facts never known (the guardrails read it)
            m_a = a["membership"]
            attacks["membership"] = {"auc": m_a["auc"], "auc_either": m_a["auc_either"],
                                     "auc_before": b["membership"]["auc"]}  # fmt: skip
        if "leak_at_k" in b:
            attacks["leak_at_k"] = {"k": b["leak_at_k"]["k"], "before": b["leak_at_k"]["leak"],
                                    "after": a["leak_at_k"]["leak"]}  # fmt: skip
    if m.get("quantization_attack"):
        attacks["quantization"] = {f"accuracy_{b}": v for b, v in m["quantization_attack"].items()}
    return summary(sets=accuracy_sets(m["sets"]), per_sample=per_sample, attacks=attacks, utility=None,
                   steps=m.get("steps"), unlearning_seconds=m.get("seconds_unlearning"))  # fmt: skip


register(BenchmarkSpec(
    "associations", "UnSTAR's targeted facts: held-out paraphrases, subject / object / unrelated retention",
    AssociationsConfig, default_forget="builtin:associations", support=support, run=run,
    prepare=prepare, summarize=summarize, applies=applies,
))  # fmt: skip
