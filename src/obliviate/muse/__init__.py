"""MUSE-News-mini: data, testbed, metrics and run of the muse-news benchmark (benchmarks/muse.py)."""
