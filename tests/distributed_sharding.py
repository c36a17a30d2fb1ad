"""Unlearn the tiny model with several methods in a row, weights sharded (training.sharding=fsdp); launched by
test_sharding.py under torchrun (two processes) or alone (the unsharded baseline).

usage: distributed_sharding.py MODEL_DIR FORGET REFERENCE RETAIN OUT_DIR METHOD[,METHOD...] [LEARNING_RATE]

Per method, OUT_DIR/METHOD/ gets rank{R}.json (this process's shard sizes: local weights and Adam moments
against the whole model) and, from the main process, run_dir.txt."""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path

from accelerate.state import PartialState

import obliviate.benchmarks.memorization_run as memorization_run
from obliviate.api import run_unlearning
from obliviate.config import UnlearnConfig
from obliviate.training.engine import Engine, leave_process_group

ENGINES: list[Engine] = []


class RecordedEngine(Engine):
    """The benchmark's engine, kept so that its shard sizes can be read after the run."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        ENGINES.append(self)


def run(method: str, model_dir: str, forget: str, reference: str, retain: str, out: Path, lr: float) -> None:
    cfg = UnlearnConfig.model_validate({
        "model": {"model": model_dir, "device": "cpu", "dtype": "float32"},
        "method": method, "forget": forget, "reference": reference, "retain": retain,
        "first_threshold": 0.99,  # TA: edit from the first step (its task vector and edited copy sharded)
        "training": {"learning_rate": lr, "micro_batch_size": 1, "max_steps": 3, "sharding": "fsdp"},
        "scoring": {"max_tokens": 48, "el_n": [], "neighbours": 0},
        "utility": {"data_dir": None, "perplexity": False, "before": False, "fluency_prompts": 0},
        "progress": False, "output_dir": str(out / "runs"),
    })  # fmt: skip
    ENGINES.clear()
    run_dir, _ = run_unlearning(cfg)
    state = PartialState()
    sizes = ENGINES[-1].shard_sizes()
    (out / f"rank{state.process_index}.json").write_text(json.dumps({
        "rank": state.process_index, "world": state.num_processes, "pid": os.getpid(),
        "sharded": ENGINES[-1].sharded, "weights": sizes.weights, "full_weights": sizes.full_weights,
        "adam_state": sizes.adam_state,
    }))  # fmt: skip
    if run_dir is not None:
        (out / "run_dir.txt").write_text(str(run_dir))


def main() -> None:
    faulthandler.dump_traceback_later(170, exit=True)  # a hang shows where it is
    model_dir, forget, reference, retain, out_dir, methods = sys.argv[1:7]
    lr = float(sys.argv[7]) if len(sys.argv) > 7 else 2e-3
    memorization_run.Engine = RecordedEngine
    # one process group for every run (a group cannot be joined again once left): leave it after the last
    memorization_run.leave_process_group = lambda state: None
    for method in methods.split(","):
        out = Path(out_dir) / method
        out.mkdir(parents=True, exist_ok=True)
        run(method, model_dir, forget, reference, retain, out, lr)
    leave_process_group(PartialState())


if __name__ == "__main__":
    main()
