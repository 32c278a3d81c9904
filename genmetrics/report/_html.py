"""HTML pieces of the report: the inline stylesheet, escaping, the page frame, and
:class:`MediaStore`, which embeds each audio clip once however often it is shown."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from typing import Any

CSS = """
:root { --fg: #1d2330; --muted: #667085; --line: #d8dce3; --bg: #ffffff; --panel: #f6f7f9;
  --good: #137333; --bad: #b3261e; --ins: #d7f5dd; --del: #fbdada; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: var(--bg); margin: 0; padding: 18px 28px 60px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 8px; padding-top: 8px; border-top: 2px solid var(--fg); }
h3 { font-size: 16px; margin: 22px 0 8px; }
h4 { font-size: 14px; margin: 16px 0 6px; }
h5 { font-size: 13px; margin: 10px 0 6px; color: var(--muted); font-weight: 600; }
p.meta, .note, .caption { color: var(--muted); }
.note { font-style: italic; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.sig, code { font: 12px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; }
td.sig { color: var(--muted); word-break: break-all; max-width: 560px; }
.failed { color: var(--bad); font-weight: 600; }
p.alert { color: var(--bad); font-weight: 600; border-left: 4px solid var(--bad);
  padding: 4px 10px; background: #fdf0ef; }
td.nowrap, td.caption { white-space: nowrap; }
td.caption { white-space: normal; font-size: 12px; max-width: 380px; }
table.inputs th, table.inputs td { padding: 2px 10px; }
.unavailable { color: #8a6d00; font-weight: 600; }
.better { color: var(--good); font-weight: 600; }
.worse { color: var(--bad); font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; }
.plots figure { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 6px; }
.plots figcaption { font-size: 12px; color: var(--muted); text-align: center; }
.samples { display: flex; flex-wrap: wrap; gap: 10px; }
.sample { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px;
  background: var(--panel); }
.sample.text { flex: 1 1 100%; }
.sample header { font-size: 12px; margin-bottom: 6px; }
.sample header .value { font-weight: 700; }
.pair { display: flex; gap: 8px; align-items: flex-start; }
.pair > div { text-align: center; font-size: 11px; color: var(--muted); }
.pair > div.audio { text-align: left; }
.pic { display: block; background-size: 100% 100%; background-repeat: no-repeat; }
.pic.thumb { background-color: #fff; border: 1px solid var(--line); margin: 0 auto 2px; }
.pic.px { image-rendering: pixelated; }
.missing { display: inline-block; min-width: 128px; padding: 24px 8px; color: var(--bad);
  border: 1px dashed var(--bad); text-align: center; font-size: 12px; }
.pic.spec { margin: 2px 0; border: 1px solid var(--line); }
audio { width: 260px; height: 32px; display: block; }
.textrow { display: grid; grid-template-columns: 84px 1fr; gap: 2px 8px; font-size: 13px; }
.textrow .label { color: var(--muted); font-size: 12px; }
.textrow .body { white-space: pre-wrap; word-break: break-word; }
ins { background: var(--ins); text-decoration: none; }
del { background: var(--del); }
details { margin: 6px 0; }
table.fidelity .side { border-left: 2px solid var(--line); }
.pair > div.note-cell { width: 128px; padding-top: 24px; border: 1px dashed var(--line); }
summary { cursor: pointer; color: var(--muted); }
"""

# Each <audio data-media=KEY> gets its source from one JSON table at the end of the page.
_MEDIA_SCRIPT = """
(function () {
  var table = JSON.parse(document.getElementById("genmetrics-media").textContent);
  document.querySelectorAll("[data-media]").forEach(function (el) {
    var uri = table[el.getAttribute("data-media")];
    if (uri) { el.src = uri; }
  });
})();
"""


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes escaped too).

        >>> esc('<b> & "x"')
        '&lt;b&gt; &amp; &quot;x&quot;'
    """
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """A metric value as text: ``digits`` decimals, ``-`` for None or non-numbers.

        >>> number(0.123456), number(None), number(float("nan"))
        ('0.1235', '-', 'nan')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class MediaStore:
    """Embeds binary media once: :meth:`add` returns a key for ``data-media`` attributes.

        >>> store = MediaStore()
        >>> store.add(b"RIFF", "audio/wav") == store.add(b"RIFF", "audio/wav")
        True
        >>> len(store)
        1
    """

    def __init__(self) -> None:
        self._uris: dict[str, str] = {}
        self._pictures: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._uris) + len(self._pictures)

    def picture(self, png: bytes, width: int, height: int, title: str, css: str = "") -> str:
        """A PNG shown ``width`` x ``height``: a ``role="img"`` element whose pixels come
        from one CSS rule per distinct picture (so a thumbnail repeated in several
        sections is embedded once, and shows without JavaScript)."""
        key = "p" + hashlib.sha256(png).hexdigest()[:16]
        self._pictures.setdefault(key, data_uri(png, "image/png"))
        return (f'<span class="pic {key} {css}" role="img" aria-label="{esc(title)}" '
                f'title="{esc(title)}" style="width:{width}px;height:{height}px"></span>')

    def styles(self) -> str:
        """The CSS rules of :meth:`picture` ('' when none)."""
        return "".join(f".{key}{{background-image:url({uri})}}\n"
                       for key, uri in self._pictures.items())

    def add(self, data: bytes, mime: str) -> str:
        key = "m" + hashlib.sha256(data).hexdigest()[:16]
        self._uris.setdefault(key, data_uri(data, mime))
        return key

    def html(self) -> str:
        """The table and the script that fills the players ('' when nothing was added)."""
        if not self._uris:
            return ""
        table = json.dumps(self._uris).replace("</", "<\\/")
        return (f'<script type="application/json" id="genmetrics-media">{table}</script>\n'
                f"<script>{_MEDIA_SCRIPT}</script>\n")


def page(title: str, body: str, media: MediaStore) -> str:
    """A whole HTML document: ``body`` plus the stylesheet and the embedded media."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<style>{CSS}</style>\n<style>{media.styles()}</style>\n</head>\n<body>\n{body}\n{media.html()}</body>\n</html>\n")
