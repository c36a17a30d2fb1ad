"""The README's Python API example runs as written (on the embedded SmolLM2), and the API takes objects in memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.real_model
def test_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example(), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.run_dir.is_dir() and (result.run_dir / "report.html").is_file()
    forget = result.metrics["before"]["forget"]["per_sample"]
    assert set(forget) == {"forget-0", "forget-1"}
    assert result.metrics["after"]["forget"]["aggregate"]["probability"] < result.metrics["before"]["forget"][
        "aggregate"]["probability"]  # fmt: skip
    assert namespace["forgetful"] is not namespace["model"].model
    check = namespace["check"].metrics  # evaluate on the saved model: the unlearn run's after figures
    assert check["method"] == "none" and check["after"]["forget"] == result.metrics["after"]["forget"]
    assert check["before"]["forget"] == result.metrics["before"]["forget"]


def test_unlearn_takes_a_model_and_texts_in_memory_and_leaves_the_model_alone(memorizing_model, tmp_path):
    import torch

    from obliviate import RunResult, unlearn

    before = {k: v.clone() for k, v in memorizing_model.model.state_dict().items()}
    result = unlearn(model=memorizing_model, forget=TRAINED_TEXTS, reference=UNSEEN_TEXTS, method="sga",
                     output_dir=str(tmp_path), progress=False, save_model=False,
                     **{"benchmark.training.learning_rate": 2e-3, "benchmark.training.max_steps": 3,
                        "benchmark.scoring.max_tokens": 48, "benchmark.scoring.neighbours": 0})  # fmt: skip
    assert isinstance(result, RunResult)
    run_dir, metrics = result  # unpacks as (run directory, metrics)
    assert metrics["benchmark"] == "memorization" and metrics["schema_version"] == 1
    assert set(metrics["after"]["target"]["per_sample"]) == {f"forget-{i}" for i in range(len(TRAINED_TEXTS))}
    assert metrics["after"]["target"]["aggregate"]["ma"]["mean"] < metrics["before"]["target"]["aggregate"]["ma"][
        "mean"]  # fmt: skip
    assert all(torch.equal(before[k], v) for k, v in memorizing_model.model.state_dict().items())
    assert (run_dir / "status.json").read_text().count("finished") == 1
    assert "inputs_in_memory" in (run_dir / "config.yaml").read_text()
