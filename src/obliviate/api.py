"""The Python API: one function per CLI command. Each takes a typed config (or a mapping / YAML path / keyword
overrides) and, where it makes sense, objects already in memory - a loaded model, a list of texts or of
(question, answer) pairs - and returns a typed result. The CLI is a thin layer over these functions."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from obliviate._version import __version__
from obliviate.config import MemorizationRunConfig, TestbedConfig, TofuConfig, UnlearnConfig, load_config
from obliviate.core.rundir import TrackedRun
from obliviate.data.resolve import reference_for, resolve_sequences
from obliviate.runner import RunConfig, RunResult, run

log = logging.getLogger("obliviate")

__all__ = ["RunConfig", "RunResult", "audit", "build_testbed", "compare", "evaluate", "generate_antisamples",
           "run_memorization",
           "run_tofu", "run_unlearning", "run_unstar", "unlearn"]  # fmt: skip


def _config(cls, config: Any, overrides: Mapping[str, Any]) -> Any:
    """``config`` as ``cls``: an instance, a mapping, a YAML path or None (defaults), with dotted overrides."""
    if isinstance(config, cls) and not overrides:
        return config
    if isinstance(config, cls):
        config = config.model_dump(mode="json")
    if isinstance(config, Mapping):
        return load_config(cls, None, {**_flatten(config), **overrides})
    return load_config(cls, config, dict(overrides))


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def unlearn(config: RunConfig | UnlearnConfig | Mapping[str, Any] | str | Path | None = None, *, model: Any = None,
            forget: Any = None, reference: Any = None, retain: Any = None, report: bool = True,
            **overrides: Any) -> RunResult:  # fmt: skip
    """Run one method on one benchmark (the ``obliviate unlearn`` command) and return its :class:`RunResult`.

    ``config``: a RunConfig, a legacy UnlearnConfig, a mapping such as ``{"method": {"name": "npo", "beta": 0.05},
    "forget": "facts.jsonl"}``, or a YAML file. ``overrides``: dotted keys (``**{"method.beta": 0.05}``) or plain
    fields (``method="npo"``). In-memory objects replace files: ``model`` a LoadedModel (trained on a copy, so the
    caller's model is never changed); ``forget`` / ``reference`` / ``retain`` lists of texts (memorization) or of
    (question, answer) pairs (qa)."""
    if isinstance(config, UnlearnConfig):
        config = from_unlearn_config(config)
    inputs: dict[str, Any] = {"model": model} if model is not None else {}
    _data_inputs(inputs, overrides, forget=forget, reference=reference, retain=retain)
    return _reported(run(_config(RunConfig, config, overrides), inputs), report)


def _data_inputs(inputs: dict[str, Any], overrides: dict[str, Any], **sets: Any) -> None:
    """The forget / reference / retain data of a run: a file or builtin:NAME becomes a config override, anything
    else an in-memory input."""
    keys = {"forget": "forget", "reference": "benchmark.reference", "retain": "benchmark.retain"}
    for name, value in sets.items():
        if isinstance(value, str | Path):
            overrides[keys[name]] = str(value)  # a file or builtin:NAME, as in a config
        elif value is not None:
            inputs[name] = value


def _reported(result: RunResult, report: bool) -> RunResult:
    """``result`` after writing its report.html / report.md (when asked and on the main process)."""
    if report and result.run_dir is not None:
        from obliviate.reports.html import write_html_report

        write_html_report(result.run_dir)
    return result


def evaluate(config: RunConfig | Mapping[str, Any] | str | Path | None = None, *, model: Any = None,
             before: Any = None, retain_only: str | Path | None = None, forget: Any = None, reference: Any = None,
             retain: Any = None, tokenizer: Any = None, report: bool = True,
             **overrides: Any) -> RunResult:  # fmt: skip
    """Evaluate a model as it is (the ``obliviate evaluate`` command): the benchmark's own evaluation and attacks,
    the same code an ``unlearn`` run runs before and after, with ``model`` where the unlearned model would be.

    ``model``: the model to judge - a model directory, a LoRA adapter directory (loaded on its base model), a hub
    id, ``embedded`` / ``tiny``, or in memory (a LoadedModel, or a transformers model with ``tokenizer=``);
    ``before``: the model of the "before" column (same kinds); ``retain_only``: a model directory never trained on
    the forget set (PrivLeak, KS forget quality). The benchmark and its data come from ``config`` / ``overrides``
    as for :func:`unlearn` (``benchmark="tofu"``, ``forget=...``); returns a :class:`RunResult` (no model)."""
    inputs: dict[str, Any] = {}
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}  # output_dir=Path(...)
    judged: dict[str, Any] = {"retain_only": str(retain_only) if retain_only is not None else None}
    for key, value, name in (("model", model, "evaluated"), ("before", before, "before")):
        if isinstance(value, str | Path):
            judged[key] = str(value)
        elif value is not None:
            inputs[name] = _in_memory_model(value, tokenizer)
    _data_inputs(inputs, overrides, forget=forget, reference=reference, retain=retain)
    overrides.update({f"evaluate.{k}": v for k, v in judged.items() if v is not None})
    if isinstance(config, RunConfig) and (config.evaluate is None or overrides):
        config = config.model_dump(mode="json", exclude={"method"}, exclude_unset=True)
    cfg = _config(RunConfig, config, overrides)
    if cfg.evaluate is None:  # only in-memory models named: evaluation mode all the same
        data = cfg.model_dump(mode="json", exclude={"method"}, exclude_unset=True)
        cfg = RunConfig.model_validate({**data, "evaluate": {}})
    return _reported(run(cfg, inputs), report)


def _in_memory_model(value: Any, tokenizer: Any) -> Any:
    """A LoadedModel from an in-memory model: a LoadedModel as it is, a transformers model with its tokenizer."""
    from obliviate.errors import ConfigError
    from obliviate.models import LoadedModel

    if isinstance(value, LoadedModel):
        return value
    if tokenizer is None:
        raise ConfigError("an in-memory transformers model needs its tokenizer: evaluate(model=m, tokenizer=t), or "
                          "pass a LoadedModel (obliviate.load_model)")  # fmt: skip
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(value.eval(), tokenizer, "<in memory>")


def from_unlearn_config(cfg: UnlearnConfig) -> RunConfig:
    """A legacy memorization UnlearnConfig as a RunConfig (top-level method knobs move into the method config)."""
    from obliviate.methods import METHODS

    spec = METHODS.get(cfg.method)
    knobs = {"gamma": cfg.gamma, "coefficient": cfg.ta_coefficient, "first_threshold": cfg.first_threshold,
             "reset_optimizer": cfg.reset_optimizer or None}  # fmt: skip
    method = {"name": cfg.method, **{k: v for k, v in knobs.items() if v is not None and k in spec.config.model_fields}}
    bench = {"name": "memorization", "reference": cfg.reference, "retain": cfg.retain, "resume": cfg.resume,
             "retain_only_model": cfg.retain_only_model, "training": cfg.training.model_dump(),
             "scoring": cfg.scoring.model_dump(), "utility": cfg.utility.model_dump(),
             # only the stop settings given: a method with its own stop rule refuses them
             **{k: getattr(cfg, k) for k in ("preset", "stop", "tau") if k in cfg.model_fields_set}}  # fmt: skip
    return RunConfig(model=cfg.model, method=method, benchmark=bench, forget=cfg.forget, limit=cfg.limit,
                     seed=cfg.training.seed, save_model=cfg.save_model, output_dir=cfg.output_dir,
                     progress=cfg.progress)  # fmt: skip


def run_unlearning(cfg: UnlearnConfig) -> tuple[Path | None, dict[str, Any]]:
    """Legacy form of :func:`unlearn` for a memorization UnlearnConfig: (run directory, metrics)."""
    result = unlearn(cfg)
    return result.run_dir, result.metrics


def run_unstar(cfg: Any) -> tuple[Path, dict[str, Any]]:
    """UnSTAR on the associations benchmark from an UnstarConfig: (run directory, metrics)."""
    from obliviate.methods.unstar import UnstarMethodConfig

    data = cfg.model_dump(mode="json")
    method = {k: data.pop(k) for k in list(data) if k in UnstarMethodConfig.model_fields}
    method["name"] = "unstar"
    data.pop("method", None)
    run_fields = {k: data.pop(k) for k in ("model", "forget", "limit", "seed", "save_model", "output_dir", "progress")}
    result = unlearn(RunConfig.model_validate({**run_fields, "method": method,
                                               "benchmark": {"name": "associations", **data}}))  # fmt: skip
    return result.run_dir, result.metrics


def run_tofu(cfg: TofuConfig) -> tuple[Path, dict[str, Any]]:
    """One method on TOFU-mini from a TofuConfig: (run directory, metrics)."""
    data = cfg.model_dump(mode="json")
    method: dict[str, Any] = {"name": data.pop("method")}
    layer = data.pop("rmu_layer")
    if method["name"] == "rmu":
        method["layer"] = layer
    run_fields = {k: data.pop(k) for k in ("model", "seed", "save_model", "output_dir", "progress")}
    result = unlearn(RunConfig.model_validate({**run_fields, "method": method, "benchmark": {"name": "tofu", **data}}))
    return result.run_dir, result.metrics


def audit(config: MemorizationRunConfig | Mapping[str, Any] | str | Path | None = None, *, model: Any = None,
          sequences: Any = None, reference: Any = None, **overrides: Any) -> RunResult:  # fmt: skip
    """Score per-sequence memorization against never-seen text (the ``obliviate memorization`` command)."""
    cfg = _config(MemorizationRunConfig, config, overrides)
    run_dir, metrics = run_memorization(cfg, model=model, sequences=sequences, reference=reference)
    return RunResult(run_dir, metrics)


def run_memorization(cfg: MemorizationRunConfig, *, model: Any = None, sequences: Any = None,
                     reference: Any = None) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    """Score a model on a sequence set against never-seen reference text; returns (run dir, metrics)."""
    from obliviate.benchmarks.memorization_run import sequences_from
    from obliviate.evaluation.audit_report import write_memorization_report
    from obliviate.guardrails import audit_verdicts
    from obliviate.io import write_json_atomic
    from obliviate.metrics.audit import audit_memorization, check_reference
    from obliviate.models import load_model
    from obliviate.models.loading import check_model
    from obliviate.reports.html import write_html_report

    target = sequences_from(sequences, "sequences") if sequences is not None else resolve_sequences(cfg.sequences,
                                                                                                     cfg.limit)
    if reference is not None:
        reference_set = sequences_from(reference, "reference")
    else:
        reference_set = resolve_sequences(reference_for(cfg.sequences if sequences is None else "", cfg.reference),
                                          cfg.limit)  # fmt: skip
    check_reference(target, reference_set)
    if model is None:
        check_model(cfg.model.model, cfg.model.device, cfg.model.dtype)
    with TrackedRun(cfg.output_dir, "memorization", cfg.model_dump(mode="json")) as run_dir:
        log.info("obliviate %s: memorization audit of %s on %s", __version__, cfg.model.model, cfg.sequences)
        loaded = model or load_model(cfg.model.model, device=cfg.model.device, dtype=cfg.model.dtype,
                                     trust_remote_code=cfg.model.trust_remote_code)  # fmt: skip
        result = audit_memorization(loaded, target, reference_set, cfg.scoring, progress=cfg.progress)
        header = {"model": cfg.model.model, "sequences": cfg.sequences, "reference": cfg.reference or "builtin:fresh"}
        metrics = write_memorization_report(run_dir, result, header)
        metrics["guardrails"] = [asdict(v) for v in audit_verdicts(metrics)]
        write_json_atomic(run_dir / "metrics.json", metrics)
        write_html_report(run_dir)  # report.md / report.html: the summary and the guardrail verdicts
        log.info("wrote %s", run_dir)
    return run_dir, metrics


def generate_antisamples(config: Any = None, out: str | Path | None = None, **overrides: Any):
    """UnSTAR anti-samples only, no training (the ``obliviate antisamples`` command): (file, summary)."""
    from obliviate.unstar.config import UnstarConfig
    from obliviate.unstar.run import generate_antisamples as generate

    return generate(_config(UnstarConfig, config, overrides), out)


def build_testbed(config: TestbedConfig | Mapping[str, Any] | str | Path | None = None, **overrides: Any):
    """Build a memorization testbed (the ``obliviate testbed`` command): (run directory, metrics)."""
    from obliviate.testbed.build import build_testbed as build

    return build(_config(TestbedConfig, config, overrides))


def compare(runs: list[str | Path], output_dir: str | Path = "runs") -> tuple[Path, Path]:
    """One table (comparison.md) and one figure (comparison.png) over run directories of any kind."""
    from obliviate.reports.compare import compare_runs

    return compare_runs(runs, output_dir)
