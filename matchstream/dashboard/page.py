"""The dashboard's HTML: served (assets as files under ``/static/``) or self-contained (the
report: every asset inlined and the data embedded, so the file opens anywhere, offline)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["STATIC_FILES", "page_html", "static_bytes"]

# What the server hands out under /static/: nothing else in the package directory is served.
STATIC_FILES = {
    "uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "uPlot.min.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_SCRIPTS = ("uPlot.iife.min.js", "dashboard.js")
_STYLES = ("uPlot.min.css", "dashboard.css")

# The served page may load its own assets and poll its own data only; the report may load
# nothing at all (its scripts and styles are inline, its data embedded).
SERVED_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                 "connect-src 'self'; img-src 'self' data:")
REPORT_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "img-src data:")


def static_bytes(name: str) -> bytes:
    return resources.files("matchstream.dashboard").joinpath("static", name).read_bytes()


def page_html(snapshot: dict[str, Any] | None = None) -> str:
    """The page; with ``snapshot`` the self-contained report that shows it, without polling.

    >>> '<script src="static/dashboard.js">' in page_html()
    True
    >>> report = page_html({"x": "</script>"})
    >>> "<script src=" in report, "</script>\\"" in report, "\\\\u003c/script>" in report
    (False, False, True)
    """
    if snapshot is None:
        head = "\n".join(f'<link rel="stylesheet" href="static/{n}">' for n in _STYLES)
        scripts = "\n".join(f'<script src="static/{n}"></script>' for n in _SCRIPTS)
        policy, data = SERVED_POLICY, ""
    else:
        head = "\n".join(f"<style>\n{_text(n)}\n</style>" for n in _STYLES)
        scripts = "\n".join(f"<script>\n{_inline_script(_text(n))}\n</script>" for n in _SCRIPTS)
        policy = REPORT_POLICY
        # '<' never appears outside a JSON string, where \u003c means the same character: the
        # embedded data can hold no "</script>" that would end the element early.
        data = ('<script id="snapshot" type="application/json">'
                + json.dumps(snapshot, allow_nan=False, default=str).replace("<", "\\u003c")
                + "</script>")
    return (_text("dashboard.html")
            .replace("<!--POLICY-->", policy)
            .replace("<!--HEAD-->", head)
            .replace("<!--DATA-->", data)
            .replace("<!--SCRIPTS-->", scripts))


def _text(name: str) -> str:
    return static_bytes(name).decode("utf-8")


def _inline_script(text: str) -> str:
    if "</script" in text.lower():
        raise ValueError("an inlined script must not contain '</script'")
    return text
