"""The benchmark registry. A benchmark is a forget-set kind with its data loading and its evaluation: it decides
which methods apply to it (and says why the others do not), and runs one method on it inside the run directory
the runner made, returning the run's metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from obliviate.config import ModelConfig
from obliviate.methods.spec import MethodConfig, MethodSpec
from obliviate.registry import Registry


class BenchmarkConfig(BaseModel):
    """A benchmark's settings; subclasses add theirs and fix ``name``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str


@dataclass
class RunContext:
    """What a benchmark's ``run`` gets from the runner. ``inputs`` holds in-memory objects passed to the Python
    API instead of files (``model``: a LoadedModel; ``forget`` / ``reference`` / ``retain``: texts or question-
    answer pairs); ``run_dir`` is None on the non-main processes of a multi-process run."""

    model: ModelConfig
    forget: str | None
    limit: int | None
    method: MethodConfig
    benchmark: BenchmarkConfig
    seed: int
    save_model: bool
    progress: bool
    run_dir: Path | None
    output_dir: str
    inputs: dict[str, Any] = field(default_factory=dict)
    # evaluation only (obliviate evaluate): the models named by the run's EvaluateConfig; None when unlearning
    evaluate: Any = None

    @property
    def method_spec(self) -> MethodSpec:
        from obliviate.methods.none import method_spec

        return method_spec(self.method.name)

    @property
    def evaluated(self) -> Any:
        """The model under evaluation (a LoadedModel) when this run evaluates instead of unlearning, else None:
        a benchmark puts it where its unlearned model would be and skips the unlearning step."""
        return self.inputs.get("evaluated")

    def before_model(self) -> Any:
        """The model of the "before" column when evaluating: ``--before`` when given, else the evaluated model
        itself (None when unlearning: the benchmark loads its starting model)."""
        return self.inputs.get("before") or self.inputs.get("evaluated")

    def load_other_model(self, spec: str) -> Any:
        """Another model the run compares with (a retain-only or reference model), loaded on the run model's
        device, in its dtype, with its trust_remote_code setting."""
        from obliviate.models import load_model

        m = self.model
        return load_model(spec, device=m.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    summary: str
    config: type[BenchmarkConfig]
    default_forget: str
    support: Callable[[MethodSpec], str | None]  # None when the method runs here, else why it does not
    run: Callable[[RunContext], dict[str, Any]]
    # loads and checks the inputs before the run directory exists (a run that cannot start leaves nothing behind);
    # what it loads goes into ctx.inputs, so ``run`` does not load it again
    prepare: Callable[[RunContext], None] | None = None
    # the benchmark's metrics -> the common ``summary`` of metrics.json (see benchmarks/summary.py)
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # whether a benchmark setting applies to a method (settings of one loop only); None: every setting applies
    applies: Callable[[str, MethodSpec], bool] | None = None

    def make_config(self, **values: Any) -> BenchmarkConfig:
        return self.config.model_validate({"name": self.name, **values})

    def check(self, method: MethodSpec) -> None:
        from obliviate.errors import ConfigError

        if method.name == "none":
            return  # evaluation only: every benchmark evaluates
        reason = self.support(method)
        if reason is not None:
            raise ConfigError(f"method {method.name!r} does not run on the {self.name!r} benchmark: {reason}")

    def check_settings(self, config: BenchmarkConfig, method: MethodSpec) -> None:
        """A setting given explicitly that the method's loop on this benchmark never reads is an error."""
        from obliviate.errors import ConfigError

        if self.applies is None:
            return
        unused = sorted(k for k in config.model_fields_set - {"name"} if not self.applies(k, method))
        if unused:
            raise ConfigError(", ".join(f"benchmark.{k}" for k in unused) + f" does not apply to {method.name!r} on "
                              f"the {self.name!r} benchmark (its loop never reads it); remove it")  # fmt: skip


BENCHMARKS: Registry[BenchmarkSpec] = Registry("benchmark")


def register(spec: BenchmarkSpec) -> BenchmarkSpec:
    return BENCHMARKS.add(spec.name, spec)
