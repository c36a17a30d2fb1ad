"""Typed configs: YAML files, dotted flag overrides, and clear errors for bad values."""

from __future__ import annotations

import pytest

from obliviate.config import MemorizationRunConfig, TestbedConfig, UnlearnConfig, load_config
from obliviate.errors import ConfigError


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sequences: data.jsonl\nscoring:\n  max_tokens: 64\n  el_n: [5, 3, 5]\nmodel:\n  model: tiny\n")
    cfg = load_config(MemorizationRunConfig, path, {"scoring.max_tokens": 32, "limit": None})
    assert cfg.sequences == "data.jsonl" and cfg.model.model == "tiny"
    assert cfg.scoring.max_tokens == 32  # flag wins over the file
    assert cfg.scoring.el_n == [3, 5]  # sorted, deduplicated
    assert cfg.scoring.batch_size == 8  # default kept


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"scoring.max_tokens": 1}, "max_tokens"),
        ({"scoring.el_n": [0]}, "EL n"),
        ({"unknown_field": 3}, "unknown_field"),
    ],
)
def test_invalid_values_are_rejected(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(MemorizationRunConfig, None, overrides)


def test_testbed_needs_a_source_and_sane_repeats(tmp_path):
    with pytest.raises(ConfigError, match="source"):
        load_config(TestbedConfig, None, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(TestbedConfig, bad)


def test_setting_one_scoring_field_keeps_el_off_for_training_commands():
    # a partial "scoring" block must not bring back the audit default EL_10 (minutes of decoding)
    for cls in (UnlearnConfig, TestbedConfig):
        extra = {"source": "x.txt"} if cls is TestbedConfig else {}
        cfg = load_config(cls, None, {"scoring.neighbours": 0, **extra})
        assert cfg.scoring.el_n == [] and cfg.scoring.neighbours == 0
    assert load_config(MemorizationRunConfig, None, {"scoring.neighbours": 0}).scoring.el_n == [10]
