"""Run directories, run.log, plots and the Markdown helper."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from obliviate.core.rundir import RunLog, attach_run_log, create_run_dir, detach_run_log, write_run_file
from obliviate.metrics.roc import roc_summary
from obliviate.render.markdown import markdown_table
from obliviate.render.plots import plot_memorization_histogram, plot_roc_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_create_run_dir_distinct_and_fresh(tmp_path: Path) -> None:
    a = create_run_dir(tmp_path / "runs", "audit")
    b = create_run_dir(tmp_path / "runs", "audit")
    assert a != b
    assert a.is_dir() and b.is_dir()
    assert a.parent == tmp_path / "runs"
    assert re.fullmatch(r"audit-\d{8}-\d{6}-[0-9a-f]{6}", a.name)
    assert list(a.iterdir()) == []


def test_create_run_dir_never_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import obliviate.core.rundir as rundir

    suffixes = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda n: next(suffixes))
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt, t=None: "20240101-000000")
    first = create_run_dir(tmp_path, "forget")
    (first / "keep.txt").write_text("x")
    second = create_run_dir(tmp_path, "forget")
    assert first.name == "forget-20240101-000000-aaaaaa"
    assert second.name == "forget-20240101-000000-bbbbbb"
    assert (first / "keep.txt").read_text() == "x"


def test_run_log_and_run_files(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "audit")
    handler = attach_run_log(run)
    try:
        logging.getLogger("obliviate.test").info("hello from the test")
    finally:
        detach_run_log(handler)
    logging.getLogger("obliviate.test").info("after detach")
    log = (run / "run.log").read_text()
    assert "hello from the test" in log and "after detach" not in log
    assert handler not in logging.getLogger("obliviate").handlers
    with RunLog(run):
        logging.getLogger("obliviate").warning("second")
    assert "second" in (run / "run.log").read_text()
    write_run_file(run, "summary.json", {"a": 1})
    write_run_file(run, "config.yaml", {"b": 2})
    assert json.loads((run / "summary.json").read_text()) == {"a": 1}
    assert (run / "config.yaml").read_text().strip() == "b: 2"


def test_histogram_png(tmp_path: Path) -> None:
    path = plot_memorization_histogram(
        tmp_path / "plots" / "hist.png",
        {"forget": [0.9, 0.8, 0.95], "unseen": [0.2, 0.3, 0.25]},
        band=(0.1, 0.4),
        reference_mean=0.25,
        title="forget vs unseen",
    )
    data = Path(path).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    plot_memorization_histogram(tmp_path / "h2.png", {"x": []}, band=None, reference_mean=None, title="t")
    assert (tmp_path / "h2.png").read_bytes().startswith(PNG_MAGIC)


def test_roc_png(tmp_path: Path) -> None:
    curves = {"loss": roc_summary([0.9, 0.4], [0.5, 0.1]), "zlib": roc_summary([0.9], [0.1])}
    data = plot_roc_curves(tmp_path / "roc.png", curves).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_markdown_table_exact() -> None:
    out = markdown_table(["name", "auc", "n"], [["loss", 0.75, 10], ["zlib", None, 3]])
    expected = [
        "| name | auc | n |",
        "| --- | --- | --- |",
        "| loss | 0.7500 | 10 |",
        "| zlib | - | 3 |",
    ]
    assert out == "\n".join(expected) + "\n"
    with pytest.raises(ValueError):
        markdown_table(["a"], [[1, 2]])
