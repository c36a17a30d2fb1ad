"""The audit report of a run directory: one static HTML page (and ``report.md``) with the run's summary tables,
its plots embedded (the page is a single file that can be mailed or archived), and the guardrail verdicts that
metrics.json records (:mod:`obliviate.guardrails`)."""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import asdict
from pathlib import Path

import markdown

from obliviate.errors import ObliviateError
from obliviate.guardrails import (
    FAIL,
    PASS,
    WARN,
    Verdict,
    guardrails,
)
from obliviate.io import write_text_atomic
from obliviate.render.markdown import markdown_table

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


_UNSAFE_URL = re.compile(r'(href|src)="\s*(?:javascript|vbscript|data:text)[^"]*"', re.IGNORECASE)


def markdown_to_safe_html(text: str) -> str:
    """Markdown -> HTML with every piece of raw HTML in ``text`` shown as text (the summaries quote user input:
    ids, paths, answers, model names), and script URLs in links and images dropped."""
    converter = markdown.Markdown(extensions=["tables"])
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    return _UNSAFE_URL.sub(r'\1="#"', converter.convert(text))


def _json_in_script(obj: object) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_html_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` into a run directory (from its summary.md and metrics.json)."""
    run_dir = Path(run_dir)
    summary = run_dir / "summary.md"
    if not summary.is_file() or not (run_dir / "metrics.json").is_file():
        raise ObliviateError(f"{run_dir} is not a finished run directory (summary.md and metrics.json needed)")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    recorded = metrics.get("guardrails")
    verdicts = [Verdict(**v) for v in recorded] if recorded is not None else guardrails(run_dir)
    table = markdown_table(["guardrail", "verdict", "detail"], [[v.guardrail, v.verdict, v.detail] for v in verdicts])
    text = summary.read_text() + "\n\n## Guardrails\n\n" + (table if verdicts else "(nothing to check)\n")
    write_text_atomic(run_dir / "report.md", text)
    body = markdown_to_safe_html(text)
    for v in (PASS, WARN, FAIL):
        body = body.replace(f"<td>{v}</td>", f'<td class="{v}">{v}</td>')
    title = html.escape(text.splitlines()[0].lstrip("# ").strip() or "obliviate run")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n{_embed_images(body, run_dir)}\n"
        f'<script type="application/json" id="guardrails">{_json_in_script([asdict(v) for v in verdicts])}</script>\n'
        f"<script>{_COUNT_IMAGES}</script>\n</body></html>\n"
    )
    return write_text_atomic(run_dir / "report.html", page)
