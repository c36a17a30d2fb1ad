"""Run tiny-model SGA through obliviate's Python API; launched by test_distributed.py under torchrun or alone.

usage: distributed_sga.py MODEL_DIR FORGET REFERENCE OUT_DIR"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path

from accelerate import PartialState

from obliviate.api import run_unlearning
from obliviate.config import UnlearnConfig


def main() -> None:
    faulthandler.dump_traceback_later(240, exit=True)  # a hang shows where it is (the test waits 300 s)
    model_dir, forget, reference, out_dir = sys.argv[1:5]
    out = Path(out_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cfg = UnlearnConfig.model_validate(
        {
            "model": {"model": model_dir, "device": "cpu", "dtype": "float32"},
            "method": "sga",
            "forget": forget,
            "reference": reference,
            "training": {"learning_rate": 2e-3, "micro_batch_size": 1, "max_steps": 30},
            "scoring": {"max_tokens": 48, "el_n": [], "neighbours": 0},
            "utility": {"data_dir": None, "perplexity": False, "before": False},
            "save_model": False,
            "progress": False,
            "output_dir": str(out / "runs"),
        }
    )
    run_dir, _ = run_unlearning(cfg)
    state = PartialState()  # the state run_unlearning set up (shared), as seen by this process
    (out / f"rank{rank}.json").write_text(
        json.dumps({"rank": state.process_index, "world": state.num_processes, "pid": os.getpid(), "env_world": world})
    )
    if run_dir is not None:
        (out / "run_dir.txt").write_text(str(run_dir))


if __name__ == "__main__":
    main()
