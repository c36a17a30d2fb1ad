"""The commands besides ``unlearn``: memorization scoring, testbed building, anti-sample generation, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    console,
    model_overrides,
    print_error,
    run_action,
)
from obliviate.config import MemorizationRunConfig, TestbedConfig, load_config


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
    from obliviate.cli.render import print_audit

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
        **model_overrides(model, device, dtype, trust_remote_code),
    }

    def action(cfg: MemorizationRunConfig) -> None:
        run_dir, metrics = run_memorization(cfg)
        print_audit(metrics)
        console.print(f"\nRun directory: {run_dir} (summary.md, metrics.json, ma_histogram.png)")

    run_action(lambda: load_config(MemorizationRunConfig, config, overrides), action)


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
    from rich.table import Table

    from obliviate.api import build_testbed

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
        **model_overrides(model, device, dtype, trust_remote_code),
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
        console.print(f"\nRun directory: {run_dir} (memorized/, splits/, metrics.json, summary.md)")

    run_action(lambda: load_config(TestbedConfig, config, overrides), action)


@app.command()
def antisamples(
    forget: Annotated[str | None, typer.Argument(help="associations (file or builtin:associations)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the anti-samples to this JSONL file")] = None,
    generator: Annotated[str | None, typer.Option(help="self | local | openai | template [self]")] = None,
    generator_model: Annotated[str | None, typer.Option(help="generator local: model directory")] = None,
    endpoint: Annotated[str | None, typer.Option(help="generator openai: base URL, e.g. http://host/v1")] = None,
    endpoint_model: Annotated[str | None, typer.Option(help="generator openai: model name")] = None,
    no_rationale: Annotated[bool, typer.Option("--no-rationale", help="wrong answers only")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE for any config key, repeatable "
                                                                  "(endpoint.timeout=10)")] = None,
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
    from obliviate.cli.unlearn import parse_sets
    from obliviate.unstar.config import UnstarConfig
    from obliviate.unstar.run import generate_antisamples

    if out is not None and out.exists():
        print_error(f"{out} exists; nothing is overwritten")
        raise typer.Exit(2)
    overrides = {
        "forget": forget, "generator": generator, "generator_model": generator_model, "endpoint.base_url": endpoint,
        "endpoint.model": endpoint_model, "rationale": False if no_rationale else None, "limit": limit,
        "seed": seed, "output_dir": output_dir, "progress": False if no_progress else None,
        **model_overrides(model, device, dtype, trust_remote_code),
    }  # fmt: skip

    def build() -> UnstarConfig:
        return load_config(UnstarConfig, config, {**overrides, **parse_sets(set_)})

    def action(cfg: UnstarConfig) -> None:
        path, summary = generate_antisamples(cfg, out)
        console.print(f"{summary['antisamples']} anti-samples from a pool of {summary['pool']} questions")
        for part, by in summary["backend_shares"].items():
            console.print(f"  {part}: " + ", ".join(f"{k} {v['share']:.0%}" for k, v in by.items()))
        console.print(f"\nWrote {path}" + (f" and {out}" if out else ""))

    run_action(build, action)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="run directories (unlearn or unstar runs, mixed freely)")],
    output_dir: Annotated[str, typer.Option(help="folder in which the comparison directory is created")] = "runs",
) -> None:
    """Collect several run directories into one table (comparison.md) and one figure (comparison.png)."""
    from obliviate.api import compare as api_compare

    def action(_: None) -> None:
        table, figure = api_compare(list(runs), output_dir)
        console.print(table.read_text())
        console.print(f"Wrote {table} and {figure.name}")

    run_action(lambda: None, action)
