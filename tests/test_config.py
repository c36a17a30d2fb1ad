"""Typed configs: YAML files, dotted flag overrides, and clear errors for bad values."""

from __future__ import annotations

import pytest

from obliviate.config import MemorizationRunConfig, TestbedConfig, UnlearnConfig, load_config
from obliviate.errors import ConfigError, DataError
from obliviate.testbed.splits import repetition_schedule


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
    # repeats: the file's values arrive, a flag wins over the file, and the defaults are 1..16
    good = tmp_path / "good.yaml"
    good.write_text("source: x.txt\nmin_repeats: 2\nmax_repeats: 5\n")
    cfg = load_config(TestbedConfig, good, {"max_repeats": 7})
    assert (cfg.source, cfg.min_repeats, cfg.max_repeats) == ("x.txt", 2, 7)
    default = load_config(TestbedConfig, None, {"source": "x.txt"})
    assert (default.min_repeats, default.max_repeats) == (1, 16)
    # every forget sequence is injected at least once: zero or negative repeat counts are refused by name
    for field, value in (("min_repeats", 0), ("max_repeats", 0), ("min_repeats", -3)):
        with pytest.raises(ConfigError, match=field):
            load_config(TestbedConfig, None, {"source": "x.txt", field: value})
    # a range upside down (max < min) is refused, by the config or at the latest by the repetition schedule
    try:
        upside_down = load_config(TestbedConfig, None, {"source": "x.txt", "min_repeats": 5, "max_repeats": 2})
    except ConfigError as exc:
        assert "max_repeats" in str(exc)
    else:
        with pytest.raises(DataError, match="max_repeats"):
            repetition_schedule(4, upside_down.min_repeats, upside_down.max_repeats, upside_down.seed)


def test_setting_one_scoring_field_keeps_el_off_for_training_commands():
    # a partial "scoring" block must not bring back the audit default EL_10 (minutes of decoding)
    for cls in (UnlearnConfig, TestbedConfig):
        extra = {"source": "x.txt"} if cls is TestbedConfig else {}
        cfg = load_config(cls, None, {"scoring.neighbours": 0, **extra})
        assert cfg.scoring.el_n == [] and cfg.scoring.neighbours == 0
    assert load_config(MemorizationRunConfig, None, {"scoring.neighbours": 0}).scoring.el_n == [10]
