"""The ``tofu`` benchmark: TOFU-mini - fine-tune on a few TOFU authors plus the forget split's (cached, with the
retain-only model), unlearn the forget split, judge it the field's way (forget quality, model utility, truth
ratios) with the relearning, paraphrase, quantization and membership attacks."""

from __future__ import annotations

from typing import Any

from obliviate.benchmarks.derive import benchmark_config, flat_config
from obliviate.benchmarks.spec import BenchmarkSpec, RunContext, register
from obliviate.config import TofuConfig
from obliviate.methods.spec import MethodSpec

TofuBenchmarkConfig = benchmark_config("tofu", TofuConfig, drop=frozenset({"rmu_layer"}))


def support(method: MethodSpec) -> str | None:
    if method.objective is None:
        return "it is step-wise on per-sequence memorization scores; TOFU is question-answer data"
    return None


def tofu_config(ctx: RunContext) -> TofuConfig:
    extra: dict[str, Any] = {"method": ctx.method.name}
    if ctx.method.name == "rmu":
        extra["rmu_layer"] = ctx.method.layer
    return flat_config(TofuConfig, ctx, **extra)


def prepare(ctx: RunContext) -> None:
    from obliviate.tofu.run import tofu_data

    if "model" in ctx.inputs:
        from obliviate.errors import ConfigError

        raise ConfigError("the tofu benchmark fine-tunes its own models from a model spec; pass model= as a config")
    ctx.inputs["tofu"] = tofu_data(tofu_config(ctx))


def run(ctx: RunContext) -> dict[str, Any]:
    from obliviate.tofu.run import tofu_in

    return tofu_in(ctx.run_dir, tofu_config(ctx), ctx.inputs.get("tofu"))


register(BenchmarkSpec(
    "tofu", "TOFU-mini: forget quality, model utility, truth ratios, per-epoch trade-off, attacks",
    TofuBenchmarkConfig, default_forget="", support=support, run=run, prepare=prepare,
))  # fmt: skip
