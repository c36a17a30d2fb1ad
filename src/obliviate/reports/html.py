"""The audit report of a run directory: one static HTML page (and ``report.md``) with the run's summary tables,
its plots embedded (the page is a single file that can be mailed or archived), and guardrail verdicts:

- utility collapse: held-out perplexity up more than 1.5x (warn) / 3x (fail), a zero-shot accuracy down more
  than 5 (warn) / 15 (fail) points, or TOFU's model utility down more than 10% (warn) / 30% (fail);
- retain regression (UnSTAR, TOFU): a retention set below 90% (warn) / 70% (fail) of its accuracy (TOFU: answer
  probability) before;
- gibberish (UnSTAR, TOFU): share of replies that repeat themselves (fewer than half their word trigrams distinct)
  above 10% (warn) / 30% (fail).
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import markdown

from obliviate.errors import ObliviateError
from obliviate.io import write_text_atomic
from obliviate.metrics.text import repeats_itself
from obliviate.render.markdown import markdown_table

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


def guardrails(run_dir: Path) -> list[Verdict]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    answers = json.loads((run_dir / "answers.json").read_text()) if (run_dir / "answers.json").is_file() else {}
    return utility_verdicts(metrics) + retention_verdicts(metrics) + gibberish_verdict(answers)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f3f3f3; } img { max-width: 100%; display: block; margin: 1em 0; }
.pass { color: #176f2c; } .warn { color: #a86400; } .fail { color: #b00020; font-weight: bold; }
"""


# marks the body with how many plots the browser actually decoded (read back by the headless-browser test)
_COUNT_IMAGES = (
    "window.addEventListener('load', () => { const imgs = [...document.images]; "
    "document.body.dataset.images = imgs.length; "
    "document.body.dataset.imagesDecoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; });"
)


def _embed_images(body: str, run_dir: Path) -> str:
    """Replace <img src="plot.png"> by a data URI, so the page is one self-contained file."""

    def inline(match: re.Match[str]) -> str:
        name = html.unescape(match.group(1))
        path = run_dir / name
        if "/" in name or not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^"]+\.png)"', inline, body)


def write_html_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` into a run directory (from its summary.md and metrics.json)."""
    run_dir = Path(run_dir)
    summary = run_dir / "summary.md"
    if not summary.is_file() or not (run_dir / "metrics.json").is_file():
        raise ObliviateError(f"{run_dir} is not a finished run directory (summary.md and metrics.json needed)")
    verdicts = guardrails(run_dir)
    table = markdown_table(["guardrail", "verdict", "detail"], [[v.guardrail, v.verdict, v.detail] for v in verdicts])
    text = summary.read_text() + "\n\n## Guardrails\n\n" + (table if verdicts else "(nothing to check)\n")
    write_text_atomic(run_dir / "report.md", text)
    body = markdown.markdown(text, extensions=["tables"])
    for v in (PASS, WARN, FAIL):
        body = body.replace(f"<td>{v}</td>", f'<td class="{v}">{v}</td>')
    title = html.escape(text.splitlines()[0].lstrip("# ").strip() or "obliviate run")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{_embed_images(body, run_dir)}\n"
        f'<script type="application/json" id="guardrails">{json.dumps([asdict(v) for v in verdicts])}</script>\n'
        f"<script>{_COUNT_IMAGES}</script>\n</body></html>\n"
    )
    return write_text_atomic(run_dir / "report.html", page)
