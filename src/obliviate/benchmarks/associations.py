"""The ``associations`` benchmark: (subject, relation, object) associations to cut, each with held-out paraphrased
questions and other facts about its subject and its object, plus unrelated facts: accuracy on the four sets
before and after, relearning check, quantization attack. UnSTAR's generator-driven loop runs here."""

from __future__ import annotations

from typing import Any

from obliviate.benchmarks.derive import benchmark_config, flat_config
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.benchmarks.summary import accuracy_sets, paired, summary
from obliviate.methods.spec import MethodSpec
from obliviate.methods.unstar import UnstarMethodConfig
from obliviate.unstar.config import UnstarConfig

AssociationsConfig = benchmark_config("associations", UnstarConfig, drop=frozenset(UnstarMethodConfig.model_fields))


def support(method: MethodSpec) -> str | None:
    if method.antisample:
        return None
    return ("the associations benchmark runs UnSTAR's generation loop only so far; to run this method on the same "
            "questions, put them in a question-answer file and use the qa benchmark")  # fmt: skip


def prepare(ctx: RunContext) -> None:
    from obliviate.unstar.run import read_inputs

    read_inputs(flat_config(UnstarConfig, ctx, **ctx.method.params()))  # fails before any run directory


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.unstar.run import unstar_in

    cfg = flat_config(UnstarConfig, ctx, **ctx.method.params())
    return unstar_in(ctx.run_dir, cfg, ctx.inputs.get("model"))


def summarize(m: dict[str, Any]) -> dict[str, Any]:
    per_sample = {name: paired({a: {"accuracy": v} for a, v in s["per_association"]["before"].items()},
                               {a: {"accuracy": v} for a, v in s["per_association"]["after"].items()})
                  for name, s in m["sets"].items()}  # fmt: skip
    attacks: dict[str, Any] = {}
    relearn = m.get("relearning") or {}
    if "after" in relearn:
        attacks["relearning"] = {"before": relearn["before"], "after": relearn["after"]}
    if m.get("quantization_attack"):
        attacks["quantization"] = {f"accuracy_{b}": v for b, v in m["quantization_attack"].items()}
    return summary(sets=accuracy_sets(m["sets"]), per_sample=per_sample, attacks=attacks, utility=None,
                   steps=m.get("steps"), unlearning_seconds=m.get("seconds_unlearning"))  # fmt: skip


register(BenchmarkSpec(
    "associations", "UnSTAR's targeted facts: held-out paraphrases, subject / object / unrelated retention",
    AssociationsConfig, default_forget="builtin:associations", support=support, run=run,
    prepare=prepare, summarize=summarize,
))  # fmt: skip
