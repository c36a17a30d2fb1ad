"""``obliviate unlearn`` end to end on a saved tiny model with real files, and its errors."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.cli.main import app
from obliviate.models import load_model, save_model

runner = CliRunner()


def _jsonl(path, texts, prefix):
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


@pytest.fixture(scope="module")
def files(memorizing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearn")
    model_dir = save_model(memorizing_model, root / "memorized")
    return model_dir, _jsonl(root / "forget.jsonl", TRAINED_TEXTS, "t"), _jsonl(root / "ref.jsonl", UNSEEN_TEXTS, "u")


def _digests(folder):
    """sha256 of every file under ``folder`` (weights, config, tokenizer), keyed by relative path."""
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _mc_file(path):
    items = [
        {"query": "the quick brown fox jumps", "choices": ["over the lazy dog", "under a red car"], "gold": 0},
        {"query": "we hold these truths to be", "choices": ["blue and green", "self-evident"], "gold": 1},
    ]
    path.write_text("".join(json.dumps(i) + "\n" for i in items))


def test_unlearn_sga_writes_model_metrics_trace_and_report(files, tmp_path):
    model_dir, forget, reference = files
    utility = tmp_path / "utility"
    utility.mkdir()
    _mc_file(utility / "toy.jsonl")
    out = tmp_path / "runs"
    args = [
        "unlearn", str(forget), "--reference", str(reference), "--model", str(model_dir), "--method", "sga",
        "--learning-rate", "2e-3", "--micro-batch-size", "2", "--max-tokens", "48", "--neighbours", "2",
        "--utility-data", str(utility), "--utility-benchmark", "toy", "--output-dir", str(out), "--no-progress",
    ]  # fmt: skip
    before = _digests(model_dir)
    assert "model.safetensors" in before and "config.json" in before and len(before) >= 3, sorted(before)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    for name in ("config.yaml", "metrics.json", "summary.md", "trace.jsonl", "trace.png", "ma_histogram.png",
                 "miau_roc.png", "run.log", "model/model.safetensors"):  # fmt: skip
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stop_reason"].startswith("stop rule 'outliers'")
    assert metrics["outliers"]["after_vs_start_band"]["high"] == 0
    assert metrics["outliers"]["before"]["calibrated"]["high"] >= 3
    assert set(metrics["before"]["target"]["per_sample"]) == set(metrics["after"]["target"]["per_sample"]) == {
        "t0", "t1", "t2", "t3"
    }  # fmt: skip
    assert metrics["utility"]["before"]["toy"]["n"] == 2 and "perplexity" in metrics["utility"]["after"]
    fluency = metrics["utility"]["after"]["fluency"]  # greedy continuations of the never-seen texts
    # the tiny model may continue with one long "word" (no word bigrams at all): the metric's range is what counts
    assert fluency["n"] >= 1 and 0 <= fluency["distinct_2"] <= 1 and 0 <= fluency["repeating_share"] <= 1
    trace = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    assert len(trace) == metrics["steps"] + 1 and "forget_nll" in trace[0]["terms"]
    assert "MA before" in result.output
    # the saved model is the unlearned one, and the input model is untouched
    reloaded = load_model(str(run / "model"), device="cpu", dtype="float32")
    assert reloaded.model.config.vocab_size == 257
    assert (model_dir / "model.safetensors").stat().st_mtime < (run / "model" / "model.safetensors").stat().st_mtime
    assert _digests(model_dir) == before  # every file of the input model byte-for-byte as it was
    assert _digests(run / "model")["model.safetensors"] != before["model.safetensors"]  # new weights were written


def test_unlearn_rejects_bad_input_clearly(files, tmp_path):
    model_dir, forget, ref = files
    result = runner.invoke(app, ["unlearn", str(forget), "--model", str(model_dir), "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "reference set of never-seen sequences is required" in result.output
    result = runner.invoke(app, ["unlearn", str(forget), "--method", "magic", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2 and "method" in result.output
    result = runner.invoke(app, ["unlearn", str(forget), "--reference", str(ref), "--resume", str(tmp_path),
                                 "--model", str(model_dir), "--max-tokens", "48", "--neighbours", "0",
                                 "--output-dir", str(tmp_path / "r"), "--no-progress"])  # fmt: skip
    assert result.exit_code == 2 and "not an obliviate checkpoint" in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()  # refused before any run directory was made
