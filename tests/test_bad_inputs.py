"""Bad inputs and faults through the CLI, as a careless or hostile user meets them: each exits 2 with a message
that names the file / flag / key and says what to do, prints no traceback, and leaves no run directory or only
one marked failed. Report and console never interpret user text (HTML in ids and paths, rich markup)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.cli.main import app
from obliviate.core.rundir import read_status
from obliviate.models import save_model
from test_cells import _jsonl
from test_html_report import _chromium

runner = CliRunner()
FAST = ["--max-tokens", "32", "--neighbours", "0", "--set", "benchmark.utility.fluency_prompts=0", "--no-progress",
        "--no-save-model"]  # fmt: skip


@pytest.fixture(scope="module")
def files(memorizing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    model = save_model(memorizing_model, root / "model")
    forget = _jsonl(root / "forget.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(TRAINED_TEXTS)])
    ref = _jsonl(root / "ref.jsonl", [{"id": f"u{i}", "text": t} for i, t in enumerate(UNSEEN_TEXTS)])
    return root, model, forget, ref


def _leftovers_are_marked_failed(out) -> None:
    """No run directory, or only ones whose status says failed."""
    if not out.exists():
        return
    for run_dir in out.iterdir():
        status = read_status(run_dir)
        assert status is not None and status["status"] == "failed", (run_dir, status)


def _clean_error(result, *needles, out=None) -> str:
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (result.exit_code, text, result.exception)
    assert ("Traceback" not in result.output and text.startswith("error:")) or "error:" in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    if out is not None:
        _leftovers_are_marked_failed(out)
    return text


def _cases(root, model, forget, ref):
    bad_csv = root / "quote.csv"
    bad_csv.write_text('id,text\n1,fine text here\n2,"an unclosed quote\n3,more text\n4,and more\n')
    no_text = root / "notext.csv"
    no_text.write_text("id,body\n1,some text\n")
    dict_json = root / "dict.json"
    dict_json.write_text(json.dumps({"data": [{"text": "x"}]}))
    latin = root / "latin.yaml"
    latin.write_bytes("method: sga\n# caf\xe9\n".encode("latin-1"))
    truncated = root / "truncated"
    if not truncated.exists():
        subprocess.run(["cp", "-r", str(model), str(truncated)], check=True)
        weights = next(truncated.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    a_file = root / "a-file"
    a_file.write_text("x")
    heldout_empty = _jsonl(root / "assoc.jsonl", [{"id": "a", "subject": "S", "object": "O", "question": "Q?",
                                                   "heldout": []}])  # fmt: skip
    unlearn = ["unlearn", str(forget), "--reference", str(ref), "--model", str(model)]
    return {
        "fp16 on cpu": ([*unlearn, "--dtype", "float16"], ["--dtype float16 is refused on the CPU", "bfloat16"]),
        "cuda device missing": ([*unlearn, "--device", "cuda:99"], ["--device cuda:99"]),
        "unknown device": ([*unlearn, "--device", "tpu"], ["unknown device 'tpu'"]),
        "output dir is a file": ([*unlearn, "--output-dir", str(a_file)], ["is a file", "--output-dir"]),
        "output dir under a file": ([*unlearn, "--output-dir", str(a_file / "sub")], ["--output-dir"]),
        "truncated weights": (["unlearn", str(forget), "--reference", str(ref), "--model", str(truncated)],
                              ["Could not load model", "truncated"]),
        "non-utf8 config": ([*unlearn, "--config", str(latin)], ["not UTF-8", "latin.yaml"]),
        "negative seed": ([*unlearn, "--seed", "-1"], ["seed", "greater than or equal to 0"]),
        "reference is the forget set": (["unlearn", str(forget), "--reference", str(forget), "--model", str(model)],
                                        ["contains 4 of the target's own texts", "never saw"]),
        "one reference sequence": ([*unlearn[:3], str(ref), "--model", str(model), "--limit", "1"],
                                   ["has 1 sequence(s)", "at least 2"]),
        "unbalanced csv quote": (["unlearn", str(bad_csv), "--reference", str(ref), "--model", str(model)],
                                 ["quote.csv: line 3", "never closed"]),
        "csv without text column": (["unlearn", str(no_text), "--reference", str(ref), "--model", str(model)],
                                    ["notext.csv", "no 'text' column", "'id', 'body'"]),
        "dict-shaped json": (["unlearn", str(dict_json), "--reference", str(ref), "--model", str(model)],
                             ["dict.json", "one JSON object with keys 'data'"]),
        "empty heldout": (["unlearn", str(heldout_empty), "--method", "unstar", "--model", str(model)],
                          ["assoc.jsonl: line 1", "'heldout'"]),
        "el-n beyond the window": (["memorization", str(forget), "--reference", str(ref), "--model", str(model),
                                    "--el-n", "500"], ["every EL n must be below max_tokens"]),
        "resume from garbage": ([*unlearn, "--resume", str(root)], ["is not an obliviate checkpoint"]),
    }


CASES = ["fp16 on cpu", "cuda device missing", "unknown device", "output dir is a file", "output dir under a file",
         "truncated weights", "non-utf8 config", "negative seed", "reference is the forget set",
         "one reference sequence", "unbalanced csv quote", "csv without text column", "dict-shaped json",
         "empty heldout", "el-n beyond the window", "resume from garbage"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_a_clear_error_with_nothing_unmarked_left(case, files, tmp_path):
    args, needles = _cases(*files)[case]
    if "--output-dir" not in args:
        args = [*args, "--output-dir", str(tmp_path / "out")]
    memorization_run = args[0] == "unlearn" and "--reference" in args  # FAST holds memorization settings
    result = runner.invoke(app, [*args, *FAST] if memorization_run else [*args, "--no-progress"])
    _clean_error(result, *needles, out=tmp_path / "out")


def test_an_offline_hub_id_fails_fast(files, tmp_path):
    started = time.perf_counter()
    result = runner.invoke(app, ["memorization", "builtin:famous", "--model", "obliviate-tests/no-such-model",
                                 "--output-dir", str(tmp_path / "out")])  # fmt: skip
    _clean_error(result, "obliviate-tests/no-such-model", out=tmp_path / "out")
    assert time.perf_counter() - started < 30


def test_resume_refuses_a_checkpoint_of_another_model_or_forget_set(files, tmp_path):
    _, model, forget, ref = files
    out = tmp_path / "first"
    first = runner.invoke(app, ["unlearn", str(forget), "--reference", str(ref), "--model", str(model), "--method",
                                "ga", "--max-steps", "2", "--set", "benchmark.stop=mean", "--set", "benchmark.tau=0.0",
                                "--checkpoint-every", "1", "--output-dir", str(out), *FAST])  # fmt: skip
    assert first.exit_code == 0, first.output
    checkpoints = sorted(out.glob("*/checkpoints/step-*"))
    assert [c.name for c in checkpoints] == ["step-0001", "step-0002"]
    assert "MB (weights + Adam state); keeping the last 2" in (checkpoints[0].parents[1] / "run.log").read_text()
    resume = ["--resume", str(checkpoints[-1]), "--method", "ga", "--set", "benchmark.stop=mean", "--set",
              "benchmark.tau=0.0", "--output-dir", str(tmp_path / "out"), *FAST]  # fmt: skip
    other_model = runner.invoke(app, ["unlearn", str(forget), "--reference", str(ref), "--model", "tiny:5", *resume])
    _clean_error(other_model, "was written by a different run", "model differ", "tiny:5", out=tmp_path / "out")
    other_set = runner.invoke(app, ["unlearn", str(ref), "--reference", str(forget), "--model", str(model), *resume])
    _clean_error(other_set, "forget set, reference set differ", out=tmp_path / "out")


def test_checkpoints_keep_only_the_last_n(files, tmp_path):
    _, model, forget, ref = files
    args = ["unlearn", str(forget), "--reference", str(ref), "--model", str(model), "--method", "ga", "--max-steps",
            "4", "--set", "benchmark.stop=mean", "--set", "benchmark.tau=0.0", "--checkpoint-every", "1", "--set",
            "benchmark.training.keep_checkpoints=1", "--output-dir", str(tmp_path), *FAST]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [c.name for c in tmp_path.glob("*/checkpoints/*")] == ["step-0004"]


def test_a_step_that_leaves_nan_weights_stops_the_run_before_anything_is_saved(files, tmp_path):
    """After every step (any dtype, any method) the weights must be finite: here a learning rate of 1e37
    overflows float32 in the first Adam update. The run stops, names the step, suggests float32 / bfloat16, and
    saves no model."""
    _, model, forget, ref = files
    result = runner.invoke(app, ["unlearn", str(forget), "--reference", str(ref), "--model", str(model), "--method",
                                 "ga", "--learning-rate", "1e37", "--max-steps", "3", "--output-dir", str(tmp_path),
                                 *FAST[:-1]])  # fmt: skip
    _clean_error(result, "optimizer step 1 turned weights into NaN/inf (float32)",
                 "the run stops before anything is saved", "Use float32 (or bfloat16)", out=tmp_path)  # fmt: skip
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "model").exists() and not (run_dir / "metrics.json").exists()


def test_user_text_is_never_markup_on_the_console_nor_html_in_the_report(memorizing_model, tmp_path):
    payload = '<img src=x onerror="document.body.dataset.pwned=1">'
    model_dir = save_model(memorizing_model, tmp_path / "<svg onload=document.body.dataset.pwned=2>")
    forget = _jsonl(tmp_path / "forget.jsonl", [{"id": f"[draft] {payload} [/x] {i}", "text": t}
                                                for i, t in enumerate(TRAINED_TEXTS)])  # fmt: skip
    ref = _jsonl(tmp_path / "ref.jsonl", [{"text": t} for t in UNSEEN_TEXTS])
    out = tmp_path / "[draft] runs"
    result = runner.invoke(app, ["unlearn", str(forget), "--reference", str(ref), "--model", str(model_dir),
                                 "--method", "sga", "--max-steps", "1", "--output-dir", str(out), *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[draft]" in result.output and "[/x]" in result.output  # printed as given, not eaten as markup
    (run_dir,) = out.iterdir()
    page = (run_dir / "report.html").read_text()
    assert "<svg onload" not in page and "<img src=x" not in page and "&lt;svg onload" in page
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
         "--dump-dom", (run_dir / "report.html").as_uri()], capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert "pwned" not in body and "data-images" in body  # the page's own script ran, none of the planted ones
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.iterdir() if p.is_file()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes  # run.log, metrics.json, report.html alike
