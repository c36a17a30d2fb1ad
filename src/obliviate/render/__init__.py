"""Rendering primitives every layer may use: Markdown tables and PNG plots (no knowledge of runs)."""
