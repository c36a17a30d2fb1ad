"""SGA on two real CPU processes (torchrun, gloo) matches the single-process run.

Note: ``accelerate launch --cpu --num_processes 2`` starts ONE process on a CPU (its multi-CPU mode expects
mpirun); torchrun starts two, which this test asserts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.models import save_model

SCRIPT = Path(__file__).with_name("distributed_sga.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jsonl(path: Path, texts: list[str], prefix: str) -> Path:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def _launch(command: list[str], out: Path) -> list[dict]:
    _launch_worker(command)
    run_dir = Path((out / "run_dir.txt").read_text())
    return [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]


def _launch_worker(command: list[str]) -> None:
    """Run a worker script (alone or under torchrun); fail the test with its output if it fails or hangs."""
    path = os.pathsep.join(p for p in (str(SCRIPT.parent), os.environ.get("PYTHONPATH", "")) if p)
    # gloo connects the ranks through the address the host name resolves to; on a machine whose host name does
    # not resolve to loopback that address can be unreachable and the group hangs, so pin gloo to loopback
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": path, "GLOO_SOCKET_IFNAME": "lo"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.TimeoutExpired as hung:  # the script dumps every thread's stack before this fires
        pytest.fail(f"hung: {command}\n{_text(hung.stdout)[-3000:]}\n{_text(hung.stderr)[-6000:]}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


@pytest.fixture(scope="module")
def inputs(memorizing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    model_dir = save_model(memorizing_model, root / "model")
    return model_dir, _jsonl(root / "forget.jsonl", TRAINED_TEXTS, "t"), _jsonl(root / "ref.jsonl", UNSEEN_TEXTS, "u")


def test_two_process_sga_matches_single_process(inputs, tmp_path):
    model_dir, forget, reference = inputs
    single_out, multi_out = tmp_path / "single", tmp_path / "multi"
    single_out.mkdir()
    multi_out.mkdir()
    args = [str(model_dir), str(forget), str(reference)]
    single = _launch([sys.executable, str(SCRIPT), *args, str(single_out)], single_out)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    multi = _launch([*torchrun, str(SCRIPT), *args, str(multi_out)], multi_out)

    ranks = [json.loads((multi_out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert {r["rank"] for r in ranks} == {0, 1} and all(r["world"] == 2 for r in ranks)
    assert ranks[0]["pid"] != ranks[1]["pid"]  # two real processes
    assert json.loads((single_out / "rank0.json").read_text())["world"] == 1

    assert len(multi) == len(single) > 1
    for a, b in zip(single, multi):
        assert a.get("selected") == b.get("selected"), (a["step"], a.get("selected"), b.get("selected"))
    final_single, final_multi = single[-1]["ma"], multi[-1]["ma"]
    assert all(abs(final_single[k] - final_multi[k]) <= 1e-3 for k in final_single)
