"""Shared bits of the benchmark scripts: machine description and result files with date and command."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from obliviate.io import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
# The workplace's read-only reference data (../shared/data beside the repository), or $OBLIVIATE_SHARED_DATA.
SHARED_DATA = Path(os.environ.get("OBLIVIATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def write_result(name: str, title: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md`` with a header naming the date, machine and exact command."""
    command = "python " + " ".join(shlex.quote(arg) for arg in sys.argv)
    header = (
        f"# {title}\n\n- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}\n"
        f"- machine: {machine()}\n- command: `{command}`\n\n"
    )
    return write_text_atomic(RESULTS / f"{name}.md", header + body)
