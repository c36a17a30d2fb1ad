"""The ``obliviate`` command line: a thin layer over :mod:`obliviate.api`. Every flag maps to a config field;
``--config FILE`` loads a YAML config and flags given on the command line override it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from obliviate import __version__
from obliviate.config import (
    TOFU_METHODS,
    MemorizationRunConfig,
    TestbedConfig,
    TofuConfig,
    UnlearnConfig,
    UnstarConfig,
    load_config,
)
from obliviate.errors import ObliviateError

app = typer.Typer(
    name="obliviate",
    help="Make a causal language model forget, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML config file; flags override it")]
ModelOpt = Annotated[str | None, typer.Option(help="embedded (default) | tiny[:SEED] | HF model dir | hub id")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda[:N]")]
DtypeOpt = Annotated[str | None, typer.Option(help="auto | float32 | bfloat16 | float16")]
RemoteOpt = Annotated[bool | None, typer.Option("--trust-remote-code", help="allow model code from the hub")]
OutOpt = Annotated[str | None, typer.Option(help="folder in which the new run directory is created [runs]")]
QuietOpt = Annotated[bool, typer.Option("--no-progress", help="hide progress bars")]
SeedOpt = Annotated[int | None, typer.Option(help="random seed [0]")]
LimitOpt = Annotated[int | None, typer.Option(help="only the first N sequences of each set")]
MaxTokensOpt = Annotated[int | None, typer.Option(help="window length T in tokens [200]")]
NeighboursOpt = Annotated[int | None, typer.Option(help="perturbations per sequence for MIAU, 0 disables [5]")]


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("obliviate")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # a library that configures the root logger (absl, via rouge-score) would echo it


def _run(build, action):
    """Build the config and run the action, turning expected errors into a clear message and exit code 2."""
    try:
        return action(build())
    except ObliviateError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)  # no line breaks inside paths
        raise typer.Exit(2) from None


def _model_overrides(model, device, dtype, trust_remote_code) -> dict[str, Any]:
    return {
        "model.model": model,
        "model.device": device,
        "model.dtype": dtype,
        "model.trust_remote_code": trust_remote_code,
    }


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    _setup_logging(verbose)
    if version:
        console.print(f"obliviate {__version__}")
        raise typer.Exit()


@app.command()
def memorization(
    sequences: Annotated[str | None, typer.Argument(help="sequence file (jsonl/json/csv/txt) or builtin:NAME")] = None,
    reference: Annotated[str | None, typer.Option(help="never-seen reference sequences (file or builtin:NAME)")] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    limit: LimitOpt = None,
    max_tokens: MaxTokensOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="sequences per forward pass [8]")] = None,
    el_n: Annotated[list[int] | None, typer.Option("--el-n", help="EL_n's n, repeatable [10]")] = None,
    no_el: Annotated[bool, typer.Option("--no-el", help="skip EL_n (the only metric that decodes)")] = False,
    el_stride: Annotated[int | None, typer.Option(help="use every k-th prefix for EL_n [1]")] = None,
    decode_batch_size: Annotated[int | None, typer.Option(help="rows per batched greedy decode [256]")] = None,
    min_k: Annotated[float | None, typer.Option(help="fraction for Min-K% and Min-K%++ [0.2]")] = None,
    neighbours: NeighboursOpt = None,
    k_sigma: Annotated[float | None, typer.Option(help="calibrated band: unseen mean +- k*std [2]")] = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Score per-sequence memorization (MA, EL_n, ES, loss, MIA scores) against never-seen text; c(D_f), MIAU."""
    from obliviate.api import run_memorization

    overrides = {
        "sequences": sequences,
        "reference": reference,
        "limit": limit,
        "output_dir": output_dir,
        "progress": False if no_progress else None,
        "scoring.max_tokens": max_tokens,
        "scoring.batch_size": batch_size,
        "scoring.el_n": [] if no_el else el_n,
        "scoring.el_stride": el_stride,
        "scoring.decode_batch_size": decode_batch_size,
        "scoring.min_k": min_k,
        "scoring.neighbours": neighbours,
        "scoring.k_sigma": k_sigma,
        "scoring.seed": seed,
        **_model_overrides(model, device, dtype, trust_remote_code),
    }

    def action(cfg: MemorizationRunConfig) -> None:
        run_dir, metrics = run_memorization(cfg)
        _print_audit(metrics)
        console.print(f"\nRun directory: [bold]{run_dir}[/] (summary.md, metrics.json, ma_histogram.png)")

    _run(lambda: load_config(MemorizationRunConfig, config, overrides), action)


@app.command()
def testbed(
    source: Annotated[
        str | None, typer.Argument(help="text source (csv/jsonl/json/txt) to draw sequences from")
    ] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    forget: Annotated[int | None, typer.Option(help="sequences to inject [32]")] = None,
    heldout: Annotated[int | None, typer.Option(help="never-injected sequences [32]")] = None,
    filler: Annotated[int | None, typer.Option(help="ordinary documents mixed in [64]")] = None,
    tokens: Annotated[int | None, typer.Option(help="sequence length in tokens [128]")] = None,
    min_repeats: Annotated[int | None, typer.Option(help="fewest repetitions of a forget sequence [1]")] = None,
    max_repeats: Annotated[int | None, typer.Option(help="most repetitions of a forget sequence [16]")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="AdamW learning rate [1e-4]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="training batch size [8]")] = None,
    retain_only: Annotated[bool | None, typer.Option("--retain-only", help="also train the retain-only model")] = None,
    neighbours: NeighboursOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Build a memorization testbed: inject sequences with a spread of repetitions; save models and splits."""
    from obliviate.testbed.build import build_testbed

    overrides = {
        "source": source,
        "forget": forget,
        "heldout": heldout,
        "filler": filler,
        "tokens": tokens,
        "min_repeats": min_repeats,
        "max_repeats": max_repeats,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "retain_only": retain_only,
        "seed": seed,
        "output_dir": output_dir,
        "progress": False if no_progress else None,
        "scoring.neighbours": neighbours,
        "scoring.seed": seed,
        **_model_overrides(model, device, dtype, trust_remote_code),
    }

    def action(cfg: TestbedConfig) -> None:
        run_dir, metrics = build_testbed(cfg)
        s = metrics["summary"]
        table = Table(title="Testbed")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for key in (
            "forget_ma_min",
            "forget_ma_max",
            "forget_ma_mean",
            "heldout_ma_base",
            "heldout_ma_memorized",
            "heldout_ma_shift",
            "spearman_repetitions_vs_ma",
            "wall_seconds",
        ):
            table.add_row(key, f"{s[key]:.4f}")
        table.add_row("best MIAU AUC", f"{s['miau_best']['auc']:.4f} ({s['miau_best']['score']})")
        console.print(table)
        console.print(f"\nRun directory: [bold]{run_dir}[/] (memorized/, splits/, metrics.json, summary.md)")

    _run(lambda: load_config(TestbedConfig, config, overrides), action)


@app.command()
def unlearn(
    forget: Annotated[
        str | None,
        typer.Argument(help="sequences to forget [builtin:famous], or for unstar associations [builtin:associations]"),
    ] = None,
    method: Annotated[str | None, typer.Option(help="ga | sga | ta | tau | unstar [sga]")] = None,
    reference: Annotated[str | None, typer.Option(help="never-seen reference sequences (file or builtin:NAME)")] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    preset: Annotated[str | None, typer.Option(help="default | paper (authors' gamma 0.70, stop on the mean)")] = None,
    stop: Annotated[str | None, typer.Option(help="outliers (c(D_f) high side = 0) | mean (mean MA < tau)")] = None,
    tau: Annotated[float | None, typer.Option(help="mean-rule MA threshold [unseen mean]")] = None,
    gamma: Annotated[float | None, typer.Option(help="SGA selection threshold [band upper edge; paper 0.70]")] = None,
    ta_coefficient: Annotated[float | None, typer.Option(help="TA edit scale c < 0 [TA -3, TAU -1]")] = None,
    first_threshold: Annotated[
        float | None, typer.Option(help="TA: GA first above it [0.9]; TAU: SGA until below [0.5]")
    ] = None,
    reset_optimizer: Annotated[
        bool | None, typer.Option("--reset-optimizer", help="TAU: reset Adam at the switch")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Adam learning rate [5e-5]")] = None,
    max_steps: Annotated[int | None, typer.Option(help="cap on optimizer steps [150]")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="sequences per forward/backward [8]")] = None,
    max_grad_norm: Annotated[float | None, typer.Option(help="clip the gradient norm [off]")] = None,
    lora: Annotated[bool | None, typer.Option("--lora", help="train a LoRA adapter (rank 32, alpha 64)")] = None,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank [32]")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="resumable checkpoint every N steps [0: off]")] = None,
    resume: Annotated[str | None, typer.Option(help="checkpoint directory to continue from")] = None,
    limit: LimitOpt = None,
    max_tokens: MaxTokensOpt = None,
    el_n: Annotated[list[int] | None, typer.Option("--el-n", help="also report EL_n before/after (repeatable)")] = None,
    neighbours: NeighboursOpt = None,
    utility_data: Annotated[str | None, typer.Option(help="folder of zero-shot multiple-choice files")] = None,
    utility_benchmark: Annotated[
        list[str] | None, typer.Option("--utility-benchmark", help="file stem, repeatable [piqa, arc_easy]")
    ] = None,
    utility_limit: Annotated[int | None, typer.Option(help="items per utility benchmark [200]")] = None,
    antisamples: Annotated[str | None, typer.Option(help="unstar: train from this anti-sample JSONL")] = None,
    generator: Annotated[str | None, typer.Option(help="unstar: self | local | openai | template [self]")] = None,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="unstar ablation: wrong answer only")] = False,
    no_escalation: Annotated[bool, typer.Option("--no-escalation", help="unstar ablation: no escalation")] = False,
    no_retain_step: Annotated[bool, typer.Option("--no-retain-step", help="unstar ablation: no retain step")] = False,
    max_rounds: Annotated[int | None, typer.Option(help="unstar: round budget [6]")] = None,
    no_save_model: Annotated[bool, typer.Option("--no-save-model", help="do not write the unlearned model")] = False,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Unlearn memorized sequences (GA, SGA, TA, TAU; audit before and after: c(D_f), MIAU, utility) or cut
    question-answer associations with UnSTAR (targeted evaluation before and after, relearning check)."""
    from obliviate.unlearning.run import run_unlearning

    if (method or _config_method(config)) == "unstar":
        unstar_overrides = {
            "forget": forget, "antisamples": antisamples, "generator": generator, "limit": limit,
            "rationale": False if no_rationale else None, "escalation": False if no_escalation else None,
            "retain_step": False if no_retain_step else None, "max_rounds": max_rounds, "seed": seed,
            "training.learning_rate": learning_rate, "training.lora.enabled": lora, "training.lora.rank": lora_rank,
            "training.seed": seed, "save_model": False if no_save_model else None, "output_dir": output_dir,
            "progress": False if no_progress else None, **_model_overrides(model, device, dtype, trust_remote_code),
        }  # fmt: skip
        _run(lambda: load_config(UnstarConfig, config, unstar_overrides), _unstar_action)
        return

    overrides = {
        "forget": forget,
        "method": method,
        "reference": reference,
        "preset": preset,
        "stop": stop,
        "tau": tau,
        "gamma": gamma,
        "ta_coefficient": ta_coefficient,
        "first_threshold": first_threshold,
        "reset_optimizer": reset_optimizer,
        "resume": resume,
        "limit": limit,
        "save_model": False if no_save_model else None,
        "output_dir": output_dir,
        "progress": False if no_progress else None,
        "training.learning_rate": learning_rate,
        "training.max_steps": max_steps,
        "training.micro_batch_size": micro_batch_size,
        "training.max_grad_norm": max_grad_norm,
        "training.checkpoint_every": checkpoint_every,
        "training.lora.enabled": lora,
        "training.lora.rank": lora_rank,
        "training.seed": seed,
        "scoring.max_tokens": max_tokens,
        "scoring.el_n": el_n,
        "scoring.neighbours": neighbours,
        "scoring.seed": seed,
        "utility.data_dir": utility_data,
        "utility.benchmarks": utility_benchmark,
        "utility.limit": utility_limit,
        **_model_overrides(model, device, dtype, trust_remote_code),
    }

    def action(cfg: UnlearnConfig) -> None:
        run_dir, metrics = run_unlearning(cfg)
        if run_dir is None:  # not the main process
            return
        _print_unlearning(metrics)
        console.print(f"\nRun directory: [bold]{run_dir}[/] (summary.md, metrics.json, trace.jsonl, plots, model)")

    _run(lambda: load_config(UnlearnConfig, config, overrides), action)


def _config_method(config: Path | None) -> str | None:
    if config is None or not config.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(config.read_text())
    except yaml.YAMLError:
        return None  # load_config reports it
    return data.get("method") if isinstance(data, dict) else None


def _unstar_action(cfg: UnstarConfig) -> None:
    from obliviate.unstar.run import run_unstar

    run_dir, metrics = run_unstar(cfg)
    table = Table(title=f"UnSTAR on {metrics['model']}: accuracy")
    for column in ("set", "before", "after", "after / before"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for name, v in metrics["sets"].items():
        kept = "-" if v["retained"] is None else f"{v['retained']:.2f}"
        table.add_row(name, f"{v['before']:.3f}", f"{v['after']:.3f}", kept)
    console.print(table)
    console.print(f"{metrics['steps']} steps, {len(metrics['rounds'])} rounds, {metrics['seconds']:.0f} s")
    console.print(f"\nRun directory: [bold]{run_dir}[/] (summary.md, metrics.json, antisamples.jsonl, model)")


@app.command()
def antisamples(
    forget: Annotated[str | None, typer.Argument(help="associations (file or builtin:associations)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the anti-samples to this JSONL file")] = None,
    generator: Annotated[str | None, typer.Option(help="self | local | openai | template [self]")] = None,
    generator_model: Annotated[str | None, typer.Option(help="generator local: model directory")] = None,
    endpoint: Annotated[str | None, typer.Option(help="generator openai: base URL, e.g. http://host/v1")] = None,
    endpoint_model: Annotated[str | None, typer.Option(help="generator openai: model name")] = None,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="wrong answers only")] = False,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    limit: Annotated[int | None, typer.Option(help="only the first N associations")] = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Generate UnSTAR anti-samples only (no training): a JSONL file to read, edit and train from with
    `obliviate unlearn --method unstar --antisamples FILE`."""
    from obliviate.unstar.run import generate_antisamples

    if out is not None and out.exists():
        console.print(f"[bold red]error:[/] {out} exists; nothing is overwritten", soft_wrap=True)
        raise typer.Exit(2)
    overrides = {
        "forget": forget, "generator": generator, "generator_model": generator_model, "endpoint.base_url": endpoint,
        "endpoint.model": endpoint_model, "rationale": False if no_rationale else None, "limit": limit,
        "seed": seed, "output_dir": output_dir, "progress": False if no_progress else None,
        **_model_overrides(model, device, dtype, trust_remote_code),
    }  # fmt: skip

    def action(cfg: UnstarConfig) -> None:
        path, summary = generate_antisamples(cfg, out)
        console.print(f"{summary['antisamples']} anti-samples from a pool of {summary['pool']} questions")
        for part, by in summary["backend_shares"].items():
            console.print(f"  {part}: " + ", ".join(f"{k} {v['share']:.0%}" for k, v in by.items()))
        console.print(f"\nWrote [bold]{path}[/]" + (f" and {out}" if out else ""))

    _run(lambda: load_config(UnstarConfig, config, overrides), action)


@app.command()
def tofu(
    method: Annotated[str | None, typer.Option(help=" | ".join(TOFU_METHODS) + " [npo]")] = None,
    tofu_dir: Annotated[str | None, typer.Option("--tofu", help="TOFU folder of JSON(L) splits [the hub]")] = None,
    forget_split: Annotated[str | None, typer.Option(help="forget01 | forget05 | forget10 [forget01]")] = None,
    retain_authors: Annotated[int | None, typer.Option(help="authors trained besides the forget ones [2]")] = None,
    epochs: Annotated[int | None, typer.Option(help="unlearning epochs [3]")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="unlearning Adam learning rate [2e-5]")] = None,
    eval_limit: Annotated[int | None, typer.Option(help="real-author / world-fact evaluation items [10]")] = None,
    models_dir: Annotated[str | None, typer.Option(help="cache of fine-tuned models [OUTPUT_DIR/tofu-models]")] = None,
    save_model: Annotated[bool | None, typer.Option("--save-model", help="save the unlearned model")] = None,
    no_trace: Annotated[bool, typer.Option("--no-trace", help="skip the per-epoch trade-off probes")] = False,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """TOFU-mini: fine-tune on a few TOFU authors (cached), unlearn the forget split with one QA method, report
    forget quality, model utility, the trade-off per epoch and the attacks (report.html)."""
    from obliviate.tofu.run import run_tofu

    overrides = {
        "method": method, "tofu": tofu_dir, "forget_split": forget_split, "retain_authors": retain_authors,
        "epochs": epochs, "learning_rate": learning_rate, "eval_limit": eval_limit, "models_dir": models_dir,
        "save_model": save_model, "trace": False if no_trace else None, "seed": seed, "output_dir": output_dir,
        "progress": False if no_progress else None, **_model_overrides(model, device, dtype, trust_remote_code),
    }  # fmt: skip

    def action(cfg: TofuConfig) -> None:
        run_dir, metrics = run_tofu(cfg)
        table = Table(title=f"TOFU-mini: {cfg.method} ({metrics['steps']} steps, {metrics['seconds']:.0f} s)")
        columns = {"forget_quality": "forget quality", "model_utility": "model utility",
                   "forget_truth_ratio_mean": "forget TR", "forget_probability": "forget prob.",
                   "retain_probability": "retain prob."}  # fmt: skip
        table.add_column("model")
        for label in columns.values():
            table.add_column(label, justify="right")
        for name, row in metrics["models"].items():
            table.add_row(name, *(f"{row[key]:.3g}" for key in columns))
        console.print(table)
        console.print(f"\nRun directory: [bold]{run_dir}[/] (report.html, summary.md, metrics.json)")

    _run(lambda: load_config(TofuConfig, config, overrides), action)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="run directories (unlearn or unstar runs, mixed freely)")],
    output_dir: Annotated[str, typer.Option(help="folder in which the comparison directory is created")] = "runs",
) -> None:
    """Collect several run directories into one table (comparison.md) and one figure (comparison.png)."""
    from obliviate.reports.compare import compare_runs
    from obliviate.reports.rundir import create_run_dir

    def action(_: None) -> None:
        missing = [str(r) for r in runs if not (r / "metrics.json").is_file()]
        if missing:
            raise ObliviateError(f"not finished run directories (no metrics.json): {', '.join(missing)}")
        table, figure = compare_runs(runs, create_run_dir(output_dir, "compare"))
        console.print(table.read_text())
        console.print(f"Wrote [bold]{table}[/] and {figure.name}")

    _run(lambda: None, action)


def _print_unlearning(metrics: dict[str, Any]) -> None:
    before, after = metrics["before"]["target"]["per_sample"], metrics["after"]["target"]["per_sample"]
    table = Table(title=f"{metrics['method'].upper()} on {metrics['model']}: per-sequence MA")
    for column in ("id", "MA before", "MA after"):
        table.add_column(column, justify="left" if column == "id" else "right")
    for sid in before:
        table.add_row(sid, f"{before[sid]['ma']:.4f}", f"{after[sid]['ma']:.4f}")
    console.print(table)
    low, high = metrics["thresholds"]["band"]
    b, a = metrics["outliers"]["before"]["calibrated"], metrics["outliers"]["after_vs_start_band"]
    console.print(
        f"{metrics['steps']} steps ({metrics['stop_reason']}); unseen band [{low:.4f}, {high:.4f}]; "
        f"c(D_f) calibrated high/low: before {b['high']}/{b['low']}, after {a['high']}/{a['low']}; "
        f"MIAU best AUC after {metrics['after']['miau_best']['auc']:.4f} ({metrics['after']['miau_best']['score']})"
    )
    for key, value in (metrics["utility"].get("after") or {}).items():
        if key == "fluency":
            if value.get("n"):
                console.print(f"utility fluency: distinct-2 {value['distinct_2']:.3f}, "
                              f"{value['repeating_share']:.0%} of continuations repeating")  # fmt: skip
            continue
        shown = value["accuracy"] if isinstance(value, dict) else value
        console.print(f"utility {key}: {shown:.4f}")


def _print_audit(metrics: dict[str, Any]) -> None:
    per_sample = metrics["target"]["per_sample"]
    keys = [k for k in ("ma", "es", "loss") if k in next(iter(per_sample.values()))]
    keys += sorted(k for k in next(iter(per_sample.values())) if k.startswith("el_"))
    table = Table(title=f"Per-sequence memorization ({metrics['model']})")
    table.add_column("id")
    for key in keys:
        table.add_column(key, justify="right")
    for sid, values in per_sample.items():
        table.add_row(sid, *(f"{values[k]:.4f}" for k in keys))
    ref = metrics["reference"]["distribution"]["ma"]
    table.add_section()
    table.add_row("never-seen mean", *(f"{metrics['reference']['aggregate'][k]['mean']:.4f}" for k in keys))
    console.print(table)
    fixed, cal = metrics["outliers"]["fixed"], metrics["outliers"]["calibrated"]
    console.print(
        f"Unseen MA {ref['mean']:.4f} +- {ref['std']:.4f}; c(D_f) fixed: {fixed['total']} "
        f"(low {fixed['low']}, high {fixed['high']}); calibrated: {cal['total']} (low {cal['low']}, "
        f"high {cal['high']}) outside [{cal['band'][0]:.4f}, {cal['band'][1]:.4f}]"
    )
    miau = Table(title="MIAU: members vs never-seen")
    for column in ("score", "AUC", "TPR@1%FPR", "TPR@5%FPR"):
        miau.add_column(column, justify="right" if column != "score" else "left")
    for name, s in metrics["miau"].items():
        miau.add_row(name, f"{s['auc']:.4f}", f"{s['tpr_at_1pct_fpr']:.4f}", f"{s['tpr_at_5pct_fpr']:.4f}")
    console.print(miau)
