"""Every (method, benchmark) cell of the registries through the CLI on tiny models: a supported cell runs end to
end and moves the metric it targets; an unsupported one exits 2 saying why. (The tofu cells share TOFU-mini's
fine-tuned models; test_tofu_run covers that benchmark's full run.)"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import UNRELATED, ZORBIA
from conftest import write_jsonl as _jsonl
from obliviate.benchmarks import BENCHMARKS
from obliviate.cli.main import app
from obliviate.methods import METHODS
from obliviate.models import save_model
from obliviate.unstar.antisamples import answer_target

runner = CliRunner()
CELLS = [(m, b) for m in METHODS.names() for b in BENCHMARKS.names()]
SUPPORTED = [(m, b) for m, b in CELLS if BENCHMARKS.get(b).support(METHODS.get(m)) is None]
UNSUPPORTED = [(m, b) for m, b in CELLS if (m, b) not in SUPPORTED]
TINY = ["--no-progress", "--no-save-model"]


@pytest.fixture(scope="module")
def qa_files(knowing_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("cells-qa")
    answer, wrong = answer_target(ZORBIA.answer, None), [answer_target(w, None) for w in ("Lyon", "Amberton")]
    facts = [{"id": "zorbia", "question": ZORBIA.question, "answer": answer, "paraphrases": list(ZORBIA.heldout),
              "perturbed_answers": wrong},
             {"id": "zorbia-2", "question": ZORBIA.heldout[0], "answer": answer, "perturbed_answers": wrong[:1]}]
    # the answers as the model learned them (answer_target), so that the probabilities start high
    kept = (*ZORBIA.subject_facts, *UNRELATED)
    keep = [{"question": f.question, "answer": answer_target(f.answer, None)} for f in kept]
    record = asdict(ZORBIA) | {"subject_facts": [asdict(f) for f in ZORBIA.subject_facts],
                               "object_facts": [asdict(f) for f in ZORBIA.object_facts]}  # fmt: skip
    never = [{"question": f"What is the capital of {c}?", "answer": answer_target(a, None)}
             for c, a in (("Blorvania", "Ostrel"), ("Quandria", "Pell"), ("Mirvost", "Tacca"))]  # never trained on
    _jsonl(root / "never.jsonl", never)
    return (save_model(knowing_model, root / "model"), _jsonl(root / "facts.jsonl", facts),
            _jsonl(root / "keep.jsonl", keep), _jsonl(root / "assoc.jsonl", [record]))  # fmt: skip


def _metrics(out):
    return json.loads(next(out.glob("*/metrics.json")).read_text())


def _method_sets(method):
    # RMU runs with its defaults (its layer fits any depth); SimNPO's forget term at full weight, as the authors'
    # and OpenUnlearning's 0.1 / 0.125 moves the tiny model too little in a few steps to see the direction
    return ["--set", "method.forget_weight=1"] if method == "simnpo" else []


@pytest.mark.parametrize("method", [m for m, b in SUPPORTED if b == "memorization"])
def test_memorization_cell_lowers_forget_ma(method, sequence_files, tmp_path):
    model_dir, forget, ref = sequence_files
    args = ["unlearn", str(forget), "--reference", str(ref), "--model", str(model_dir), "--method", method,
            "--learning-rate", "2e-3", "--max-steps", "4", "--max-tokens", "48", "--neighbours", "0",
            "--set", "benchmark.utility.fluency_prompts=0", "--output-dir", str(tmp_path), *TINY,
            *_method_sets(method)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = _metrics(tmp_path)
    assert m["benchmark"] == "memorization" and m["method"] == method and m["steps"] >= 1
    before, after = (m[w]["target"]["aggregate"]["ma"]["mean"] for w in ("before", "after"))
    assert after < before, (method, before, after)


@pytest.mark.parametrize("method", [m for m, b in SUPPORTED if b == "qa"])
def test_qa_cell_lowers_the_forget_answer_probability(method, qa_files, tmp_path):
    model_dir, facts, keep, _ = qa_files
    stepwise = METHODS.get(method).objective is None  # sga / ta / tau: a step cap, the others epochs
    length = ["--set", "benchmark.max_steps=10"] if stepwise else ["--epochs", "10"]
    args = ["unlearn", str(facts), "--retain", str(keep), "--model", str(model_dir), "--method", method,
            "--learning-rate", "1e-3", *length, "--set", "benchmark.relearn_steps=1",
            "--set", f"benchmark.holdout={facts.parent / 'never.jsonl'}",
            "--set", "benchmark.quantization_bits=[8]", "--output-dir", str(tmp_path), *TINY,
            *_method_sets(method)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = _metrics(tmp_path)
    assert m["benchmark"] == "qa" and set(m["before"]["forget"]["per_sample"]) == {"zorbia", "zorbia-2"}
    before, after = (m[w]["forget"]["aggregate"]["probability"] for w in ("before", "after"))
    assert after < before, (method, before, after)
    assert {"forget", "paraphrase", "retain"} <= set(m["sets"]) and "8bit" in m["attacks"]["quantization"]
    report = next(tmp_path.glob("*/report.md")).read_text()  # the attack either way and the verdicts, rendered
    assert "AUC either way" in report and "| over-unlearned |" in report and "| still extractable |" in report
    if m["summary"]["sets"]["forget"]["before"].get("answer_ma") is not None:  # step-wise: its own target metric
        ma = m["summary"]["sets"]["forget"]
        assert ma["after"]["answer_ma"] < ma["before"]["answer_ma"] and m["stop_reason"], m["stop_reason"]


@pytest.mark.parametrize("method", [m for m, b in SUPPORTED if b == "associations"])
def test_associations_cell_cuts_the_heldout_paraphrases(method, qa_files, tmp_path):
    model_dir, _, keep, assoc = qa_files
    # one question per association on the tiny model: RMU (it moves activations, not answers) turns the greedy
    # replies only after 30 passes, SimNPO's default beta saturates its loss before they turn (beta 0.5 does), and
    # GradDiff-KL's retain KL over every position (prompts and padding too, as the reference's) needs 20 passes
    tuned = {"rmu": ["--epochs", "30"], "simnpo": ["--epochs", "10", "--set", "method.beta=0.5"],
             "graddiff_kl": ["--epochs", "20"]}
    own = (["--generator", "template", "--max-rounds", "2"] if method == "unstar"
           else [*tuned.get(method, ["--epochs", "10"]), *_method_sets(method)])  # fmt: skip
    args = ["unlearn", str(assoc), "--method", method, "--benchmark", "associations", "--model", str(model_dir),
            *own, "--learning-rate", "1e-3", "--set", f"benchmark.unrelated={keep}",
            "--set", f"benchmark.retain={keep}", "--set", "benchmark.relearn_steps=0",
            "--set", "benchmark.quantization_bits=[]", "--output-dir", str(tmp_path), *TINY]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = _metrics(tmp_path)
    assert m["benchmark"] == "associations" and m["method"] == method and m["steps"] >= 1
    # the held-out paraphrases were never trained on: their accuracy is the target
    assert m["sets"]["forget"]["after"] < m["sets"]["forget"]["before"], (method, m["sets"]["forget"])
    assert bool(list(tmp_path.glob("*/antisamples.jsonl"))) == (method == "unstar")  # only UnSTAR writes them
    probes = m["summary"]["attacks"]  # beyond the greedy answer: leak@16 never rises; the answer's log-prob is read
    assert probes["leak_at_k"]["k"] == 16 and probes["leak_at_k"]["after"] <= probes["leak_at_k"]["before"], probes
    assert np.isfinite(probes["answer_logprob"]["after"]) and probes["answer_logprob"]["before"] < 0
    assert "multiple_choice" not in probes  # these associations have no distractors
    assert "| true answer log-probability (in the reply frame) |" in next(tmp_path.glob("*/summary.md")).read_text()
    membership = probes["membership"]  # held-out paraphrases against facts never known (builtin:unknown)
    assert membership["auc_either"] == max(membership["auc"], 1 - membership["auc"])
    report = next(tmp_path.glob("*/report.md")).read_text()
    assert "| over-unlearned |" in report and "| still extractable |" in report


@pytest.fixture(scope="module")
def tofu_models(tmp_path_factory):
    return tmp_path_factory.mktemp("cells-tofu-models")


@pytest.mark.parametrize("method", [m for m, b in SUPPORTED if b == "tofu"])
def test_tofu_cell_lowers_the_forget_answer_probability(method, shared_data, tofu_models, tmp_path):
    args = ["tofu", "--model", "tiny", "--tofu", str(shared_data / "tofu"), "--retain-authors", "1",
            "--eval-limit", "1", "--epochs", "1", "--learning-rate", "1e-3", "--method", method, "--no-trace",
            "--models-dir", str(tofu_models), "--set", "benchmark.retain_eval_limit=2", "--set", "benchmark.attacks=[]",
            # a tiny model learns the forget authors' answers only with a much larger step than SmolLM2 needs
            "--set", "benchmark.finetune_learning_rate=3e-3", "--set", "benchmark.finetune_epochs=10",
            "--output-dir", str(tmp_path), "--no-progress", *_method_sets(method)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    m = _metrics(tmp_path)
    # UnSTAR trains towards TOFU's perturbed answers: its target is the truth ratio P(perturbed) / P(paraphrased)
    key = "forget_truth_ratio_mean" if method == "unstar" else "forget_probability"
    before, after = (m["models"][k][key] for k in ("full", "unlearned"))
    moved = after > before if method == "unstar" else after < before
    assert m["benchmark"] == "tofu" and moved, (method, key, before, after)


@pytest.mark.parametrize(("method", "benchmark"), UNSUPPORTED)
def test_unsupported_cell_exits_2_saying_why(method, benchmark, tmp_path):
    result = runner.invoke(app, ["unlearn", "--method", method, "--benchmark", benchmark, "--model", "tiny",
                                 "--output-dir", str(tmp_path)])  # fmt: skip
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and f"does not run on the '{benchmark}' benchmark" in text, text
    assert BENCHMARKS.get(benchmark).support(METHODS.get(method)).split(";")[0][:40] in text
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "npo", "--set", "method.gamma=0.5"], "method.gamma is not a setting of the method 'npo'"),
    (["--method", "sga", "--epochs", "3"], "benchmark.epochs is not a setting of the benchmark 'memorization'"),
    (["--method", "unstar", "--reference", "x.jsonl"], "benchmark.reference is not a setting"),
    (["--method", "npo", "--benchmark", "qa", "--max-steps", "3"], "benchmark.training is not a setting"),
    (["--method", "sga", "--no-rationale"], "method.rationale is not a setting of the method 'sga'"),
    (["--method", "unstar", "--stop", "mean"], "benchmark.stop is not a setting"),
    (["--method", "npo", "--benchmark", "qa", "--set", "benchmark.max_steps=3"],
     "benchmark.max_steps does not apply to 'npo' on the 'qa' benchmark"),
    (["--method", "sga", "--benchmark", "qa", "--epochs", "3"], "benchmark.epochs does not apply to 'sga'"),
    (["--method", "unstar", "--epochs", "3"], "benchmark.epochs does not apply to 'unstar' on the 'associations'"),
    (["--set", "nonsense"], "--set expects KEY=VALUE"),
    (["--method", "match", "--stop", "mean"], "benchmark.stop does not apply to 'match' on the 'memorization'"),
    (["--method", "match", "--preset", "paper"], "benchmark.preset does not apply to 'match'"),
])  # fmt: skip
def test_a_flag_or_key_that_does_not_apply_is_an_error(args, message, tmp_path):
    result = runner.invoke(app, ["unlearn", "--model", "tiny", "--output-dir", str(tmp_path), *args])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and message in text, text
