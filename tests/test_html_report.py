"""The audit report: guardrail verdicts on known inputs, and a real run's report.html rendered by headless
Chromium (Debian's chromium; `scripts/test.sh` installs it when it can, else this test skips and says why)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNSEEN_TEXTS
from obliviate.cli.main import app
from obliviate.guardrails import FAIL, PASS, WARN, gibberish_verdict, retention_verdicts, utility_verdicts
from obliviate.metrics.text import repeats_itself
from obliviate.models import save_model
from obliviate.reports.html import write_html_report


def test_guardrail_verdicts_on_known_numbers():
    utility = {"before": {"perplexity": 10.0, "piqa": {"accuracy": 0.70}, "arc": {"accuracy": 0.50}},
               "after": {"perplexity": 40.0, "piqa": {"accuracy": 0.62}, "arc": {"accuracy": 0.49}}}  # fmt: skip
    verdicts = {v.guardrail: v.verdict for v in utility_verdicts({"utility": utility})}
    assert verdicts == {"utility collapse: perplexity": FAIL,  # 4x
                        "utility collapse: piqa": WARN,  # 8 points
                        "utility collapse: arc": PASS}  # fmt: skip
    sets = {"forget": {"before": 1, "after": 0, "retained": 0.0, "n": 4},
            "subject": {"before": 1.0, "after": 0.95, "retained": 0.95, "n": 20},
            "object": {"before": 1.0, "after": 0.8, "retained": 0.8, "n": 5},
            "unrelated": {"before": 1.0, "after": 0.5, "retained": 0.5, "n": 2}}  # fmt: skip
    assert [(v.guardrail, v.verdict) for v in retention_verdicts({"sets": sets})] == [
        ("retain regression: subject", PASS), ("retain regression: object", WARN),
        ("retain regression: unrelated", FAIL)]  # fmt: skip
    assert repeats_itself("The answer is Paris. The answer is Paris. The answer is Paris. The answer is Paris.")
    assert not repeats_itself("The capital of France is Paris, a city on the Seine with many museums.")
    replies = {"after": {"forget": {"items": [{"reply": "the answer is x " * 5}, {"reply": "Lyon."}]}}}
    assert gibberish_verdict(replies)[0].verdict == FAIL  # 1 of 2


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium on this machine (scripts/test.sh installs Debian's chromium when it runs as root)")


def _dom(page, tmp_path) -> str:
    """The page as headless Chromium builds it (scripts run, images decoded)."""
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip


@pytest.fixture(scope="module")
def sga_run(memorizing_model, tmp_path_factory):
    """A real `obliviate unlearn --method sga` run directory on the tiny memorizing model."""
    root = tmp_path_factory.mktemp("report")
    model_dir = save_model(memorizing_model, root / "memorized")
    for name, texts in (("forget", TRAINED_TEXTS), ("ref", UNSEEN_TEXTS)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = root / "runs"
    args = ["unlearn", str(root / "forget.jsonl"), "--reference", str(root / "ref.jsonl"), "--model", str(model_dir),
            "--method", "sga", "--learning-rate", "2e-3", "--max-tokens", "48", "--neighbours", "2", "--no-save-model",
            "--output-dir", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    return run


def test_report_html_renders_in_headless_chromium_with_its_plots(sga_run, tmp_path):
    run = sga_run
    page = run / "report.html"
    assert page.is_file() and (run / "report.md").is_file()
    assert "## Guardrails" in (run / "report.md").read_text()
    assert write_html_report(run) == page  # rewriting is atomic and idempotent
    dom = _dom(page, tmp_path)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    decoded = int(re.search(r'data-images-decoded="(\d+)"', body).group(1))
    assert images >= 3 and decoded == images  # histogram, trace and ROC plots all decoded by the browser
    assert "<table>" in dom and "c(D_f) calibrated, high side" in dom and "Guardrails" in dom
    # the attack either way, with its interval, and the two-sided verdicts are rendered
    assert "AUC either way" in dom and re.search(r"\d\.\d{4} \[\d\.\d\d, \d\.\d\d\]", dom)
    for guardrail in ("over-unlearned", "still extractable", "utility collapse: perplexity"):
        assert re.search(rf"<td>{guardrail}</td>\s*<td class=\"(pass|warn|fail)\">", dom), guardrail


def test_associations_report_html_shows_the_membership_attack_either_way(knowing_model, tmp_path):
    """An associations run (UnSTAR, template generator, tiny model that knows Zorbia): its report.html renders
    the forgotten facts against never-known facts, AUC either way with its interval, and both verdicts."""
    from dataclasses import asdict

    from conftest import UNRELATED, ZORBIA

    record = asdict(ZORBIA) | {"subject_facts": [asdict(f) for f in ZORBIA.subject_facts],
                               "object_facts": [asdict(f) for f in ZORBIA.object_facts]}  # fmt: skip
    (tmp_path / "assoc.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "keep.jsonl").write_text("".join(json.dumps(asdict(f)) + "\n" for f in UNRELATED))
    args = ["unlearn", str(tmp_path / "assoc.jsonl"), "--benchmark", "associations", "--method", "unstar",
            "--model", str(save_model(knowing_model, tmp_path / "model")), "--generator", "template",
            "--max-rounds", "1", "--set", f"benchmark.unrelated={tmp_path / 'keep.jsonl'}",
            "--set", f"benchmark.retain={tmp_path / 'keep.jsonl'}", "--set", "benchmark.relearn_steps=0",
            "--set", "benchmark.quantization_bits=[]", "--set", "benchmark.leak_k=2", "--no-save-model",
            "--no-progress", "--output-dir", str(tmp_path / "runs"), "--device", "cpu", "--dtype", "float32"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    dom = _dom(run / "report.html", tmp_path)
    assert "never known, AUC either way" in dom and re.search(r"\d\.\d{3} \[\d\.\d\d, \d\.\d\d\]", dom)
    for guardrail in ("over-unlearned", "still extractable"):
        assert re.search(rf"<td>{guardrail}</td>\s*<td class=\"(pass|warn|fail)\">", dom), guardrail


def test_compare_collects_runs_into_one_table_and_figure(sga_run, tmp_path):
    unstar = tmp_path / "unlearn-unstar-x"
    unstar.mkdir()
    sets = {name: {"n": 3, "before": {"accuracy": 1.0}, "after": {"accuracy": after}}
            for name, after in (("forget", 0.0), ("subject", 1.0), ("object", 0.5), ("unrelated", 1.0))}  # fmt: skip
    summary = {"sets": sets, "per_sample": {}, "attacks": {}, "utility": {"before": {}, "after": {}}, "steps": 12,
               "timings": {"unlearning_seconds": 3.5, "wall_seconds": 4.0}}  # fmt: skip
    (unstar / "metrics.json").write_text(json.dumps({"schema_version": 1, "benchmark": "associations",
                                                     "method": "unstar", "status": "finished",
                                                     "summary": summary}))  # fmt: skip
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(sga_run), str(unstar), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    (made,) = out.iterdir()
    table = (made / "comparison.md").read_text()
    assert (made / "comparison.png").stat().st_size > 1000
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert {"method", "forget outliers_high after", "forget ma after", "object accuracy after"} <= set(header)
    sga, uns = ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:4])
    assert sga[header.index("method")] == "sga" and sga[header.index("forget outliers_high after")] == "0"
    assert uns[header.index("object accuracy after")] == "0.5" and uns[header.index("forget ma after")] == "-"
    bad = CliRunner().invoke(app, ["compare", str(tmp_path / "nothing"), "--output-dir", str(out)])
    assert bad.exit_code == 2 and "no metrics.json" in bad.output
    assert len(list(out.iterdir())) == 1  # a refused comparison leaves no directory behind


def test_report_html_shows_user_text_as_text(tmp_path):
    """Answers, ids and paths quoted in a summary are shown, never run: raw HTML is escaped, script URLs dropped,
    and the guardrails JSON cannot close its <script> element."""
    (tmp_path / "summary.md").write_text(
        "# qa on <svg onload=alert(1)>\n\n| id | answer |\n| --- | --- |\n"
        "| <b>x</b> | <img src=x onerror=alert(2)> [link](javascript:alert(3)) |\n\n<script>alert(4)</script>\n"
    )
    (tmp_path / "metrics.json").write_text(json.dumps({"guardrails": [
        {"guardrail": "g", "verdict": "pass", "detail": "</script><script>alert(5)</script>"}]}))  # fmt: skip
    page = write_html_report(tmp_path).read_text()
    assert "<svg" not in page and "<img src=x" not in page and "<b>x</b>" not in page and "javascript:" not in page
    assert "&lt;svg onload=alert(1)&gt;" in page and "&lt;script&gt;alert(4)&lt;/script&gt;" in page
    assert page.count("<script") == 2 and "alert(5)" in page and "</script><script>alert(5)" not in page
