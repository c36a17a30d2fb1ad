"""Run directories: one fresh folder per command invocation, with a ``run.log`` of the ``obliviate`` logger.

A run directory is never reused, so outputs of an earlier run can never be overwritten by a later one.
Files inside it are written with the atomic helpers of :mod:`obliviate.io`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from obliviate.errors import ConfigError
from obliviate.io import write_json_atomic, write_text_atomic, write_yaml_atomic

LOGGER_NAME = "obliviate"
LOG_FILENAME = "run.log"
STATUS_FILE = "status.json"
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

__all__ = [
    "LOG_FILENAME",
    "STATUS_FILE",
    "RunLog",
    "TrackedRun",
    "attach_run_log",
    "create_run_dir",
    "detach_run_log",
    "read_status",
    "write_run_file",
    "write_status",
]


def create_run_dir(root: str | Path, command: str) -> Path:
    """Create and return a new directory ``root/<command>-<YYYYmmdd-HHMMSS>-<6 hex>``.

    The directory is created with ``exist_ok=False``; on the (unlikely) clash of a name with an existing
    folder a new random suffix is drawn, so an existing directory is never reused.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"output dir {root} is a file, not a folder: choose another --output-dir") from None
    except OSError as exc:
        raise ConfigError(f"output dir {root} cannot be created ({exc.strerror or exc}): choose another "
                          "--output-dir") from None  # fmt: skip
    if not root.is_dir():
        raise ConfigError(f"output dir {root} is not a folder: choose another --output-dir")
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
        except OSError as exc:
            raise ConfigError(f"cannot write into the output dir {root} ({exc.strerror or exc}): choose another "
                              "--output-dir or fix its permissions") from None  # fmt: skip
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


def write_status(run_dir: str | Path, status: str, **extra: Any) -> Path:
    """``status.json``: running (with the process id and host, so a killed run can be told apart), finished or
    failed (with the error)."""
    record = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra}
    if status == "running":
        record.update(pid=os.getpid(), host=socket.gethostname())
    return write_json_atomic(Path(run_dir) / STATUS_FILE, record)


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """A run directory's status (None without a status file). A run still marked running whose process no longer
    exists on this host was killed: its status reads ``interrupted``."""
    try:
        record = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("status") == "running" and record.get("host") == socket.gethostname():
        pid = record.get("pid")
        if isinstance(pid, int) and not _alive(pid):
            record = {**record, "status": "interrupted", "error": "the process was killed before the run ended"}
    return record


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TrackedRun:
    """A fresh run directory for one command: ``config.yaml``, ``run.log`` and ``status.json``, which says
    *running* while the body runs, *finished* after it and *failed* (with the error, the traceback going to
    run.log) when it raises - so no half-written directory ever looks like a result. Enter returns the path."""

    def __init__(self, root: str | Path, command: str, config: Any) -> None:
        self.root, self.command, self.config = root, command, config
        self.path: Path | None = None
        self._log: RunLog | None = None

    def __enter__(self) -> Path:
        self.path = create_run_dir(self.root, self.command)
        self._log = RunLog(self.path)
        self._log.__enter__()
        write_status(self.path, "running")
        write_yaml_atomic(self.path / "config.yaml", self.config)
        return self.path

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        assert self.path is not None and self._log is not None
        try:
            if exc is None:
                write_status(self.path, "finished")
            else:
                if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM / SIGHUP turned into one by the CLI
                    reason = f"interrupted ({exc})" if str(exc) else "interrupted"
                else:
                    reason = f"{type(exc).__name__}: {exc}"
                write_status(self.path, "failed", error=reason)
                if self._log.handler is not None:  # the traceback goes to run.log only, never to the console
                    trace = "".join(traceback.format_exception(exc_type, exc, tb))
                    self._log.handler.handle(logging.LogRecord(LOGGER_NAME, logging.ERROR, __file__, 0,
                                                               "run failed: %s\n%s", (reason, trace), None))
        finally:
            self._log.__exit__(None, None, None)
        return False
