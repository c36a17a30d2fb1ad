"""The common part of every run's metrics.json: ``summary`` (sets before / after, per-sample values by id,
attacks, utility, steps, timings) in one layout whatever the benchmark, built from each benchmark's own metrics.
``compare`` and the guardrails read this part only; the JSON Schema (obliviate/schema/metrics.schema.json) pins
it down."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def number(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def paired(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-sample values by id: {id: {metric: {"before": x, "after": y}}} (a side missing for an id is None)."""
    out: dict[str, Any] = {}
    for sid in list(before) + [s for s in after if s not in before]:
        keys = list(before.get(sid, {})) + [k for k in after.get(sid, {}) if k not in before.get(sid, {})]
        out[sid] = {k: {"before": number(before.get(sid, {}).get(k)), "after": number(after.get(sid, {}).get(k))}
                    for k in keys}  # fmt: skip
    return out


def utility_numbers(utility: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Headline utility numbers: perplexity, each zero-shot accuracy, fluency's distinct-2 and repeating share."""
    out: dict[str, float | None] = {}
    for key, value in (utility or {}).items():
        if isinstance(value, Mapping) and "accuracy" in value:
            out[key] = number(value["accuracy"])
        elif isinstance(value, Mapping) and "distinct_2" in value:
            out["fluency_distinct_2"], out["fluency_repeating_share"] = (number(value["distinct_2"]),
                                                                         number(value["repeating_share"]))  # fmt: skip
        else:
            out[key] = number(value)
    return out


def summary(*, sets: dict[str, Any], per_sample: dict[str, Any], attacks: dict[str, Any],
            utility: Mapping[str, Any] | None, steps: Any, unlearning_seconds: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "sets": sets, "per_sample": per_sample,
        "attacks": {name: {k: number(v) for k, v in values.items()} for name, values in attacks.items()},
        "utility": {when: utility_numbers((utility or {}).get(when)) for when in ("before", "after")},
        "steps": steps if isinstance(steps, int) else None,
        "timings": {"unlearning_seconds": number(unlearning_seconds)},
    }  # fmt: skip


def accuracy_sets(sets: Mapping[str, Any], extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``{name: {before, after, n}}`` accuracy sets (UnSTAR, qa) in the summary layout; ``extra[name][when]``
    adds metrics such as answer probability."""
    out = {}
    for name, s in sets.items():
        out[name] = {"n": s.get("n"), **{when: {"accuracy": number(s[when]),
                                                **{k: number(v) for k, v in ((extra or {}).get(name, {})
                                                                             .get(when, {})).items()}}
                                             for when in ("before", "after")}}  # fmt: skip
    return out


def membership_entries(attacks: Mapping[str, Mapping[str, Any]], **extra: Any) -> dict[str, dict[str, Any]]:
    """The summary's entries of a question-answer membership attack from its ROC summaries by attack name
    ('membership': the loss attack; 'membership_gradnorm', 'membership_reference' when run; other names are
    ignored): each with its AUC and AUC either way; 'membership' also with ``extra`` and the lowest / highest AUC
    over every score (the guardrails read them)."""
    scores = {name: s for name, s in attacks.items() if name == "membership" or name.startswith("membership_")}
    aucs = [s["auc"] for s in scores.values()]
    out = {name: {"auc": s["auc"], "auc_either": s.get("auc_either")} for name, s in scores.items()}
    out["membership"].update(auc_min=min(aucs), auc_max=max(aucs), **extra)
    return out
