"""Run directories: one fresh folder per command invocation, with a ``run.log`` of the ``obliviate`` logger.

A run directory is never reused, so outputs of an earlier run can never be overwritten by a later one.
Files inside it are written with the atomic helpers of :mod:`obliviate.io`.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from pathlib import Path
from typing import Any

from obliviate.io import write_json_atomic, write_text_atomic, write_yaml_atomic

LOGGER_NAME = "obliviate"
LOG_FILENAME = "run.log"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

__all__ = [
    "LOG_FILENAME",
    "RunLog",
    "attach_run_log",
    "create_run_dir",
    "detach_run_log",
    "write_run_file",
]


def create_run_dir(root: str | Path, command: str) -> Path:
    """Create and return a new directory ``root/<command>-<YYYYmmdd-HHMMSS>-<6 hex>``.

    The directory is created with ``exist_ok=False``; on the (unlikely) clash of a name with an existing
    folder a new random suffix is drawn, so an existing directory is never reused.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = _SAFE.sub("-", command).strip("-") or "run"
    last_error: FileExistsError | None = None
    for _ in range(100):
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
        path = root / f"{name}-{stamp}-{secrets.token_hex(3)}"
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError as exc:
            last_error = exc
            continue
        return path
    raise FileExistsError(f"could not create a fresh run directory under {root}") from last_error


def write_run_file(run_dir: str | Path, name: str, obj: Any) -> Path:
    """Atomically write ``obj`` to ``run_dir/name``.

    JSON for a ``.json`` name, YAML for ``.yaml``/``.yml``, otherwise ``str(obj)`` as UTF-8 text.
    """
    path = Path(run_dir) / name
    suffix = path.suffix.lower()
    if suffix == ".json":
        return write_json_atomic(path, obj)
    if suffix in (".yaml", ".yml"):
        return write_yaml_atomic(path, obj)
    return write_text_atomic(path, str(obj))


def attach_run_log(run_dir: str | Path, level: int = logging.INFO) -> logging.Handler:
    """Attach a file handler writing ``run_dir/run.log`` to the ``obliviate`` logger and return it.

    The logger's level is lowered to ``level`` if it would otherwise drop those records.  Pass the returned
    handler to :func:`detach_run_log` when the run ends.
    """
    path = Path(run_dir) / LOG_FILENAME
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    logger = logging.getLogger(LOGGER_NAME)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    return handler


def detach_run_log(handler: logging.Handler) -> None:
    """Remove ``handler`` from the ``obliviate`` logger and close it (flushing ``run.log``)."""
    logging.getLogger(LOGGER_NAME).removeHandler(handler)
    handler.close()


class RunLog:
    """Context manager around :func:`attach_run_log` / :func:`detach_run_log`."""

    def __init__(self, run_dir: str | Path, level: int = logging.INFO) -> None:
        self.run_dir = Path(run_dir)
        self.level = level
        self.handler: logging.Handler | None = None

    def __enter__(self) -> RunLog:
        self.handler = attach_run_log(self.run_dir, self.level)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handler is not None:
            detach_run_log(self.handler)
            self.handler = None
