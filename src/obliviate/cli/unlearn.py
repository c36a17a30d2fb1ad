"""``obliviate unlearn`` (any registered method on any registered benchmark), ``obliviate tofu`` (the same on the
tofu benchmark) and ``obliviate methods`` (the methods x benchmarks table). Flags are shortcuts for config keys;
``--set KEY=VALUE`` reaches every key (``--set method.beta=0.05``, ``--set benchmark.epochs=3``). A flag or key
that does not apply to the chosen method or benchmark is an error (exit 2), never silently ignored."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from obliviate.cli.common import (
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
    LimitOpt,
    MaxTokensOpt,
    ModelOpt,
    NeighboursOpt,
    OutOpt,
    QuietOpt,
    RemoteOpt,
    SeedOpt,
    app,
    model_overrides,
    run_action,
)
from obliviate.errors import ConfigError

Opt = typer.Option
Str = str | None

# where a learning rate / training knob lives, per benchmark (the loops differ)
_TRAINING_PREFIX = {"memorization": "benchmark.training.", "associations": "benchmark.training.",
                    "muse-news": "benchmark.training."}  # fmt: skip


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; VALUE is read as YAML (numbers, booleans, lists), so ``--set method.beta=0.05``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. method.beta=0.05), got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot read the value {raw!r}: {exc}") from None
    return out


def _from_yaml(config: Path | None) -> dict[str, Any]:
    if config is None or not config.is_file():
        return {}
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}  # load_config reports it
    return data if isinstance(data, dict) else {}


def _name(value: Any) -> str | None:
    return value.get("name") if isinstance(value, dict) else value


def benchmark_of(flag: str | None, method: str | None, forget: str | None, config: Path | None) -> str:
    """The benchmark a command line selects: --benchmark, the YAML's, or inferred from the forget set."""
    from obliviate.runner import infer_benchmark

    data = _from_yaml(config)
    chosen = flag or _name(data.get("benchmark"))
    if chosen:
        return chosen
    return infer_benchmark(forget or data.get("forget"), method or _name(data.get("method")) or "sga")


def run_config(config: Path | None, overrides: dict[str, Any]):
    from obliviate.config import load_config
    from obliviate.runner import RunConfig

    return load_config(RunConfig, config, overrides)


def unlearn_action(cfg) -> None:
    from obliviate.api import unlearn as api_unlearn
    from obliviate.cli.render import print_run

    result = api_unlearn(cfg)
    print_run(result.run_dir, result.metrics)


@app.command()
def unlearn(
    forget: Annotated[str | None, typer.Argument(help="what to forget: a sequence or question-answer file, or "
                                                     "builtin:NAME [the benchmark's default]")] = None,
    method: Annotated[Str, Opt(help="a registered method (obliviate methods lists them) [sga]")] = None,
    benchmark: Annotated[Str, Opt(help="memorization | qa | associations | tofu | muse-news [from the "
                                                       "forget set: qa for question-answer records]")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="KEY=VALUE for any config key, repeatable "
                                                                 "(method.beta=0.05)")] = None,
    reference: Annotated[Str, Opt(help="memorization: never-seen reference sequences")] = None,
    retain: Annotated[Str, Opt(help="memorization / qa / associations: what to keep (retain term)")] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    preset: Annotated[Str, Opt(help="memorization: default | paper (gamma 0.70, stop on the mean)")] = None,
    stop: Annotated[Str, Opt(help="memorization: outliers (c(D_f) high = 0) | mean (mean MA < tau)")] = None,
    tau: Annotated[float | None, Opt(help="memorization: mean-rule MA threshold [unseen mean]")] = None,
    gamma: Annotated[float | None, Opt(help="sga / tau: selection threshold [band upper edge]")] = None,
    ta_coefficient: Annotated[float | None, Opt(help="ta / tau: edit scale c < 0 [-3 / -1]")] = None,
    first_threshold: Annotated[float | None, Opt(help="ta: GA first above it; tau: SGA until below")] = None,
    reset_optimizer: Annotated[bool | None, Opt("--reset-optimizer", help="tau: reset Adam at the switch")] = None,
    learning_rate: Annotated[float | None, Opt(help="Adam learning rate [the benchmark's default]")] = None,
    max_steps: Annotated[int | None, Opt(help="memorization: cap on optimizer steps [150]")] = None,
    epochs: Annotated[int | None, Opt(help="qa / associations / tofu, objective methods: passes over the "
                                                  "forget set")] = None,
    micro_batch_size: Annotated[int | None, Opt(help="memorization: sequences per forward/backward [8]")] = None,
    max_grad_norm: Annotated[float | None, Opt(help="memorization: clip the gradient norm [off]")] = None,
    lora: Annotated[bool | None, Opt("--lora", help="train a LoRA adapter (rank 32, alpha 64)")] = None,
    lora_rank: Annotated[int | None, Opt(help="LoRA rank [32]")] = None,
    checkpoint_every: Annotated[int | None, Opt(help="memorization: checkpoint every N steps [0: off]")] = None,
    resume: Annotated[Str, Opt(help="memorization: checkpoint directory to continue from")] = None,
    limit: LimitOpt = None,
    max_tokens: MaxTokensOpt = None,
    el_n: Annotated[list[int] | None, Opt("--el-n", help="memorization: also report EL_n (repeatable)")] = None,
    neighbours: NeighboursOpt = None,
    utility_data: Annotated[Str, Opt(help="memorization: folder of multiple-choice files")] = None,
    utility_benchmark: Annotated[list[str] | None, Opt("--utility-benchmark", help="file stem, repeatable")] = None,
    utility_limit: Annotated[int | None, Opt(help="memorization: items per utility benchmark [200]")] = None,
    antisamples: Annotated[Str, Opt(help="unstar: train from this anti-sample JSONL")] = None,
    generator: Annotated[Str, Opt(help="unstar: self | local | openai | template [self]")] = None,
    no_rationale: Annotated[bool, Opt("--no-rationale", help="unstar ablation: wrong answer only")] = False,
    no_escalation: Annotated[bool, Opt("--no-escalation", help="unstar ablation: no escalation")] = False,
    no_retain_step: Annotated[bool, Opt("--no-retain-step", help="unstar ablation: no retain step")] = False,
    max_rounds: Annotated[int | None, Opt(help="unstar: round budget [6]")] = None,
    no_save_model: Annotated[bool, Opt("--no-save-model", help="do not write the unlearned model")] = False,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Unlearn with any registered method on any benchmark it applies to, evaluate before and after, run the
    attacks and write a run directory (metrics.json, summary.md, report.html, the model). Memorization: GA, SGA,
    TA, TAU and the objective methods on sequences, judged per sequence against never-seen text. qa: any
    question-answer file. associations: UnSTAR (or an objective method) on targeted facts. tofu: TOFU-mini.
    muse-news: MUSE-News-mini (VerbMem, KnowMem, PrivLeak and the per-sequence audit on news chunks)."""

    def build():
        bench = benchmark_of(benchmark, method, forget, config)
        train = _TRAINING_PREFIX.get(bench, "benchmark.")
        overrides = {
            "forget": forget, "method.name": method, "benchmark.name": benchmark, "limit": limit, "seed": seed,
            "save_model": False if no_save_model else None, "output_dir": output_dir,
            "progress": False if no_progress else None,
            "method.gamma": gamma, "method.coefficient": ta_coefficient, "method.first_threshold": first_threshold,
            "method.reset_optimizer": reset_optimizer, "method.antisamples": antisamples,
            "method.generator": generator, "method.rationale": False if no_rationale else None,
            "method.escalation": False if no_escalation else None,
            "method.retain_step": False if no_retain_step else None, "method.max_rounds": max_rounds,
            "benchmark.reference": reference, "benchmark.retain": retain, "benchmark.preset": preset,
            "benchmark.stop": stop, "benchmark.tau": tau, "benchmark.resume": resume, "benchmark.epochs": epochs,
            f"{train}learning_rate": learning_rate, "benchmark.training.max_steps": max_steps,
            "benchmark.training.micro_batch_size": micro_batch_size,
            "benchmark.training.max_grad_norm": max_grad_norm,
            "benchmark.training.checkpoint_every": checkpoint_every, "benchmark.training.lora.enabled": lora,
            "benchmark.training.lora.rank": lora_rank, "benchmark.scoring.max_tokens": max_tokens,
            "benchmark.scoring.el_n": el_n, "benchmark.scoring.neighbours": neighbours,
            "benchmark.utility.data_dir": utility_data, "benchmark.utility.benchmarks": utility_benchmark,
            "benchmark.utility.limit": utility_limit, **model_overrides(model, device, dtype, trust_remote_code),
            **parse_sets(set_),
        }  # fmt: skip
        return run_config(config, overrides)

    run_action(build, unlearn_action)


@app.command()
def tofu(
    method: Annotated[Str, Opt(help="a method with a question-answer objective [npo]")] = None,
    tofu_dir: Annotated[Str, Opt("--tofu", help="TOFU folder of JSON(L) splits [the hub]")] = None,
    forget_split: Annotated[Str, Opt(help="forget01 | forget05 | forget10 [forget01]")] = None,
    retain_authors: Annotated[int | None, Opt(help="authors trained besides the forget ones [2]")] = None,
    epochs: Annotated[int | None, Opt(help="unlearning epochs [3]")] = None,
    learning_rate: Annotated[float | None, Opt(help="unlearning Adam learning rate [2e-5]")] = None,
    eval_limit: Annotated[int | None, Opt(help="real-author / world-fact evaluation items [10]")] = None,
    models_dir: Annotated[Str, Opt(help="cache of fine-tuned models [OUTPUT_DIR/tofu-models]")] = None,
    save_model: Annotated[bool | None, Opt("--save-model", help="save the unlearned model")] = None,
    no_trace: Annotated[bool, Opt("--no-trace", help="skip the per-epoch trade-off probes")] = False,
    set_: Annotated[list[str] | None, Opt("--set", help="KEY=VALUE for any config key, repeatable")] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """TOFU-mini (same as `obliviate unlearn --benchmark tofu`): fine-tune on a few TOFU authors (cached), unlearn
    the forget split with one method, report forget quality, model utility, the trade-off per epoch and the
    attacks (report.html)."""

    def build():
        overrides = {
            "method.name": method or ("npo" if not _name(_from_yaml(config).get("method")) else None),
            "benchmark.name": "tofu", "benchmark.tofu": tofu_dir, "benchmark.forget_split": forget_split,
            "benchmark.retain_authors": retain_authors, "benchmark.epochs": epochs,
            "benchmark.learning_rate": learning_rate, "benchmark.eval_limit": eval_limit,
            "benchmark.models_dir": models_dir, "save_model": bool(save_model), "benchmark.trace": False if no_trace
            else None, "seed": seed, "output_dir": output_dir, "progress": False if no_progress else None,
            **model_overrides(model, device, dtype, trust_remote_code), **parse_sets(set_),
        }  # fmt: skip
        return run_config(config, overrides)

    run_action(build, unlearn_action)


@app.command()
def methods() -> None:
    """The registered methods and benchmarks: which method runs on which benchmark, and each method's settings."""
    from obliviate.cli.render import print_registry

    print_registry()
