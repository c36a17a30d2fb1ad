"""The methods x benchmarks table, from the registries: what ``obliviate methods`` prints and the README carries
(a test keeps the README's copy in sync)."""

from __future__ import annotations


def support_matrix() -> tuple[list[str], list[tuple[str, list[str | None], list[str]]]]:
    """(benchmark names, rows of (method, per-benchmark reason or None when it runs, the method's settings))."""
    from obliviate.benchmarks import BENCHMARKS
    from obliviate.methods import METHODS

    names = BENCHMARKS.names()
    rows = []
    for method, spec in METHODS.items():
        cells = [BENCHMARKS.get(b).support(spec) for b in names]
        rows.append((method, cells, [k for k in spec.config.model_fields if k != "name"]))
    return names, rows


def markdown_matrix() -> str:
    """The table as Markdown: a check where the method runs, the reason in a footnote-like cell where not."""
    names, rows = support_matrix()
    lines = ["| method | " + " | ".join(names) + " | settings (`--set method.KEY=VALUE`) |",
             "|---|" + "---|" * len(names) + "---|"]  # fmt: skip
    for method, cells, settings in rows:
        marks = ["yes" if c is None else "no" for c in cells]
        lines.append(f"| {method} | " + " | ".join(marks) + " | " + (", ".join(settings) if settings else "-") + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m obliviate.registry_table: the README's table
    print(markdown_matrix(), end="")
