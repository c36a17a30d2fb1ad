"""End-to-end CLI runs on the tiny model with real files: run directories, outputs, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.cli.main import app

runner = CliRunner()


def _jsonl(path, texts, prefix):
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return path


@pytest.fixture()
def sets(tmp_path):
    return _jsonl(tmp_path / "target.jsonl", TRAINED_TEXTS, "t"), _jsonl(tmp_path / "unseen.jsonl", UNSEEN_TEXTS, "u")


FAST = ["--model", "tiny", "--max-tokens", "24", "--el-n", "3", "--neighbours", "2", "--no-progress"]


def test_memorization_writes_a_complete_run_directory(tmp_path, sets):
    target, unseen = sets
    out = tmp_path / "runs"
    args = ["memorization", str(target), "--reference", str(unseen), *FAST, "--output-dir", str(out)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    runs = sorted(out.iterdir())
    assert len(runs) == 2  # a second run never overwrites the first
    run = runs[0]
    for name in ("config.yaml", "metrics.json", "summary.md", "ma_histogram.png", "miau_roc.png", "run.log"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["target"]["per_sample"]) == {"t0", "t1", "t2", "t3"}
    assert set(metrics["target"]["per_sample"]["t0"]) >= {"ma", "es", "loss", "el_3", "mia_minkpp"}
    assert metrics["outliers"]["calibrated"]["k"] == 2.0
    assert set(metrics["miau"]) == {
        "memorization_two_sided",
        "neighbourhood",
        "loss",
        "zlib",
        "mink",
        "minkpp",
    }
    assert "c(D_f)" in (run / "summary.md").read_text()


def test_yaml_config_is_used_and_flags_override(tmp_path, sets):
    target, unseen = sets
    config = tmp_path / "c.yaml"
    config.write_text(
        f"sequences: {target}\nreference: {unseen}\nmodel: {{model: tiny}}\n"
        f"scoring: {{max_tokens: 16, el_n: [], neighbours: 0}}\noutput_dir: {tmp_path / 'r'}\nprogress: false\n"
    )
    result = runner.invoke(app, ["memorization", "--config", str(config), "--max-tokens", "20"])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "r").iterdir())
    saved = (run / "config.yaml").read_text()
    assert "max_tokens: 20" in saved and "neighbours: 0" in saved


def test_bad_input_names_file_and_line(tmp_path, sets):
    _, unseen = sets
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": \n')
    result = runner.invoke(app, ["memorization", str(bad), "--reference", str(unseen), *FAST])
    assert result.exit_code == 2
    assert "bad.jsonl" in result.output and "line 2" in result.output


def test_reference_is_required_for_user_files(sets, tmp_path):
    target, _ = sets
    result = runner.invoke(app, ["memorization", str(target), *FAST, "--output-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and "reference" in result.output
    assert not (tmp_path / "r").exists()  # nothing written on a failed start


def test_testbed_injects_with_a_spread_of_repetitions(tmp_path):
    words = "amber basil cedar delta ember fjord grove harbor island jasper kettle lantern meadow".split()
    docs = [" ".join(words[(i * 3 + j) % len(words)] + str(i) for j in range(8)) for i in range(14)]
    source = _jsonl(tmp_path / "source.jsonl", docs, "d")
    result = runner.invoke(app, [
        "testbed", str(source), "--model", "tiny", "--forget", "4", "--heldout", "4", "--filler", "2",
        "--tokens", "32", "--min-repeats", "1", "--max-repeats", "40", "--learning-rate", "3e-3",
        "--batch-size", "2", "--neighbours", "2", "--retain-only", "--no-progress",
        "--output-dir", str(tmp_path / "runs"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    assert any((run / "memorized").glob("*.safetensors")) and any((run / "retain_only").glob("*.safetensors"))
    forget = [json.loads(line) for line in (run / "splits" / "forget.jsonl").read_text().splitlines()]
    assert sorted(r["repetitions"] for r in forget) == [1, 14, 27, 40]
    metrics = json.loads((run / "metrics.json").read_text())
    memorized = metrics["models"]["memorized"]["target"]["per_sample"]
    most = max(forget, key=lambda r: r["repetitions"])["id"]
    least = min(forget, key=lambda r: r["repetitions"])["id"]
    assert memorized[most]["ma"] > memorized[least]["ma"] + 0.2
    base_forget = metrics["models"]["base"]["target"]["aggregate"]["ma"]["mean"]
    retain_forget = metrics["models"]["retain_only"]["target"]["aggregate"]["ma"]["mean"]
    assert metrics["summary"]["forget_ma_mean"] > max(base_forget, retain_forget) + 0.2

    # the retain-only model of an existing testbed: the same recipe, so the same weights; never overwritten
    from safetensors.torch import load_file

    from obliviate.testbed.build import add_retain_only

    with pytest.raises(FileExistsError):
        add_retain_only(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("retain_only"))
    made = add_retain_only(copy, progress=False)
    built, again = load_file(run / "retain_only" / "model.safetensors"), load_file(made / "model.safetensors")
    assert built.keys() == again.keys() and all(torch.equal(built[k], again[k]) for k in built)

    # an unlearning run judged against it: PrivLeak per attack score and the KS forget quality
    result = runner.invoke(app, [
        "unlearn", str(run / "splits" / "forget.jsonl"), "--reference", str(run / "splits" / "heldout.jsonl"),
        "--model", str(run / "memorized"), "--method", "sga", "--learning-rate", "3e-3", "--max-steps", "3",
        "--max-tokens", "32", "--neighbours", "0", "--no-save-model", "--no-progress",
        "--set", f"benchmark.retain_only_model={made}", "--set", "benchmark.utility.fluency_prompts=0",
        "--output-dir", str(tmp_path / "unlearn"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    unlearned = next((tmp_path / "unlearn").iterdir())
    m = json.loads((unlearned / "metrics.json").read_text())
    gold, miau = m["gold_standard"], m["after"]["miau"]
    assert set(gold["privleak"]) == set(miau)
    assert gold["privleak"]["loss"] == pytest.approx(  # MUSE's convention: its AUC is 1 - ours
        (gold["auc_retain_only"]["loss"] - miau["loss"]["auc"]) / (1 - gold["auc_retain_only"]["loss"]))
    assert 0 <= gold["forget_quality"]["ma"]["p_value"] <= 1 and 0 <= gold["forget_quality"]["loss"]["statistic"] <= 1
    assert m["summary"]["attacks"]["membership"]["privleak"] == gold["privleak_best"]["value"]
    assert "Against the retain-only model" in (unlearned / "summary.md").read_text()
    assert "PrivLeak" in " ".join(result.output.split())


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "obliviate", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    assert "memorization" in result.stdout and "testbed" in result.stdout
