"""``obliviate compare``: the headline numbers of several run directories of any benchmark, mixed freely, in one
table and one figure. It reads only the common ``summary`` of each metrics.json (schema version 1)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obliviate.core.rundir import create_run_dir, read_status
from obliviate.errors import ObliviateError
from obliviate.io import write_text_atomic
from obliviate.render.markdown import markdown_table

# the per-set metrics a comparison shows (others stay in each run's metrics.json)
HEADLINE_METRICS = ("accuracy", "probability", "ma", "outliers_high", "outliers_low", "forget_quality",
                    "model_utility", "forget_probability", "retain_probability")  # fmt: skip


def headline(run_dir: Path) -> dict[str, Any]:
    """One run's comparable numbers, from the common ``summary`` of its metrics.json (any benchmark)."""
    path = run_dir / "metrics.json"
    status = read_status(run_dir)
    if status is not None and status.get("status") != "finished":
        raise ObliviateError(f"{run_dir} is not a finished run (status {status.get('status')!r}"
                             + (f": {status['error']}" if status.get("error") else "") + "); compare reads finished "
                             "runs only")  # fmt: skip
    if not path.is_file():
        raise ObliviateError(f"{run_dir} has no metrics.json (not a finished run directory)")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ObliviateError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(m, dict) or m.get("schema_version") != 1 or "summary" not in m or m.get("status") != "finished":
        raise ObliviateError(f"{path} is not an unlearning run in the metrics schema version 1 (an audit or testbed "
                             "run, a run from an older obliviate, or not a run directory): compare reads the runs "
                             "of `obliviate unlearn` / `obliviate tofu`")  # fmt: skip
    s = m["summary"]
    row: dict[str, Any] = {"run": run_dir.name, "benchmark": m["benchmark"], "method": m["method"],
                           "steps": s.get("steps")}  # fmt: skip
    for name, values in s["sets"].items():
        for metric in HEADLINE_METRICS:
            if values["after"].get(metric) is not None:
                row[f"{name} {metric} after"] = values["after"][metric]
    for attack, values in s["attacks"].items():
        for metric, value in values.items():
            row[f"{attack} {metric}"] = value
    for key, value in s["utility"]["after"].items():
        row[f"utility {key} after"] = value
    row["unlearning s"] = s["timings"].get("unlearning_seconds")
    return row


def compare_runs(run_dirs: Sequence[str | Path], output_root: str | Path) -> tuple[Path, Path]:
    """Write ``comparison.md`` and ``comparison.png`` into a new directory under ``output_root`` (made only once
    every run has been read); returns both paths."""
    if not run_dirs:
        raise ObliviateError("compare needs at least one run directory")
    rows = [headline(Path(d)) for d in run_dirs]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    table = markdown_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows])
    out = create_run_dir(output_root, "compare")
    numeric = [c for c in columns if c not in ("run", "benchmark", "method")
               and any(isinstance(r.get(c), int | float) for r in rows)]  # fmt: skip
    figure = _plot(out / "comparison.png", rows, numeric)
    text = f"# Comparison of {len(rows)} runs\n\n{table}\n![comparison](comparison.png)\n"
    return write_text_atomic(out / "comparison.md", text), figure


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _plot(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    from obliviate.render.plots import save_png, subplots

    width = max(1, min(4, len(columns)))
    height = max(1, math.ceil(len(columns) / width))
    fig, axes = subplots(height, width, figsize=(3.2 * width, 2.6 * height), squeeze=False)
    labels = [f"{r['benchmark']}\n{r['method']}\n{r['run'][-6:]}" for r in rows]
    for ax, column in zip(axes.flat, columns):
        values = [r.get(column) if isinstance(r.get(column), int | float) else math.nan for r in rows]
        ax.bar(range(len(rows)), values, color="#4c72b0")
        ax.set_title(column, fontsize=9)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_png(fig, path)
