"""HTML building blocks of the report: numbers as a person reads them, tables, embedded figures, the page.

Every function returns a string of HTML; nothing here reads run files or draws.
"""
from __future__ import annotations

import base64
import html
import io
import math

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1em 2em 4em;
 max-width:1150px;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}
td,th{border:1px solid #ccc;padding:3px 9px;text-align:right;vertical-align:top}td{white-space:nowrap}
td.wrap{white-space:normal}
th{background:#f0f0f0}td.l,th.l{text-align:left}
tr.total td{font-weight:bold;background:#fafafa}
.random{color:#c00;font-weight:bold}.kept{color:#080;font-weight:bold}.rejected{color:#888}
img{max-width:100%;height:auto}figure{margin:.5em 0 1.2em}figcaption{font-size:.9em;color:#555}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.3em .8em;margin:.5em 0}
.muted{color:#666;font-size:.9em}.toc{columns:2;font-size:.95em}.toc li{margin:.1em 0}
.side{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.big{font-size:1.15em}code{background:#f4f4f4;padding:0 .2em}
"""


def e(s) -> str:
    """HTML-escaped text."""
    return html.escape(str(s))


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x, nd: int = 4) -> str:
    """A number with `nd` decimals (ints as they are); a dash for missing or NaN."""
    if _missing(x):
        return "&ndash;"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    try:
        return f"{float(x):.{nd}f}"
    except (TypeError, ValueError):
        return e(x)


def pct(x, nd: int = 1) -> str:
    """A share in [0, 1] as a percentage."""
    return "&ndash;" if _missing(x) else f"{100 * float(x):.{nd}f}%"


def minutes(seconds) -> str:
    """A duration in minutes: '86.3 min'; under a minute with two decimals ('0.21 min', '< 0.01 min')."""
    if _missing(seconds):
        return "not recorded"
    m = float(seconds) / 60
    return f"{m:.1f} min" if m >= 1 else f"{m:.2f} min" if m >= 0.01 else "&lt; 0.01 min"


def short(v) -> str:
    """A value of a preset or a parameter, short: 0.001 -> '0.001', [2, 2] -> '2-2', True -> 'yes'."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return "-".join(short(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k} ({short(x)})" if isinstance(x, dict) else f"{k} {short(x)}" for k, x in v.items())
    if v is None:
        return "none"
    return str(v)


def table(header, rows, left: int = 1, cls: str = "", total_last: bool = False, left_last: bool = False) -> str:
    """A table. `header`: plain-text column names; `rows`: lists of cells that are already HTML.
    The first `left` columns (and the last, if `left_last`) are left-aligned; `total_last` marks the last
    row as a total."""
    def lc(j):
        return ' class="l"' if j < left else ' class="l wrap"' if left_last and j == len(header) - 1 else ""
    out = [f'<table{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><tr>'
           + "".join(f"<th{lc(j)}>{e(h)}</th>" for j, h in enumerate(header)) + "</tr>"]
    for i, r in enumerate(rows):
        tr = '<tr class="total">' if total_last and i == len(rows) - 1 else "<tr>"
        out.append(tr + "".join(f"<td{lc(j)}>{c}</td>" for j, c in enumerate(r)) + "</tr>")
    return "\n".join(out) + "</table>"


def note(text_html: str) -> str:
    """A highlighted note (a missing file, an older run's missing column)."""
    return f'<p class="note">{text_html}</p>'


def figure(fig, alt: str, caption_html: str = "", dpi: int = 100) -> str:
    """A matplotlib Figure embedded as a base64 PNG data URI, with an optional caption."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    uri = base64.b64encode(buf.getvalue()).decode()
    cap = f"<figcaption>{caption_html}</figcaption>" if caption_html else ""
    return f'<figure><img alt="{e(alt)}" src="data:image/png;base64,{uri}">{cap}</figure>'


def section(anchor: str, title: str, body: list[str] | str) -> tuple[str, str, str]:
    """A report section: (anchor, title, html)."""
    body = body if isinstance(body, str) else "\n".join(body)
    return anchor, title, f'<h2 id="{e(anchor)}">{e(title)}</h2>\n{body}'


def page(title: str, intro_html: str, sections) -> str:
    """The whole self-contained page: title, introduction, a table of contents, the sections."""
    toc = "".join(f'<li><a href="#{e(a)}">{e(t)}</a></li>' for a, t, _ in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n<h1>{e(title)}</h1>\n{intro_html}\n"
            f'<nav><h2 id="contents">Contents</h2><ul class="toc">{toc}</ul></nav>\n'
            + "\n".join(h for _, _, h in sections) + "\n</body></html>\n")
