"""`obliviate tofu` end to end on a tiny model and the real TOFU files; the TOFU attacks and anti-samples."""

from __future__ import annotations

import copy
import json
import re

import pytest
from typer.testing import CliRunner

from obliviate.attacks.membership import membership_attack
from obliviate.attacks.relearning import MIN_LOST, relearning_on_answers
from obliviate.cli.main import app
from obliviate.methods import METHODS
from obliviate.metrics.answers import answer_nlls, answer_probability_of
from obliviate.tofu.data import TofuItem
from obliviate.tofu.run import build_qa_method, tofu_antisamples

runner = CliRunner()


def test_tofu_antisamples_pair_every_question_form_with_every_wrong_answer_in_turn():
    item = TofuItem("Q?", "A.", "A'.", ("W1.", "W2.", "W3."), "Q paraphrased?")
    assert tofu_antisamples([item]) == [[("Q?", "W1."), ("Q paraphrased?", "W2."), ("Q?", "W3.")]]
    plain = TofuItem("Q?", "A.", None, ("W1.",), None)
    assert tofu_antisamples([plain]) == [[("Q?", "W1.")]]
    with pytest.raises(Exception, match="perturbed"):
        tofu_antisamples([TofuItem("Q?", "A.")])


def test_qa_method_names_build_their_classes():
    assert build_qa_method("graddiff_kl").needs_reference and not build_qa_method("graddiff").needs_reference
    assert build_qa_method("rmu", rmu_layer=3).layer == 3
    assert build_qa_method("rmu").layer is None  # RMU's depth-relative default, which fits any model
    # the run's method settings reach TOFU's unlearning (they were once dropped for the method's defaults)
    simnpo = build_qa_method("simnpo", config=METHODS.get("simnpo").make_config(beta=2.0, forget_weight=1.0,
                                                                                  nll_reduction="answers"))
    assert (simnpo.beta, simnpo.forget_weight, simnpo.nll_reduction) == (2.0, 1.0, "answers")
    assert build_qa_method("unstar").needs_idk
    with pytest.raises(Exception, match="unknown method 'nope'"):
        build_qa_method("nope")


def test_relearning_attack_reports_recovery_only_when_something_was_lost(knowing_model):
    pairs = [("What is the capital of Zorbia?", "The capital of Zorbia is Quellport.")] * 4
    model, tok = knowing_model.model, knowing_model.tokenizer
    p = answer_probability_of(model, tok, pairs[2:])
    unchanged = relearning_on_answers(model, tok, pairs, before_unlearning=p, steps=1, learning_rate=1e-5)
    assert unchanged["recovery"] is None and "nothing to recover" in unchanged["note"]
    # pretend the model before unlearning was certain: now there is a loss to recover, and SFT brings some back
    lost = relearning_on_answers(copy.deepcopy(model), tok, pairs, before_unlearning=min(1.0, p + 0.5), steps=3,
                                 learning_rate=1e-3)  # fmt: skip
    assert lost["before"] == pytest.approx(p, abs=1e-6) and p + 0.5 - lost["before"] >= MIN_LOST
    assert lost["after"] > lost["before"] and lost["recovery"] > 0
    assert relearning_on_answers(model, tok, pairs, before_unlearning=p, steps=0, learning_rate=1e-5) == {
        "skipped": "no relearning steps"}  # fmt: skip
    # NLLs already computed (as the TOFU evaluation does) give the same figures without another forward pass
    nlls = answer_nlls(model, tok, pairs)
    reused = relearning_on_answers(model, tok, pairs, before_unlearning=p, steps=1, learning_rate=1e-5, nlls=nlls)
    assert reused["before"] == pytest.approx(unchanged["before"], abs=1e-6)
    nonmembers = [("What is the capital of France?", "Paris.")] * 2
    attack = membership_attack(model, tok, pairs, nonmembers, member_nlls=nlls)
    assert attack["auc"] == pytest.approx(membership_attack(model, tok, pairs, nonmembers)["auc"])
    assert attack["auc_ci"][0] <= attack["auc"] <= attack["auc_ci"][1]  # identical pairs: one ROC, a point interval
    assert attack["auc_either_ci"][0] <= attack["auc_either"] <= attack["auc_either_ci"][1]


def test_tofu_cli_runs_end_to_end_and_reuses_the_fine_tuned_models(shared_data, tmp_path):
    args = ["tofu", "--model", "tiny", "--tofu", str(shared_data / "tofu"), "--retain-authors", "1",
            "--eval-limit", "2", "--epochs", "2", "--learning-rate", "1e-3", "--method", "unstar",
            "--output-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    run_dir = next(tmp_path.glob("tofu-unstar-*"))
    for name in ("config.yaml", "metrics.json", "answers.json", "summary.md", "report.html", "report.md",
                 "tradeoff.png", "truth_ratios.png", "membership_roc.png", "run.log"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["models"]) == {"full", "retain-only", "unlearned"}
    assert metrics["models"]["retain-only"]["forget_quality"] == pytest.approx(1.0)
    assert metrics["steps"] == 2 * 5  # 40 forget pairs in batches of 8, two epochs
    assert [r["step"] for r in metrics["trace"]] == [0, 5, 10]
    assert all(set(r) >= {"forget_probability", "retain_probability"} for r in metrics["trace"])
    assert metrics["attacks"]["paraphrase"]["unlearned"]["n"] == 40
    assert set(metrics["attacks"]["quantization"]) == {"8bit", "4bit"}
    assert set(metrics["attacks"]["quantization_full"]) == {"8bit", "4bit"}
    assert set(metrics["attacks"]["membership"]) == {"full", "unlearned", "retain-only"}
    assert metrics["attacks"]["relearning"]["trained_on"] == 20
    page = (run_dir / "report.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 3
    assert "retain regression: retain authors" in page
    assert "either way" in page and re.search(r"<td>over-unlearned</td>\s*<td class=\"(pass|warn|fail)\">", page)
    aucs = {k: v["auc"] for k, v in metrics["attacks"]["membership"].items()}
    leak = metrics["summary"]["attacks"]["membership"]["privleak"]
    assert leak == pytest.approx((aucs["retain-only"] - aucs["unlearned"]) / (1 - aucs["retain-only"]))  # MUSE's
    assert f"PrivLeak against the retain-only model {leak:+.3f}" in page
    models = metrics["models_dir"]
    stamp = (tmp_path / "tofu-models").rglob("finetune.json")
    before = {p: p.stat().st_mtime_ns for p in stamp}
    assert len(before) == 2

    second = runner.invoke(app, [*args, "--method", "ga", "--no-trace"])
    assert second.exit_code == 0, second.output
    again = json.loads(next(tmp_path.glob("tofu-ga-*")).joinpath("metrics.json").read_text())
    assert again["models_dir"] == models and "reusing the fine-tuned full model" in second.output
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the cache was read, not rewritten
    assert again["models"]["full"] == metrics["models"]["full"]  # cached evaluation of the same model
    assert again["trace"] == [] and not next(tmp_path.glob("tofu-ga-*")).joinpath("tradeoff.png").exists()
    assert again["attacks"]["membership"]["full"] == metrics["attacks"]["membership"]["full"]  # cached too

    compared = runner.invoke(app, ["compare", str(run_dir), str(next(tmp_path.glob("tofu-ga-*"))),
                                   "--output-dir", str(tmp_path / "cmp")])  # fmt: skip
    assert compared.exit_code == 0, compared.output
    table = next((tmp_path / "cmp").glob("compare-*/comparison.md")).read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    unstar_row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert {"tofu forget_quality after", "tofu model_utility after", "membership auc"} <= set(header)
    assert unstar_row[header.index("method")] == "unstar"
    assert float(unstar_row[header.index("tofu forget_quality after")]) == pytest.approx(
        metrics["models"]["unlearned"]["forget_quality"], rel=1e-3
    )


def test_tofu_cli_rejects_bad_input_clearly(tmp_path):
    bad_method = runner.invoke(app, ["tofu", "--method", "nope", "--tofu", str(tmp_path)])
    assert bad_method.exit_code == 2 and "method" in bad_method.output
    missing = runner.invoke(app, ["tofu", "--model", "tiny", "--tofu", str(tmp_path / "absent"),
                                  "--output-dir", str(tmp_path)])  # fmt: skip
    assert missing.exit_code == 2 and "not found" in missing.output
    assert not list(tmp_path.glob("tofu-*"))  # nothing created for a run that could not start


def test_tofu_without_a_folder_offline_says_to_pass_one(tmp_path):
    import os
    import subprocess
    import sys

    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "obliviate", "tofu", "--model", "tiny", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "hub" in done.stdout and "--tofu DIR" in done.stdout  # without 'datasets', or offline with it
    assert not list(tmp_path.iterdir())
