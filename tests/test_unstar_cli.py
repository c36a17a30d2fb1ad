"""`obliviate antisamples` and `obliviate unlearn --method unstar` end to end on a tiny model that knows a fact."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from conftest import UNRELATED, ZORBIA
from obliviate.cli.main import app
from obliviate.models import save_model
from obliviate.unstar.antisamples import read_antisamples

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(knowing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("unstar")
    model_dir = save_model(knowing_model, root / "model")
    record = asdict(ZORBIA)
    record["subject_facts"] = [asdict(f) for f in ZORBIA.subject_facts]
    record["object_facts"] = [asdict(f) for f in ZORBIA.object_facts]
    facts = root / "facts.jsonl"
    facts.write_text(json.dumps(record) + "\n")
    unrelated = root / "unrelated.jsonl"
    unrelated.write_text("".join(json.dumps(asdict(f)) + "\n" for f in UNRELATED))
    config = root / "unstar.yaml"
    config.write_text(
        f"method: unstar\nunrelated: {unrelated}\nretain: {unrelated}\nseed_questions: 4\nwrong_answers: 3\n"
        "target_unlearned: 4\nmax_rounds: 4\nrelearn_steps: 2\ntraining: {learning_rate: 0.001}\n"
    )
    return model_dir, facts, config


def test_antisamples_then_unlearn_from_the_file(inputs, tmp_path):
    model_dir, facts, config = inputs
    out = tmp_path / "anti.jsonl"
    common = [
        "--model",
        str(model_dir),
        "--config",
        str(config),
        "--output-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    result = runner.invoke(app, ["antisamples", str(facts), "--generator", "template", "--out", str(out), *common])
    assert result.exit_code == 0, result.output
    samples = read_antisamples(out)
    assert any(s.kind == "forget" for s in samples) and all(
        "Quell" not in s.target for s in samples if s.kind == "forget"
    )
    again = runner.invoke(app, ["antisamples", str(facts), "--generator", "template", "--out", str(out), *common])
    assert again.exit_code == 2 and "nothing is overwritten" in again.output

    result = runner.invoke(app, ["unlearn", str(facts), "--method", "unstar", "--antisamples", str(out), *common])
    assert result.exit_code == 0, result.output
    run_dir = next((tmp_path / "runs").glob("associations-unstar-*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["sets"]["forget"]["before"] == 1.0
    assert metrics["steps"] == 4 * -(-len(samples) // 4)  # passes x batches over the file's samples
    assert metrics["antisamples"]["forget"] == sum(s.kind == "forget" for s in samples)
    assert metrics["relearning"]["steps"] >= 1
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "metrics.json", "summary.md", "antisamples.jsonl",
                                                   "answers.json", "model", "run.log"}  # fmt: skip
    assert "## Accuracy" in (run_dir / "summary.md").read_text()
    assert set(metrics["quantization_attack"]) == {"8bit", "4bit"}
    assert all(0 <= v <= 1 for v in metrics["quantization_attack"].values())
    assert "## Quantization attack" in (run_dir / "summary.md").read_text()
    assert "retain regression: object" in (run_dir / "report.md").read_text() and (run_dir / "report.html").is_file()
    assert not (run_dir / "tradeoff.png").exists()  # trained from a file: no rounds were traced


def test_unstar_loop_from_the_cli_with_ablations(inputs, tmp_path):
    model_dir, facts, config = inputs
    result = runner.invoke(app, ["unlearn", str(facts), "--method", "unstar", "--generator", "template",
                                 "--no-rationale", "--no-escalation", "--no-save-model", "--model", str(model_dir),
                                 "--config", str(config), "--output-dir", str(tmp_path), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(next(tmp_path.glob("associations-unstar-*/metrics.json")).read_text())
    assert metrics["ablations"] == {"rationale": False, "escalation": False, "retain_step": True}
    assert metrics["steps"] > 0 and metrics["sets"]["forget"]["after"] == 0.0
    assert set(metrics["backend_shares"]["question"]) == {"template"}
    assert metrics["backend_shares"]["rationale"] == {}  # no rationales in this ablation
    run_dir = next(tmp_path.glob("associations-unstar-*"))
    assert (run_dir / "tradeoff.png").is_file() and "![forget / retain trade-off](tradeoff.png)" in (
        run_dir / "summary.md"
    ).read_text()


def test_unstar_rejects_bad_input_clearly(inputs, tmp_path):
    model_dir, facts, _ = inputs
    result = runner.invoke(
        app, ["unlearn", str(tmp_path / "none.jsonl"), "--method", "unstar", "--model", str(model_dir)]
    )
    assert result.exit_code == 2 and "file not found" in result.output
    result = runner.invoke(app, ["antisamples", str(facts), "--generator", "openai", "--model", str(model_dir)])
    assert result.exit_code == 2 and "needs an endpoint" in " ".join(result.output.split())
