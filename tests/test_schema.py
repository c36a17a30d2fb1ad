"""Every benchmark's metrics.json follows the one shipped schema (version 1), and `obliviate compare` puts a
memorization, an associations, a qa, a tofu and a muse-news run into one table and one figure."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from importlib import resources

import jsonschema
import pytest
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNRELATED, UNSEEN_TEXTS, ZORBIA
from obliviate.cli.main import app
from obliviate.models import save_model
from obliviate.unstar.antisamples import answer_target
from test_muse import TINY_MUSE

runner = CliRunner()
QUIET = ["--no-progress", "--no-save-model"]


def _schema() -> dict:
    return json.loads(resources.files("obliviate").joinpath("schema/metrics.schema.json").read_text())


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def benchmark_runs(memorizing_model, knowing_model, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    out = root / "runs"
    seq_model, qa_model = save_model(memorizing_model, root / "seq"), save_model(knowing_model, root / "qa")
    forget = _jsonl(root / "forget.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(TRAINED_TEXTS)])
    ref = _jsonl(root / "ref.jsonl", [{"id": f"u{i}", "text": t} for i, t in enumerate(UNSEEN_TEXTS)])
    answer = answer_target(ZORBIA.answer, None)
    facts = _jsonl(root / "facts.jsonl", [
        {"id": "zorbia", "question": ZORBIA.question, "paraphrases": [ZORBIA.heldout[0]], "answer": answer},
        {"id": "zorbia-2", "question": ZORBIA.heldout[1], "answer": answer}])  # fmt: skip
    keep = _jsonl(root / "keep.jsonl", [asdict(f) for f in UNRELATED])
    record = asdict(ZORBIA) | {"subject_facts": [asdict(f) for f in ZORBIA.subject_facts],
                               "object_facts": [asdict(f) for f in ZORBIA.object_facts]}  # fmt: skip
    assoc = _jsonl(root / "assoc.jsonl", [record])
    commands = [
        ["unlearn", str(forget), "--reference", str(ref), "--model", str(seq_model), "--max-steps", "2",
         "--learning-rate", "2e-3", "--max-tokens", "48", "--neighbours", "0"],
        ["unlearn", str(facts), "--method", "npo", "--retain", str(keep), "--model", str(qa_model), "--epochs", "2",
         "--learning-rate", "1e-3", "--set", f"benchmark.holdout={keep}"],
        ["unlearn", str(assoc), "--method", "unstar", "--generator", "template", "--model", str(qa_model),
         "--max-rounds", "1", "--set", f"benchmark.unrelated={keep}", "--set", f"benchmark.retain={keep}"],
        ["tofu", "--model", "tiny", "--tofu", str(shared_data / "tofu"), "--retain-authors", "1", "--eval-limit", "2",
         "--epochs", "1", "--learning-rate", "1e-3", "--method", "ga", "--no-trace",
         "--set", "benchmark.retain_eval_limit=2"],
        ["unlearn", "--benchmark", "muse-news", "--method", "ga", "--model", "tiny", "--max-steps", "2",
         "--learning-rate", "1e-3", "--set", f"benchmark.data={shared_data / 'muse_news'}", *TINY_MUSE],
    ]  # fmt: skip
    for args in commands:
        result = runner.invoke(app, [*args, "--output-dir", str(out), *(QUIET if args[0] == "unlearn" else [
            "--no-progress"])])  # fmt: skip
        assert result.exit_code == 0, result.output
    runs = {json.loads(f.read_text())["benchmark"]: f.parent for f in out.glob("*/metrics.json")}
    assert set(runs) == {"memorization", "qa", "associations", "tofu", "muse-news"}
    return runs


def test_every_benchmarks_metrics_follow_the_schema(benchmark_runs):
    schema = _schema()
    for name, run_dir in benchmark_runs.items():
        metrics = json.loads((run_dir / "metrics.json").read_text())
        jsonschema.validate(metrics, schema)
        assert metrics["benchmark"] == name and metrics["summary"]["sets"]
        assert all(v["verdict"] in ("pass", "warn", "fail") for v in metrics["guardrails"])
        assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
        if name != "tofu":  # TOFU evaluates the model before unlearning once, in its cache (after values only)
            some_set = next(iter(metrics["summary"]["per_sample"].values()))
            some_metric = next(iter(next(iter(some_set.values())).values()))
            assert some_metric["before"] is not None and some_metric["after"] is not None


def test_the_schema_rejects_what_it_should(benchmark_runs):
    schema = _schema()
    good = json.loads((benchmark_runs["qa"] / "metrics.json").read_text())
    for mutate in (lambda m: m.pop("summary"), lambda m: m.update(schema_version=2),
                   lambda m: m["summary"]["sets"]["forget"]["after"].update(accuracy="high"),
                   lambda m: m["guardrails"].append({"guardrail": "x", "verdict": "maybe", "detail": ""})):  # fmt: skip
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_compare_puts_every_benchmark_in_one_table_and_one_figure(benchmark_runs, tmp_path):
    result = runner.invoke(app, ["compare", *map(str, benchmark_runs.values()), "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = next(tmp_path.glob("compare-*"))
    rows = [line for line in (out / "comparison.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + 5
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    benchmarks = {r.strip("|").split("|")[header.index("benchmark")].strip() for r in rows[2:]}
    assert benchmarks == {"memorization", "qa", "associations", "tofu", "muse-news"}
    assert {"forget ma after", "forget accuracy after", "tofu forget_quality after"} <= set(header)
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_refuses_a_metrics_file_from_before_the_schema(tmp_path):
    old = tmp_path / "unlearn-sga-old"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({"method": "sga", "steps": 3}))
    result = runner.invoke(app, ["compare", str(old), "--output-dir", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "schema version 1" in " ".join(result.output.split())


def test_each_attack_runs_on_each_benchmark_it_applies_to(benchmark_runs):
    from obliviate.attacks import ATTACKS

    for name, spec in ATTACKS.items():
        assert spec.benchmarks, name
        for benchmark in spec.benchmarks:
            attacks = json.loads((benchmark_runs[benchmark] / "metrics.json").read_text())["summary"]["attacks"]
            assert attacks.get(name), (name, benchmark, attacks)
            assert any(v is not None for v in attacks[name].values()), (name, benchmark)


def test_the_schema_names_every_registered_benchmark():
    from obliviate.benchmarks import BENCHMARKS

    assert set(_schema()["properties"]["benchmark"]["enum"]) == set(BENCHMARKS.names())
