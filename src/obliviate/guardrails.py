"""Guardrails: verdicts (pass / warn / fail) on a finished run's metrics, recorded in metrics.json and shown in
the report.

- utility collapse: held-out perplexity up more than 1.5x (warn) / 3x (fail), a zero-shot accuracy down more
  than 5 (warn) / 15 (fail) points, or TOFU's model utility down more than 10% (warn) / 30% (fail);
- retain regression (UnSTAR, qa, TOFU): a retention set below 90% (warn) / 70% (fail) of its accuracy (TOFU:
  answer probability) before;
- gibberish: share of replies that repeat themselves (fewer than half their word trigrams distinct) above
  10% (warn) / 30% (fail).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.metrics.text import repeats_itself

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Verdict:
    guardrail: str
    verdict: str
    detail: str


def _grade(value: float, warn: float, fail: float, *, higher_is_worse: bool = True) -> str:
    if not higher_is_worse:
        value, warn, fail = -value, -warn, -fail
    return FAIL if value > fail else WARN if value > warn else PASS


def utility_verdicts(metrics: dict[str, Any]) -> list[Verdict]:
    utility = metrics.get("utility") or {}
    before, after = utility.get("before") or {}, utility.get("after") or {}
    out = []
    for key, value in after.items():
        old = before.get(key)
        if old is None:
            continue
        if key == "fluency" and value.get("n"):
            share = value["repeating_share"]
            detail = (f"{share:.0%} of {value['n']} continuations repeat themselves (before "
                      f"{old.get('repeating_share', 0):.0%}); distinct-2 {old.get('distinct_2', 0):.2f} -> "
                      f"{value['distinct_2']:.2f}")  # fmt: skip
            out.append(Verdict("gibberish: never-seen text continuations", _grade(share, 0.1, 0.3), detail))
        elif isinstance(value, dict) and "accuracy" in value:
            drop = 100 * (old["accuracy"] - value["accuracy"])
            detail = f"accuracy {old['accuracy']:.3f} -> {value['accuracy']:.3f} ({drop:+.1f} points lost)"
            out.append(Verdict(f"utility collapse: {key}", _grade(drop, 5, 15), detail))
        elif key == "model_utility" and old:
            drop = 1 - value / old
            out.append(Verdict("utility collapse: TOFU model utility", _grade(drop, 0.1, 0.3),
                               f"{old:.3f} -> {value:.3f} ({drop:.0%} lost)"))  # fmt: skip
        elif isinstance(value, int | float) and "perplexity" in key:
            ratio = value / old if old else float("inf")
            out.append(Verdict(f"utility collapse: {key}", _grade(ratio, 1.5, 3.0),
                               f"{old:.2f} -> {value:.2f} ({ratio:.2f}x)"))  # fmt: skip
    return out


def retention_verdicts(metrics: dict[str, Any]) -> list[Verdict]:
    out = []
    for name, s in (metrics.get("sets") or {}).items():
        if name == "forget" or s.get("retained") is None:
            continue
        grade = _grade(s["retained"], 0.9, 0.7, higher_is_worse=False)
        out.append(Verdict(f"retain regression: {name}", grade,
                           f"{s['before']:.3f} -> {s['after']:.3f} ({s['retained']:.0%} kept)"))  # fmt: skip
    return out


def gibberish_verdict(answers: dict[str, Any]) -> list[Verdict]:
    replies = [item["reply"] for s in (answers.get("after") or {}).values() for item in s.get("items", [])]
    if not replies:
        return []
    share = sum(repeats_itself(r) for r in replies) / len(replies)
    return [Verdict("gibberish: self-repeating replies", _grade(share, 0.1, 0.3),
                    f"{share:.0%} of {len(replies)} replies after unlearning")]  # fmt: skip


def guardrails(run_dir: Path, metrics: dict[str, Any] | None = None) -> list[Verdict]:
    """Every verdict for a run directory (``metrics``: its metrics when not yet written)."""
    if metrics is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    answers = json.loads((run_dir / "answers.json").read_text()) if (run_dir / "answers.json").is_file() else {}
    return utility_verdicts(metrics) + retention_verdicts(metrics) + gibberish_verdict(answers)
