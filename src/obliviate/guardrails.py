"""Guardrails: verdicts (pass / warn / fail) on a finished run's metrics, recorded in metrics.json and shown in
the report. Every threshold is a setting (:class:`~obliviate.config.GuardrailConfig`, ``--set guardrails.KEY=V``);
the defaults:

- over-unlearned: a forget sequence below the never-seen band (calibrated c(D_f) low side above 0: fail), or a
  membership attack whose best direction is "members *less* likely than never-seen text" with AUC either way
  from 0.60 (warn) / 0.70 (fail) - an attacker reads that signature as well as a memorized one;
- still extractable: a forget sequence above the band (high side above 0: fail), or an attack with members
  *more* likely at AUC from 0.60 (warn) / 0.70 (fail);
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

from obliviate.config import GuardrailConfig
from obliviate.metrics.text import repeats_itself

PASS, WARN, FAIL = "pass", "warn", "fail"
DEFAULTS = GuardrailConfig()


@dataclass(frozen=True)
class Verdict:
    guardrail: str
    verdict: str
    detail: str


def _grade(value: float, warn: float, fail: float, *, higher_is_worse: bool = True) -> str:
    if not higher_is_worse:
        value, warn, fail = -value, -warn, -fail
    return FAIL if value > fail else WARN if value > warn else PASS


def membership_verdicts(metrics: dict[str, Any], cfg: GuardrailConfig = DEFAULTS) -> list[Verdict]:
    """Over-unlearned / still extractable, from the summary's outlier counts and membership AUCs (the lowest
    and highest raw AUC over attack scores where a benchmark has several)."""
    summary = metrics.get("summary") or {}
    after = ((summary.get("sets") or {}).get("forget") or {}).get("after") or {}
    membership = (summary.get("attacks") or {}).get("membership") or {}
    auc = membership.get("auc")
    lowest, highest = membership.get("auc_min", auc), membership.get("auc_max", auc)
    out = []
    for name, side, count, value in (("over-unlearned", "below", after.get("outliers_low"), lowest),
                                     ("still extractable", "above", after.get("outliers_high"), highest)):
        if count is None and value is None:
            continue
        grades, details = [], []
        if count is not None:
            grades.append(FAIL if count > cfg.outliers_fail else PASS)
            details.append(f"{count:.0f} forget sequence(s) {side} the never-seen band")
        if value is not None:
            how = "more" if side == "above" else "less"
            either = 0.5 + abs(value - 0.5)
            if (value > 0.5) == (side == "above") and value != 0.5:
                grades.append(_grade(either, cfg.membership_auc_warn, cfg.membership_auc_fail))
                details.append(f"strongest attack: members {how} likely than the never-seen reference, AUC either way "
                               f"{either:.3f}")  # fmt: skip
            else:
                grades.append(PASS)
                details.append(f"no attack finds members {how} likely than the never-seen reference")
        out.append(Verdict(name, _worst(grades), "; ".join(details)))
    return out


def audit_verdicts(audit: dict[str, Any], cfg: GuardrailConfig = DEFAULTS) -> list[Verdict]:
    """The two memorization verdicts of a plain audit (``obliviate memorization``): is the target set still
    extractable (above the never-seen band, or told apart as more likely), or less likely than never-seen text?"""
    calibrated, best = audit["outliers"]["calibrated"], audit["miau_best"]
    metrics = {"summary": {
        "sets": {"forget": {"after": {"outliers_high": calibrated["high"], "outliers_low": calibrated["low"]}}},
        "attacks": {"membership": {"auc": best["auc"], "auc_min": best.get("auc_min"), "auc_max": best.get("auc_max")}},
    }}  # fmt: skip
    return membership_verdicts(metrics, cfg)


def _worst(grades: list[str]) -> str:
    return FAIL if FAIL in grades else WARN if WARN in grades else PASS


def utility_verdicts(metrics: dict[str, Any], cfg: GuardrailConfig = DEFAULTS) -> list[Verdict]:
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
            out.append(Verdict("gibberish: never-seen text continuations",
                               _grade(share, cfg.gibberish_warn, cfg.gibberish_fail), detail))  # fmt: skip
        elif isinstance(value, dict) and "accuracy" in value:
            drop = 100 * (old["accuracy"] - value["accuracy"])
            detail = f"accuracy {old['accuracy']:.3f} -> {value['accuracy']:.3f} ({drop:+.1f} points lost)"
            out.append(Verdict(f"utility collapse: {key}",
                               _grade(drop, cfg.accuracy_drop_warn, cfg.accuracy_drop_fail), detail))  # fmt: skip
        elif key == "model_utility" and old:
            drop = 1 - value / old
            out.append(Verdict("utility collapse: TOFU model utility",
                               _grade(drop, cfg.model_utility_drop_warn, cfg.model_utility_drop_fail),
                               f"{old:.3f} -> {value:.3f} ({drop:.0%} lost)"))  # fmt: skip
        elif isinstance(value, int | float) and "perplexity" in key:
            ratio = value / old if old else float("inf")
            out.append(Verdict(f"utility collapse: {key}", _grade(ratio, cfg.perplexity_warn, cfg.perplexity_fail),
                               f"{old:.2f} -> {value:.2f} ({ratio:.2f}x)"))  # fmt: skip
    return out


def retention_verdicts(metrics: dict[str, Any], cfg: GuardrailConfig = DEFAULTS) -> list[Verdict]:
    out = []
    for name, s in (metrics.get("sets") or {}).items():
        if name == "forget" or s.get("retained") is None:
            continue
        grade = _grade(s["retained"], cfg.retained_warn, cfg.retained_fail, higher_is_worse=False)
        out.append(Verdict(f"retain regression: {name}", grade,
                           f"{s['before']:.3f} -> {s['after']:.3f} ({s['retained']:.0%} kept)"))  # fmt: skip
    return out


def gibberish_verdict(answers: dict[str, Any], cfg: GuardrailConfig = DEFAULTS) -> list[Verdict]:
    replies = [item["reply"] for s in (answers.get("after") or {}).values() for item in s.get("items", [])]
    if not replies:
        return []
    share = sum(repeats_itself(r) for r in replies) / len(replies)
    return [Verdict("gibberish: self-repeating replies", _grade(share, cfg.gibberish_warn, cfg.gibberish_fail),
                    f"{share:.0%} of {len(replies)} replies after unlearning")]  # fmt: skip


def guardrails(run_dir: Path, metrics: dict[str, Any] | None = None,
               cfg: GuardrailConfig | None = None) -> list[Verdict]:  # fmt: skip
    """Every verdict for a run directory (``metrics``: its metrics when not yet written; ``cfg``: thresholds)."""
    cfg = cfg or DEFAULTS
    if metrics is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    answers = json.loads((run_dir / "answers.json").read_text()) if (run_dir / "answers.json").is_file() else {}
    return (membership_verdicts(metrics, cfg) + utility_verdicts(metrics, cfg) + retention_verdicts(metrics, cfg)
            + gibberish_verdict(answers, cfg))  # fmt: skip
