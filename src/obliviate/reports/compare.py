"""``obliviate compare``: the headline numbers of several run directories (memorization unlearning, UnSTAR and
TOFU runs, mixed freely) in one table and one figure."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from obliviate.errors import ObliviateError
from obliviate.io import write_text_atomic
from obliviate.render.markdown import markdown_table


def headline(run_dir: Path) -> dict[str, Any]:
    """One run's comparable numbers (missing ones are simply absent)."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise ObliviateError(f"{run_dir} has no metrics.json (not a finished run directory)")
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ObliviateError(f"{path} is not valid JSON: {exc}") from exc
    row: dict[str, Any] = {"run": run_dir.name, "method": m.get("method", "?"), "steps": m.get("steps")}
    if m.get("benchmark") == "qa":
        for name, s in m["sets"].items():
            row[f"{name} acc. after"] = s["after"]
        row["forget prob."] = m["after"]["forget"]["aggregate"]["probability"]
        row["relearning recovery"] = (m["attacks"].get("relearning") or {}).get("recovery")
        if m["attacks"].get("membership"):
            row["membership AUC"] = m["attacks"]["membership"]["auc"]
        row["unlearning s"] = m.get("seconds_unlearning")
        return row
    if "outliers" in m:  # memorization unlearning
        row["stop rule"] = m.get("stop_rule")
        row["c(D_f) high after"] = m["outliers"]["after_vs_start_band"]["high"]
        row["c(D_f) low after"] = m["outliers"]["after_vs_start_band"]["low"]
        row["forget MA after"] = m["after"]["target"]["aggregate"]["ma"]["mean"]
        if m.get("miau"):
            row["MIAU best AUC"] = max(s["auc"] for s in m["miau"].values())
        for key, value in ((m.get("utility") or {}).get("after") or {}).items():
            if key == "fluency":
                row["distinct-2"] = value.get("distinct_2")
            else:
                row[key] = value["accuracy"] if isinstance(value, dict) else value
        row["unlearning s"] = m.get("seconds_unlearning")
    if "models" in m and "attacks" in m:  # TOFU
        after = m["models"]["unlearned"]
        row["forget quality"] = after["forget_quality"]
        row["model utility"] = after["model_utility"]
        row["forget prob."] = after["forget_probability"]
        row["retain prob."] = after["retain_probability"]
        row["relearning recovery"] = m["attacks"]["relearning"].get("recovery")
        if m["attacks"]["membership"]:
            row["membership AUC"] = m["attacks"]["membership"]["unlearned"]["auc"]
        row["unlearning s"] = m.get("seconds_unlearning")
    elif "sets" in m:  # UnSTAR
        for name, s in m["sets"].items():
            row[f"{name} acc. after"] = s["after"]
        row["unlearning s"] = m.get("seconds_unlearning")
    return row


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``comparison.md`` and ``comparison.png`` into ``out_dir``; returns both paths."""
    if not run_dirs:
        raise ObliviateError("compare needs at least one run directory")
    rows = [headline(Path(d)) for d in run_dirs]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    table = markdown_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    numeric = [c for c in columns if c not in ("run", "method", "stop rule")
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
    labels = [f"{r['method']}\n{r['run'][-6:]}" for r in rows]
    for ax, column in zip(axes.flat, columns):
        values = [r.get(column) if isinstance(r.get(column), int | float) else math.nan for r in rows]
        ax.bar(range(len(rows)), values, color="#4c72b0")
        ax.set_title(column, fontsize=9)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.tight_layout()
    return save_png(fig, path)
