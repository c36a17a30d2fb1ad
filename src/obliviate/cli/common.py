"""What every ``obliviate`` command shares: the Typer app, the console, the common options, logging, and turning
the toolkit's errors into a message and exit code 2. Nothing heavy is imported here (``obliviate --help`` stays
fast); commands import what they need when they run."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from obliviate._version import __version__
from obliviate.errors import ObliviateError

app = typer.Typer(
    name="obliviate",
    help="Make a causal language model forget, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# markup off: ids, paths, answers and model names are printed as they are, never read as rich markup
console = Console(markup=False)

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


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a scheduler, ``timeout``, a container stop, a closed terminal), raised where the program
    is, so that it unwinds as an interrupt does: the run directory is marked failed ('interrupted (SIGTERM)') and
    staging folders are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def signals_as_interrupts():
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` (the main thread only: elsewhere Python
    cannot install handlers, and the block runs unchanged); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, raise_terminated) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_action(build, action):
    """Build the config and run the action. The toolkit's errors (bad input, config, data, model) and file-system
    errors become a clear message and exit code 2; an interrupt exits 130, SIGTERM 143 and SIGHUP 129 (128 + the
    signal, as a shell reports it); anything else is a bug: one line and exit 1, the traceback in the run's run.log
    (and on the console with --verbose)."""
    try:
        with signals_as_interrupts():
            return action(build())
    except ObliviateError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print_error(f"{exc.strerror or exc}{where}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        by = f" by {signal.Signals(signum).name}" if signum != signal.SIGINT else ""
        print_error(f"interrupted{by} (the run directory, if one was made, is marked failed)")
        raise typer.Exit(128 + signum) from None
    except Exception as exc:
        if logging.getLogger("obliviate").isEnabledFor(logging.DEBUG):
            raise
        print_error(f"unexpected {type(exc).__name__}: {exc} (this is a bug in obliviate; the traceback is in the "
                    "run's run.log, or rerun with --verbose)")  # fmt: skip
        raise typer.Exit(1) from None


def print_error(message: str) -> None:
    """``error: MESSAGE`` on the console, the message as plain text (no markup, no line breaks inside paths)."""
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


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
