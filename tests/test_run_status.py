"""Every command's run directory says whether the run finished: status.json is 'running' while it works,
'finished' after, 'failed' with the error when it raises (the traceback in run.log, not on the console), and a
run killed with -9 reads 'interrupted'. `compare` refuses anything but a finished run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from obliviate.cli.main import app
from obliviate.core.rundir import TrackedRun, read_status


def test_a_run_that_raises_is_marked_failed_with_the_error_and_the_traceback_in_run_log(tmp_path, caplog):
    with pytest.raises(ValueError), TrackedRun(tmp_path, "demo", {"seed": 1}) as run_dir:
        assert read_status(run_dir)["status"] == "running"
        logging.getLogger("obliviate").info("working")
        raise ValueError("bad thing")
    status = read_status(run_dir)
    assert status["status"] == "failed" and status["error"] == "ValueError: bad thing"
    log_text = (run_dir / "run.log").read_text()
    assert "working" in log_text and "Traceback" in log_text and 'raise ValueError("bad thing")' in log_text
    assert "Traceback" not in caplog.text  # nothing of the traceback reaches the console's logger


def test_a_finished_run_is_marked_finished(tmp_path):
    with TrackedRun(tmp_path, "demo", {"seed": 1}) as run_dir:
        pass
    assert read_status(run_dir)["status"] == "finished"
    assert (run_dir / "config.yaml").read_text().strip() == "seed: 1"


def test_a_run_killed_with_sigkill_reads_interrupted(tmp_path):
    script = ("import sys, time\nfrom obliviate.core.rundir import TrackedRun\n"
              f"with TrackedRun({str(tmp_path)!r}, 'demo', {{}}) as d:\n    print(d, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_dir = proc.stdout.readline().strip()
    assert read_status(run_dir)["status"] == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    status = read_status(run_dir)
    assert status["status"] == "interrupted" and "killed" in status["error"]


def _finished_run(root, name):
    run_dir = root / name
    run_dir.mkdir()
    summary = {"sets": {"forget": {"n": 1, "before": {"accuracy": 1.0}, "after": {"accuracy": 0.0}}},
               "per_sample": {}, "attacks": {}, "utility": {"before": {}, "after": {}}, "steps": 1,
               "timings": {"unlearning_seconds": 1.0}}  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps({"schema_version": 1, "benchmark": "qa", "method": "ga",
                                                      "status": "finished", "summary": summary}))  # fmt: skip
    return run_dir


@pytest.mark.parametrize("status", [{"status": "failed", "error": "RuntimeError: boom"},
                                    {"status": "running", "pid": 2**22 + 12345, "host": os.uname().nodename}])
def test_compare_refuses_a_failed_or_killed_run(status, tmp_path):
    good, bad = _finished_run(tmp_path, "good"), _finished_run(tmp_path, "bad")
    (bad / "status.json").write_text(json.dumps({**status, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(good), str(bad), "--output-dir", str(out)])
    text = " ".join(result.output.split())
    expected = "failed" if status["status"] == "failed" else "interrupted"
    assert result.exit_code == 2 and f"is not a finished run (status '{expected}'" in text, text
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("signum, after_lines", [(signal.SIGTERM, "checkpoint"),
                                                 (signal.SIGHUP, "on the memorization benchmark")])
def test_sigterm_and_sighup_end_a_run_as_an_interrupt(signum, after_lines, sequence_files, tmp_path):
    # what a scheduler, `timeout` or a container stop sends: the run is marked failed (interrupted), the exit code
    # is 128 + the signal, no traceback, and no staging or half-written checkpoint folder is left behind
    model_dir, forget, ref = sequence_files
    args = [sys.executable, "-m", "obliviate", "unlearn", str(forget), "--reference", str(ref), "--model",
            str(model_dir), "--method", "ga", "--learning-rate", "1e-12", "--max-steps", "500", "--no-progress",
            "--set", "benchmark.training.checkpoint_every=1", "--set", "benchmark.scoring.neighbours=0",
            "--set", "benchmark.utility.fluency_prompts=0", "--output-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    seen = []
    for line in proc.stdout:  # wait until the run is where the signal should land
        seen.append(line)
        if after_lines in line.lower():
            break
    time.sleep(0.5)
    proc.send_signal(signum)
    seen += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 128 + signum, "".join(seen)
    output = "".join(seen)
    assert "Traceback" not in output and f"interrupted by {signal.Signals(signum).name}" in output
    (run_dir,) = tmp_path.glob("memorization-ga-*")
    status = read_status(run_dir)
    assert status["status"] == "failed" and status["error"] == f"interrupted ({signal.Signals(signum).name})"
    leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    assert not leftovers and not (run_dir / "model").exists()
