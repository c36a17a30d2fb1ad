"""Sharded training (training.sharding=fsdp) on two real CPU processes (torchrun, gloo) gives the single-process
run's per-step losses and final metrics for GA, NPO, SGA, TA, RMU and MATCH, each process holds about half of the
weights and of Adam's state, and the saved model is a plain transformers model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.config import TrainingConfig
from obliviate.errors import ConfigError
from obliviate.models import load_model, save_model
from obliviate.training.engine import Engine
from test_distributed import _free_port, _jsonl, _launch_worker

SCRIPT = Path(__file__).with_name("distributed_sharding.py")
METHODS = ("ga", "npo", "sga", "ta", "rmu", "match")
RETAIN_TEXTS = [
    "the weather report said rain by the evening and clear skies tomorrow",
    "a short note about the garden and its apple trees in the autumn",
]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def runs(memorizing_model, tmp_path_factory):
    """Every method once in one process and once sharded over two: {mode: {method: output folder}}."""
    root = tmp_path_factory.mktemp("sharding")
    forget = [*TRAINED_TEXTS, "one more line nobody trained on, so that the two processes get uneven shares"]
    args = [str(save_model(memorizing_model, root / "model")), str(_jsonl(root / "forget.jsonl", forget, "t")),
            str(_jsonl(root / "ref.jsonl", UNSEEN_TEXTS, "u")), str(_jsonl(root / "retain.jsonl", RETAIN_TEXTS, "r"))]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    out = {}
    for mode, launcher in (("single", [sys.executable]), ("sharded", torchrun)):
        folder = root / mode
        _launch_worker([*launcher, str(SCRIPT), *args, str(folder), ",".join(METHODS)])
        out[mode] = {method: folder / method for method in METHODS}
    return out


def _run_dir(folder: Path) -> Path:
    return Path((folder / "run_dir.txt").read_text())


def _trace(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (_run_dir(folder) / "trace.jsonl").read_text().splitlines()]


def _numbers(tree, prefix: str = "") -> dict[str, float]:
    """Every number in a nested dict / list, keyed by its path."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _numbers(value, f"{prefix}.{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in _numbers(value, f"{prefix}[{i}]").items()}
    is_number = isinstance(tree, (int, float)) and not isinstance(tree, bool)
    return {prefix: float(tree)} if is_number else {}


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


@pytest.mark.parametrize("method", METHODS)
def test_sharded_run_matches_single_process(runs, method):
    single, sharded = runs["single"][method], runs["sharded"][method]
    one, two = _trace(single), _trace(sharded)
    assert len(one) == len(two) > 1
    for a, b in zip(one, two):
        assert a.get("selected") == b.get("selected"), (method, a["step"])
        for key in ("mean_ma", "mean_loss"):
            assert _close(a[key], b[key]), (method, a["step"], key, a[key], b[key])
        for key, value in (a.get("terms") or {}).items():
            assert _close(value, b["terms"][key]), (method, a["step"], key, value, b["terms"][key])
    summaries = [json.loads((_run_dir(f) / "metrics.json").read_text())["summary"] for f in (single, sharded)]
    final = [_numbers({k: v for k, v in s.items() if k != "timings"}) for s in summaries]
    assert final[0].keys() == final[1].keys() and final[0]
    differ = {k: (v, final[1][k]) for k, v in final[0].items() if not _close(v, final[1][k])}
    assert not differ, differ


@pytest.mark.parametrize("method", METHODS)
def test_each_process_holds_half_the_weights_and_adam_state(runs, method):
    ranks = [json.loads((runs["sharded"][method] / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["pid"] != ranks[1]["pid"] and all(r["world"] == 2 and r["sharded"] for r in ranks)
    alone = json.loads((runs["single"][method] / "rank0.json").read_text())
    full, adam = alone["full_weights"], alone["adam_state"]  # Adam keeps moments only for weights with gradients
    assert not alone["sharded"] and alone["weights"] == full == ranks[0]["full_weights"] and adam > 0
    assert sum(r["weights"] for r in ranks) == full and sum(r["adam_state"] for r in ranks) == adam
    for r in ranks:
        assert abs(r["weights"] / full - 0.5) < 0.02 and abs(r["adam_state"] / adam - 0.5) < 0.02, r


@pytest.mark.parametrize("method", ["ta", "match"])
def test_sharded_result_saves_as_a_plain_transformers_model(runs, method):
    ids = torch.tensor([list(b"the quick brown fox")])
    logits = []
    for mode in ("single", "sharded"):
        model = AutoModelForCausalLM.from_pretrained(_run_dir(runs[mode][method]) / "model")
        assert not any(type(p).__name__ == "DTensor" for p in model.parameters())
        with torch.no_grad():
            logits.append(model(input_ids=ids).logits)
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)


def test_sharding_refuses_what_it_cannot_do():
    model = load_model("tiny:0", device="cpu", dtype="float32").model
    with pytest.raises(ConfigError, match="lora"):
        Engine(model, 256, TrainingConfig(sharding="fsdp", lora={"enabled": True}))
    with pytest.raises(ConfigError, match="checkpoint_every"):
        Engine(model, 256, TrainingConfig(sharding="fsdp", checkpoint_every=2))
    assert not Engine(model, 256, TrainingConfig(sharding="fsdp")).sharded  # one process: nothing to split
