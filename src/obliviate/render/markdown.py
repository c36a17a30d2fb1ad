"""A tiny Markdown table helper for run summaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def format_cell(value: object) -> str:
    """Format one cell: floats with 4 decimals, ``None`` as ``-``, ``|`` escaped, newlines as spaces."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(value) if not math.isfinite(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (ending in a newline); every row must match ``headers`` in length."""
    for i, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {i} has {len(row)} cells but there are {len(headers)} headers")
    lines = [
        "| " + " | ".join(format_cell(h) for h in headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines.extend("| " + " | ".join(format_cell(c) for c in row) + " |" for row in rows)
    return "\n".join(lines) + "\n"


def interval(values: list[float] | None, digits: int = 4) -> str:
    """' [low, high]' for a confidence interval, '' without one."""
    return f" [{values[0]:.{digits}f}, {values[1]:.{digits}f}]" if values else ""
