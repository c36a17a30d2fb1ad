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
from obliviate.config import MemorizationRunConfig, TestbedConfig, load_config
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


def _setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("obliviate")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def _run(build, action):
    """Build the config and run the action, turning expected errors into a clear message and exit code 2."""
    try:
        return action(build())
    except ObliviateError as exc:
        console.print(f"[bold red]error:[/] {exc}")
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
    limit: Annotated[int | None, typer.Option(help="only the first N sequences of each set")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="window length T in tokens [200]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="sequences per forward pass [8]")] = None,
    el_n: Annotated[list[int] | None, typer.Option("--el-n", help="EL_n's n, repeatable [10]")] = None,
    no_el: Annotated[bool, typer.Option("--no-el", help="skip EL_n (the only metric that decodes)")] = False,
    el_stride: Annotated[int | None, typer.Option(help="use every k-th prefix for EL_n [1]")] = None,
    decode_batch_size: Annotated[int | None, typer.Option(help="rows per batched greedy decode [256]")] = None,
    min_k: Annotated[float | None, typer.Option(help="fraction for Min-K% and Min-K%++ [0.2]")] = None,
    neighbours: Annotated[int | None, typer.Option(help="perturbations per sequence, 0 disables [5]")] = None,
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
    neighbours: Annotated[int | None, typer.Option(help="perturbations per sequence for MIAU [5]")] = None,
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
