"""What every ``obliviate`` command shares: the Typer app, the console, the common options, logging, and turning
the toolkit's errors into a message and exit code 2. Nothing heavy is imported here (``obliviate --help`` stays
fast); commands import what they need when they run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from obliviate._version import __version__
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


def setup_logging(verbose: bool) -> None:
    logger = logging.getLogger("obliviate")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=False))
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False  # a library that configures the root logger (absl, via rouge-score) would echo it


def run_action(build, action):
    """Build the config and run the action, turning expected errors into a clear message and exit code 2."""
    try:
        return action(build())
    except ObliviateError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)  # no line breaks inside paths
        raise typer.Exit(2) from None


def model_overrides(model, device, dtype, trust_remote_code) -> dict[str, Any]:
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
    setup_logging(verbose)
    if version:
        console.print(f"obliviate {__version__}")
        raise typer.Exit()
