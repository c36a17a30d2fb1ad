"""`obliviate evaluate` / `obliviate.evaluate`: any model on any benchmark's own evaluation and attacks. On a model
saved by an earlier `unlearn` run, with that run's starting model as --before, every figure equals the run's
"after" figures (the same evaluation code, same seed, same sets); the runs validate and compare beside unlearn
runs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from conftest import TRAINED_TEXTS, UNRELATED, UNSEEN_TEXTS, ZORBIA
from conftest import write_jsonl as _jsonl
from obliviate.cli.main import app
from obliviate.models import save_model
from obliviate.unstar.antisamples import answer_target

runner = CliRunner()
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "src/obliviate/schema/metrics.schema.json").read_text())
QUIET = ["--no-progress"]


def _invoke(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


def _run(folder: Path) -> tuple[Path, dict]:
    (path,) = folder.glob("*/metrics.json")
    metrics = json.loads(path.read_text())
    jsonschema.validate(metrics, SCHEMA)
    return path.parent, metrics


def _afters(summary: dict) -> dict:
    """The "after" side of the common summary: sets, per-sample values, attacks, utility."""
    return {"sets": {k: v["after"] for k, v in summary["sets"].items()},
            "per_sample": {s: {i: {m: v["after"] for m, v in ms.items()} for i, ms in ids.items()}
                           for s, ids in summary["per_sample"].items()},
            "attacks": {k: {m: v for m, v in a.items() if "before" not in m} for k, a in summary["attacks"].items()},
            "utility": summary["utility"]["after"]}  # fmt: skip


def _check_evaluate_run(metrics: dict, run_dir: Path, judged: Path) -> None:
    assert metrics["method"] == "none" and metrics["status"] == "finished" and metrics["summary"]["steps"] == 0
    assert metrics["model"] == str(judged) and metrics["run"]["evaluate"]["model"] == str(judged)
    assert run_dir.name.startswith(f"{metrics['benchmark']}-evaluate-")
    assert (run_dir / "report.html").is_file() and (run_dir / "summary.md").is_file()
    assert not (run_dir / "model").exists()  # nothing trained, nothing saved


SEQ = ["--set", "benchmark.scoring.max_tokens=48", "--set", "benchmark.scoring.neighbours=2",
       "--set", "benchmark.utility.fluency_prompts=0"]  # fmt: skip


def test_memorization_evaluate_equals_the_unlearn_runs_after_and_compares_beside_it(sequence_files, tmp_path):
    model_dir, forget, ref = sequence_files
    _invoke(["unlearn", str(forget), "--reference", str(ref), "--model", str(model_dir), "--method", "sga",
             "--learning-rate", "2e-3", "--max-steps", "3", "--output-dir", str(tmp_path / "u"), *SEQ, *QUIET])
    unlearned_dir, unlearned = _run(tmp_path / "u")
    assert unlearned["steps"] >= 1
    _invoke(["evaluate", str(forget), "--reference", str(ref), "--model", str(unlearned_dir / "model"), "--before",
             str(model_dir), "--output-dir", str(tmp_path / "e"), *SEQ, *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path / "e")
    _check_evaluate_run(m, run_dir, unlearned_dir / "model")
    assert m["run"]["evaluate"]["before"] == str(model_dir)
    assert _afters(m["summary"]) == _afters(unlearned["summary"])
    assert m["after"] == unlearned["after"] and m["outliers"] == unlearned["outliers"]
    assert m["before"] == unlearned["before"] and m["thresholds"] == unlearned["thresholds"]

    _invoke(["compare", str(unlearned_dir), str(run_dir), "--output-dir", str(tmp_path / "cmp")])
    table = next((tmp_path / "cmp").glob("compare-*/comparison.md")).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and any("| none |" in r for r in rows)  # header, rule, the unlearn run, the evaluate run


def test_memorization_evaluate_without_before_judges_the_model_against_its_own_band(sequence_files, tmp_path):
    model_dir, forget, ref = sequence_files
    _invoke(["evaluate", str(forget), "--reference", str(ref), "--model", str(model_dir),
             "--output-dir", str(tmp_path), *SEQ, *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path)
    _check_evaluate_run(m, run_dir, model_dir)
    assert m["run"]["evaluate"]["before"] is None
    assert m["before"] == m["after"]  # one model: its one audit fills both columns
    assert m["outliers"]["before"]["calibrated"]["high"] == 4  # the memorized texts stand above never-seen text
    verdicts = {g["guardrail"]: g["verdict"] for g in m["guardrails"]}
    assert verdicts["still extractable"] == "fail"


@pytest.fixture(scope="module")
def qa_files(knowing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-qa")
    answer, wrong = answer_target(ZORBIA.answer, None), [answer_target(w, None) for w in ("Lyon", "Amberton")]
    facts = [{"id": "zorbia", "question": ZORBIA.question, "answer": answer, "paraphrases": list(ZORBIA.heldout),
              "perturbed_answers": wrong}]
    keep = [{"question": f.question, "answer": answer_target(f.answer, None)}
            for f in (*ZORBIA.subject_facts, *UNRELATED)]  # fmt: skip
    never = [{"question": f"What is the capital of {c}?", "answer": answer_target(a, None)}
             for c, a in (("Blorvania", "Ostrel"), ("Quandria", "Pell"))]  # fmt: skip
    record = asdict(ZORBIA) | {"subject_facts": [asdict(f) for f in ZORBIA.subject_facts],
                               "object_facts": [asdict(f) for f in ZORBIA.object_facts]}  # fmt: skip
    return (save_model(knowing_model, root / "model"), _jsonl(root / "facts.jsonl", facts),
            _jsonl(root / "keep.jsonl", keep), _jsonl(root / "never.jsonl", never),
            _jsonl(root / "assoc.jsonl", [record]))  # fmt: skip


def test_qa_evaluate_equals_the_unlearn_runs_after(qa_files, tmp_path):
    model_dir, facts, keep, never, _ = qa_files
    sets = ["--retain", str(keep), "--set", f"benchmark.holdout={never}", "--set", "benchmark.relearn_steps=2",
            "--set", "benchmark.membership_gradnorm=true", "--set", f"benchmark.membership_reference={model_dir}"]
    _invoke(["unlearn", str(facts), "--model", str(model_dir), "--method", "npo", "--learning-rate", "1e-3",
             "--epochs", "2", *sets, "--output-dir", str(tmp_path / "u"), *QUIET])  # fmt: skip
    unlearned_dir, unlearned = _run(tmp_path / "u")
    _invoke(["evaluate", str(facts), "--benchmark", "qa", "--model", str(unlearned_dir / "model"), "--before",
             str(model_dir), *sets, "--output-dir", str(tmp_path / "e"), *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path / "e")
    _check_evaluate_run(m, run_dir, unlearned_dir / "model")
    assert _afters(m["summary"]) == _afters(unlearned["summary"])
    assert m["after"] == unlearned["after"] and m["attacks"] == unlearned["attacks"]
    assert set(m["attacks"]) == {"relearning", "quantization", "paraphrase", "membership", "membership_gradnorm",
                                 "membership_reference"}  # fmt: skip
    assert m["before"] == unlearned["before"]
    # GradNorm and the reference score (against the starting model) beside the loss attack, with intervals; the
    # guardrails read the lowest / highest AUC over the three
    for name in ("membership", "membership_gradnorm", "membership_reference"):
        assert {"auc", "auc_either", "auc_ci", "auc_either_ci"} <= set(m["attacks"][name])
        assert m["summary"]["attacks"][name]["auc"] == m["attacks"][name]["auc"]
    aucs = [m["attacks"][n]["auc"] for n in ("membership", "membership_gradnorm", "membership_reference")]
    summary = m["summary"]["attacks"]["membership"]
    assert (summary["auc_min"], summary["auc_max"]) == (min(aucs), max(aucs))


def test_associations_evaluate_equals_the_unlearn_runs_after(qa_files, tmp_path):
    model_dir, _, keep, _, assoc = qa_files
    sets = ["--set", f"benchmark.retain={keep}", "--set", "benchmark.leak_k=2", "--set", "benchmark.relearn_steps=1",
            "--set", "benchmark.unknown=null", "--set", "benchmark.quantization_bits=[8]"]  # fmt: skip
    _invoke(["unlearn", str(assoc), "--benchmark", "associations", "--model", str(model_dir), "--method", "ga",
             "--learning-rate", "1e-3", "--epochs", "1", *sets, "--output-dir", str(tmp_path / "u"), *QUIET])
    unlearned_dir, unlearned = _run(tmp_path / "u")
    _invoke(["evaluate", str(assoc), "--benchmark", "associations", "--model", str(unlearned_dir / "model"),
             "--before", str(model_dir), *sets, "--output-dir", str(tmp_path / "e"), *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path / "e")
    _check_evaluate_run(m, run_dir, unlearned_dir / "model")
    assert _afters(m["summary"]) == _afters(unlearned["summary"])
    assert m["probes"] == unlearned["probes"] and m["relearning"] == unlearned["relearning"]
    assert m["quantization_attack"] == unlearned["quantization_attack"]


def test_tofu_evaluate_equals_the_unlearn_runs_after(shared_data, tmp_path):
    tofu = ["--tofu", str(shared_data / "tofu"), "--retain-authors", "1", "--eval-limit", "2"]
    models = ["--models-dir", str(tmp_path / "tofu-models")]
    extra_scores = ["--set", "membership_gradnorm=true", "--set", "membership_reference=tiny"]
    _invoke(["tofu", "--model", "tiny", *tofu, *models, "--epochs", "1", "--learning-rate", "1e-3", "--method", "ga",
             "--no-trace", "--save-model", "--output-dir", str(tmp_path / "u"), *extra_scores, *QUIET])  # fmt: skip
    unlearned_dir, unlearned = _run(tmp_path / "u")
    _invoke(["evaluate", "--benchmark", "tofu", "--model", str(unlearned_dir / "model"), "--base-model", "tiny",
             "--set", f"benchmark.tofu={shared_data / 'tofu'}", "--set", "benchmark.retain_authors=1",
             "--set", "benchmark.eval_limit=2", "--set", f"benchmark.models_dir={tmp_path / 'tofu-models'}",
             "--set", "benchmark.learning_rate=1e-3",  # the relearning attack steps at the run's learning rate
             *[f"benchmark.{x}" if "=" in x else x for x in extra_scores],
             "--output-dir", str(tmp_path / "e"), *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path / "e")
    _check_evaluate_run(m, run_dir, unlearned_dir / "model")
    assert m["models"] == unlearned["models"] and m["attacks"] == unlearned["attacks"]
    assert _afters(m["summary"]) == _afters(unlearned["summary"])
    assert {"membership_gradnorm", "membership_reference"} <= set(m["summary"]["attacks"])  # beside the loss attack
    assert m["attacks"]["membership_reference"]["unlearned"]["auc_either_ci"] is not None


def test_muse_news_evaluate_equals_the_unlearn_runs_after(shared_data, tmp_path):
    from test_muse import TINY_MUSE

    muse = ["--set", f"benchmark.data={shared_data / 'muse_news'}", *TINY_MUSE]
    _invoke(["unlearn", "--benchmark", "muse-news", "--method", "npo", "--model", "tiny", "--max-steps", "2",
             "--learning-rate", "1e-3", *muse, "--output-dir", str(tmp_path / "u"), *QUIET])  # fmt: skip
    unlearned_dir, unlearned = _run(tmp_path / "u")
    _invoke(["evaluate", "--benchmark", "muse-news", "--model", str(unlearned_dir / "model"), "--base-model", "tiny",
             *muse, "--set", f"benchmark.models_dir={tmp_path / 'u' / 'muse-models'}",
             "--output-dir", str(tmp_path / "e"), *QUIET])  # fmt: skip
    run_dir, m = _run(tmp_path / "e")
    _check_evaluate_run(m, run_dir, unlearned_dir / "model")
    for key in ("after", "before", "retain_only", "privleak", "attacks", "forget_chunks"):
        assert m["muse"][key] == unlearned["muse"][key], key
    assert m["after"] == unlearned["after"] and m["gold_standard"] == unlearned["gold_standard"]
    assert _afters(m["summary"]) == _afters(unlearned["summary"])
    assert not list((unlearned_dir / "model").glob("audit-scores-*-evaluate*"))


def test_evaluate_takes_models_in_memory_and_lora_adapters(memorizing_model, sequence_files, tmp_path):
    from obliviate import evaluate

    model_dir, forget, ref = sequence_files
    result = evaluate(model=memorizing_model, forget=TRAINED_TEXTS, reference=UNSEEN_TEXTS, output_dir=tmp_path / "m",
                      progress=False, **{"benchmark.scoring.max_tokens": 48, "benchmark.scoring.neighbours": 0,
                                         "benchmark.utility.fluency_prompts": 0})  # fmt: skip
    assert result.metrics["model"] == "<in memory>" and result.metrics["method"] == "none"
    assert result.metrics["run"]["inputs_in_memory"] == ["evaluated", "forget", "reference"]

    _invoke(["unlearn", str(forget), "--reference", str(ref), "--model", str(model_dir), "--method", "ga", "--lora",
             "--lora-rank", "4", "--learning-rate", "2e-3", "--max-steps", "2", "--output-dir", str(tmp_path / "u"),
             *SEQ, *QUIET])  # fmt: skip
    unlearned_dir, unlearned = _run(tmp_path / "u")
    adapter = unlearned_dir / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    _invoke(["evaluate", str(forget), "--reference", str(ref), "--model", str(adapter), "--before", str(model_dir),
             "--output-dir", str(tmp_path / "e"), *SEQ, *QUIET])  # fmt: skip
    _, m = _run(tmp_path / "e")
    for k, v in _afters(unlearned["summary"])["per_sample"]["forget"].items():
        assert _afters(m["summary"])["per_sample"]["forget"][k] == pytest.approx(v, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    (["builtin:famous"], "evaluate needs the model to judge"),
    (["builtin:famous", "--model", "/nowhere/model"], "does not exist"),
    (["--benchmark", "qa", "--model", "tiny", "--retain-only", "tiny"], "no retain-only comparison"),
    (["builtin:famous", "--model", "tiny", "--set", "method=npo"], "evaluate runs no unlearning method"),
])  # fmt: skip
def test_evaluate_refuses_bad_input_clearly_before_any_run_directory(args, message, tmp_path):
    result = runner.invoke(app, ["evaluate", *args, "--output-dir", str(tmp_path / "runs"), *QUIET])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unlearn_refuses_method_none(tmp_path):
    result = runner.invoke(app, ["unlearn", "builtin:famous", "--method", "none", "--model", "tiny",
                                 "--output-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "use `obliviate evaluate`" in " ".join(result.output.split())
