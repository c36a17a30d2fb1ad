"""The one runner: every (method, benchmark) run goes through :func:`run`. It checks that the method applies to
the benchmark, owns the run directory (a new one per run: config.yaml, run.log, a status file that says running /
finished / failed, metrics.json), hands the benchmark a :class:`RunContext` and returns a :class:`RunResult`."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, model_validator

from obliviate._version import __version__
from obliviate.benchmarks import BENCHMARKS
from obliviate.benchmarks.spec import BenchmarkConfig, RunContext
from obliviate.config import GuardrailConfig, ModelConfig, Seed, _Strict, validation_problems
from obliviate.core.rundir import TrackedRun
from obliviate.errors import ConfigError, DataError
from obliviate.guardrails import guardrails
from obliviate.io import write_json_atomic
from obliviate.methods import MethodConfig
from obliviate.methods.none import method_spec

log = logging.getLogger("obliviate")

SCHEMA_VERSION = 1
# metrics.json's common keys, set by the runner (a benchmark's own keys of these names are replaced)
ENVELOPE = ("schema_version", "benchmark", "method", "model", "status", "run", "summary", "guardrails")


class EvaluateConfig(_Strict):
    """What ``obliviate evaluate`` judges: ``model`` stands where the unlearned model would be, ``before`` fills the
    "before" column, ``retain_only`` is the gold standard that PrivLeak and the KS forget quality compare with."""

    model: str | None = Field(None, description="the model to evaluate: a directory (model or LoRA adapter), a hub "
                                                "id, embedded, tiny[:SEED] [required unless passed in memory]")
    before: str | None = Field(None, description="the model of the before column [memorization / qa / associations: "
                                                 "the evaluated model itself; tofu: TOFU-mini's full model; "
                                                 "muse-news: its target]")
    retain_only: str | None = Field(None, description="a model never trained on the forget set (PrivLeak, KS forget "
                                                      "quality) [tofu / muse-news: the benchmark's own; memorization: "
                                                      "none]")


class RunConfig(_Strict):
    """One unlearning run: a method (``method.name`` + its hyperparameters) on a benchmark (``benchmark.name`` +
    its settings). ``method: npo`` and ``benchmark: qa`` are shorthands for ``{name: ...}``; without a benchmark
    it is inferred from the forget set (question-answer records: qa; associations: associations; else
    memorization) and the method."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    method: SerializeAsAny[MethodConfig] = Field(default="sga", description="a registered method")  # type: ignore[assignment]
    benchmark: SerializeAsAny[BenchmarkConfig] = Field(default=None, description="a registered benchmark")  # type: ignore[assignment]
    forget: str | None = Field(None, description="what to forget (file or builtin:NAME) [the benchmark's default]")
    limit: int | None = Field(None, ge=1, description="use only the first N items of each set")
    seed: Seed = Field(0, description="seed of every random choice (training order, sampling, attacks)")
    save_model: bool = Field(True, description="write the unlearned model into the run directory")
    guardrails: GuardrailConfig = Field(default_factory=GuardrailConfig, description="guardrail verdict thresholds")
    output_dir: str = Field("runs", description="folder in which the new run directory is created")
    progress: bool = True
    evaluate: EvaluateConfig | None = Field(None, description="evaluate a model instead of unlearning (method none)")

    @model_validator(mode="before")
    @classmethod
    def _typed_parts(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        method = data.get("method", "sga")
        if isinstance(method, str):
            method = {"name": method}
        if data.get("evaluate") is not None:
            if isinstance(method, dict) and method.get("name") not in (None, "sga", "none") and "method" in data:
                raise ConfigError(f"evaluate runs no unlearning method (got method {method['name']!r}): leave it out")
            method = {"name": "none"}
        elif isinstance(method, dict) and method.get("name") == "none":
            raise ConfigError("method 'none' does not unlearn: use `obliviate evaluate` (obliviate.evaluate) to "
                              "judge a model as it is")  # fmt: skip
        if isinstance(method, dict):
            method = {"name": "sga", **method}
            method_spec(str(method["name"]))  # an unknown name fails here, listing the choices
        bench = data.get("benchmark")
        if bench is None or isinstance(bench, str):
            bench = {"name": bench}
        if isinstance(bench, dict):
            if not bench.get("name"):
                bench = {**bench, "name": infer_benchmark(data.get("forget"), method.get("name", "sga"))}
            bench_cls = BENCHMARKS.get(str(bench["name"])).config
            if isinstance(method, dict):
                method_cls = method_spec(str(method["name"])).config
                _move_flat_keys(data, method, bench, method_cls, bench_cls)
                data["method"] = _validated("method", method_cls, method)
            data["benchmark"] = _validated("benchmark", bench_cls, bench)
        return data


_RENAMED = {"ta_coefficient": "coefficient"}  # flat (pre-registry) config keys whose method setting has another name


def _move_flat_keys(data: dict[str, Any], method: dict[str, Any], bench: dict[str, Any], method_cls: type[BaseModel],
                    bench_cls: type[BaseModel]) -> None:  # fmt: skip
    """Flat configs (every key at the top, as before the registries) still load: a top-level key that is not a
    run setting moves into the method's settings when it is one of them, else into the benchmark's."""
    for key in [k for k in data if k not in RunConfig.model_fields]:
        target = _RENAMED.get(key, key)
        if target in method_cls.model_fields:
            method.setdefault(target, data.pop(key))
        elif key in bench_cls.model_fields:
            bench.setdefault(key, data.pop(key))


def _validated(kind: str, cls: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    """``cls`` built from ``values``; a key that is not one of its settings, or a bad value, is a ConfigError that
    names the key, the method or benchmark, and its settings."""
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        name = values.get("name")
        settings = ", ".join(k for k in cls.model_fields if k != "name") or "none"
        problems = validation_problems(exc, prefix=f"{kind}.", owner=f" of the {kind} {name!r}")
        raise ConfigError(f"{problems} (settings of {kind} {name!r}: {settings})") from None


def infer_benchmark(forget: str | None, method: str) -> str:
    """The benchmark a forget set belongs to, when none is named."""
    if forget is None:
        return "associations" if method == "unstar" else "memorization"
    if forget == "builtin:associations":
        return "associations"
    if forget.startswith("builtin:"):
        return "memorization"
    if not Path(forget).exists():
        raise DataError(f"{forget}: file not found")
    keys = _first_record_keys(Path(forget))
    if {"subject", "object", "heldout"} <= keys:
        return "associations"
    return "qa" if {"question", "answer"} <= keys else "memorization"


def _first_record_keys(path: Path) -> set[str]:
    """Keys of the first record of a JSON(L) or CSV file (empty when it cannot be read: the loader reports it)."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            head = handle.read(65536)
    except (OSError, UnicodeDecodeError):
        return set()
    if path.suffix.lower() == ".csv":
        return {k.strip() for k in head.splitlines()[0].split(",")} if head else set()
    text = head.lstrip()
    try:
        first = json.loads(text.splitlines()[0]) if text else None
    except (json.JSONDecodeError, IndexError):
        first = None
    if first is None and text.startswith("["):
        try:
            first = (json.loads(path.read_text(encoding="utf-8-sig")) or [None])[0]
        except (OSError, json.JSONDecodeError):
            return set()
    return set(first) if isinstance(first, dict) else set()


@dataclass
class RunResult:
    """What a run returns: its directory (None on the non-main processes of a multi-process run), its metrics
    (the contents of metrics.json) and, when kept in memory, the unlearned model. Unpacks as (run_dir, metrics)."""

    run_dir: Path | None
    metrics: dict[str, Any]
    model: Any = field(default=None, repr=False)

    def __iter__(self):
        return iter((self.run_dir, self.metrics))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run(cfg: RunConfig, inputs: dict[str, Any] | None = None) -> RunResult:
    """Run ``cfg.method`` on ``cfg.benchmark``. ``inputs`` holds in-memory objects used instead of files
    (``model``: a LoadedModel; ``forget``, ``reference``, ``retain``: the benchmark's data; when evaluating,
    ``evaluated`` / ``before``: the LoadedModels to judge and to compare with).

    With ``cfg.evaluate`` the run evaluates instead of unlearning: the benchmark runs its own evaluation and
    attacks (the very code an unlearning run runs before and after) with the evaluated model where the unlearned
    model would be and nothing trained or saved."""
    bench, method = BENCHMARKS.get(cfg.benchmark.name), method_spec(cfg.method.name)
    bench.check(method)
    bench.check_settings(cfg.benchmark, method)
    inputs = dict(inputs or {})
    evaluating = cfg.evaluate is not None
    ctx = RunContext(model=cfg.model, forget=cfg.forget, limit=cfg.limit, method=cfg.method, benchmark=cfg.benchmark,
                     seed=cfg.seed, save_model=cfg.save_model and not evaluating, progress=cfg.progress, run_dir=None,
                     output_dir=cfg.output_dir, inputs=inputs, evaluate=cfg.evaluate)  # fmt: skip
    in_memory = sorted(inputs)
    if "model" not in inputs:
        from obliviate.models.loading import check_model

        check_model(cfg.model.model, cfg.model.device, cfg.model.dtype)
    if evaluating:
        _check_evaluated(cfg, inputs)
    if bench.prepare is not None:
        bench.prepare(ctx)
    if evaluating:
        _load_evaluated(cfg, inputs)
    if not _is_main_process():
        if not evaluating:  # evaluation is the main process's alone
            bench.run(ctx)
        return RunResult(None, {})
    record = cfg.model_dump(mode="json")
    record["inputs_in_memory"] = in_memory
    label = "evaluate" if evaluating else method.name
    with TrackedRun(cfg.output_dir, f"{bench.name}-{label}", record) as run_dir:
        ctx.run_dir = run_dir
        judged = _model_name(cfg, inputs)
        log.info("obliviate %s: %s on the %s benchmark, model %s", __version__,
                 "evaluation" if evaluating else method.name, bench.name, judged)  # fmt: skip
        started = time.perf_counter()
        metrics = bench.run(ctx)
        metrics = {key: value for key, value in metrics.items() if key not in ENVELOPE}
        run_record = {"obliviate": __version__, "run_dir": run_dir.name, "seed": cfg.seed, "forget": cfg.forget,
                      "inputs_in_memory": in_memory, "method_config": cfg.method.model_dump(mode="json"),
                      "benchmark_config": cfg.benchmark.model_dump(mode="json")}  # fmt: skip
        if evaluating:
            run_record["evaluate"] = {**cfg.evaluate.model_dump(mode="json"), "model": judged,
                                      "before": _before_name(cfg, inputs)}  # fmt: skip
        metrics = {
            "schema_version": SCHEMA_VERSION, "benchmark": bench.name, "method": method.name, "model": judged,
            "status": "finished", "run": run_record,
            "summary": bench.summarize(metrics) if bench.summarize else {}, **metrics,
        }  # fmt: skip
        metrics["summary"].setdefault("timings", {})["wall_seconds"] = time.perf_counter() - started
        metrics["guardrails"] = [asdict(v) for v in guardrails(run_dir, metrics, cfg.guardrails)]
        write_json_atomic(run_dir / "metrics.json", metrics)
        log.info("wrote %s", run_dir)
    return RunResult(run_dir, metrics, inputs.get("unlearned_model"))


def _model_name(cfg: RunConfig, inputs: dict[str, Any]) -> str:
    """The model metrics.json names: the evaluated one when evaluating, else the starting model."""
    if cfg.evaluate is not None:
        return cfg.evaluate.model or "<in memory>"
    return "<in memory>" if "model" in inputs else cfg.model.model


def _before_name(cfg: RunConfig, inputs: dict[str, Any]) -> str | None:
    assert cfg.evaluate is not None
    if cfg.evaluate.before:
        return cfg.evaluate.before
    return "<in memory>" if "before" in inputs else None


def _check_evaluated(cfg: RunConfig, inputs: dict[str, Any]) -> None:
    """The evaluated, before and retain-only models exist (checked before any run directory is made)."""
    from obliviate.models.loading import check_model

    e = cfg.evaluate
    assert e is not None
    if e.model is None and "evaluated" not in inputs:
        raise ConfigError("evaluate needs the model to judge: --model DIR (or model= in the Python API)")
    if e.retain_only and cfg.benchmark.name in ("qa", "associations"):
        raise ConfigError(f"--retain-only: the {cfg.benchmark.name} benchmark has no retain-only comparison "
                          "(memorization, tofu and muse-news do)")  # fmt: skip
    for spec in (e.model, e.before, e.retain_only):
        if spec:
            check_model(spec, cfg.model.device, cfg.model.dtype)


def _load_evaluated(cfg: RunConfig, inputs: dict[str, Any]) -> None:
    from obliviate.models import load_model

    e, m = cfg.evaluate, cfg.model
    assert e is not None
    for key, spec in (("evaluated", e.model), ("before", e.before)):
        if spec and key not in inputs:
            inputs[key] = load_model(spec, device=m.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code)


__all__ = ["EvaluateConfig", "RunConfig", "RunResult", "infer_benchmark", "run"]
