"""No secret from any source reaches config.yaml, run.log, the reports or the console: a key in the endpoint URL
or pasted into api_key_env is refused without echoing it, and the key read from the environment is sent to the
endpoint but written nowhere. A dead endpoint with fallback on falls back per item and says so once."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from conftest import UNRELATED, ZORBIA
from obliviate.cli.main import app
from obliviate.unstar.associations import Association
from obliviate.unstar.backends import ChatBackend, FallingBack, OpenAIChatModel, TemplateBackend
from obliviate.unstar.pipeline import collect
from test_unstar_endpoint import server  # noqa: F401  (the real localhost server serving a tiny model)

runner = CliRunner()
KEY = "sk-PLANTED-5ecret-0123456789abcdef"
PARIS = Association("france", "France", "capital", "Paris", "What is the capital of France?", "Paris", "city")


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    record = asdict(ZORBIA) | {"subject_facts": [asdict(f) for f in ZORBIA.subject_facts],
                               "object_facts": [asdict(f) for f in ZORBIA.object_facts]}  # fmt: skip
    (root / "facts.jsonl").write_text(json.dumps(record) + "\n")
    (root / "unrelated.jsonl").write_text("".join(json.dumps(asdict(f)) + "\n" for f in UNRELATED))
    return root


def _everything_written(root) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("url", [f"http://user:{KEY}@127.0.0.1:9/v1", f"http://127.0.0.1:9/v1?api_key={KEY}",
                                 f"http://{KEY}@127.0.0.1:9/v1"])  # fmt: skip
def test_a_key_in_the_endpoint_url_is_refused_without_echoing_it(url, facts, tmp_path):
    result = runner.invoke(app, ["antisamples", str(facts / "facts.jsonl"), "--model", "tiny", "--generator", "openai",
                                 "--endpoint", url, "--output-dir", str(tmp_path / "runs")])  # fmt: skip
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "must not carry credentials" in text and "api_key_env" in text, text
    assert KEY not in result.output and "5ecret" not in result.output
    assert not (tmp_path / "runs").exists()


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(facts, tmp_path):
    args = ["unlearn", str(facts / "facts.jsonl"), "--method", "unstar", "--model", "tiny", "--generator", "openai",
            "--set", "method.endpoint.base_url=http://127.0.0.1:9/v1", "--set", f"method.endpoint.api_key_env={KEY}",
            "--output-dir", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "NAME of an environment variable" in text, text
    assert KEY not in result.output and not list(tmp_path.iterdir())


def test_the_key_from_the_environment_is_sent_but_written_nowhere(server, facts, tmp_path, monkeypatch):  # noqa: F811
    url, seen = server
    monkeypatch.setenv("PLANTED_KEY", KEY)
    config = tmp_path / "run.yaml"
    config.write_text(f"unrelated: {facts / 'unrelated.jsonl'}\nretain: {facts / 'unrelated.jsonl'}\n"
                      "seed_questions: 2\nwrong_answers: 2\nendpoint: {api_key_env: PLANTED_KEY}\n")  # fmt: skip
    result = runner.invoke(app, ["antisamples", str(facts / "facts.jsonl"), "--model", "tiny", "--generator", "openai",
                                 "--endpoint", url, "--config", str(config), "--output-dir", str(tmp_path / "runs"),
                                 "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen and seen[-1]["auth"] == f"Bearer {KEY}"  # the key did go to the endpoint
    written = _everything_written(tmp_path / "runs")
    assert "PLANTED_KEY" in written and KEY not in written and KEY not in result.output


def test_a_dead_endpoint_with_fallback_falls_back_per_item_and_says_so_once(caplog):
    dead = FallingBack(ChatBackend(OpenAIChatModel("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_VAR_X",
                                                   timeout=2)))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="obliviate"):
        for task in ("questions", "wrong_answers"):
            made = collect([dead, TemplateBackend([PARIS])], task, [PARIS, PARIS], 2, 0, lambda a, t: True)
            assert all(len(m) == 2 and {b for _, b in m} == {"template"} for m in made)
    failures = [r for r in caplog.records if "generator failed" in r.getMessage()]
    assert len(failures) == 1 and "template backend writes every item" in failures[0].getMessage()
    assert any("NO_SUCH_VAR_X is not set" in r.getMessage() for r in caplog.records)  # no key: said, not silent
