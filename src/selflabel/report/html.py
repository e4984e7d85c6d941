"""Small HTML builders for the run report: escaped text, tables, figures, a self-contained page.

Everything here returns strings; every piece of text that is not markup passes through
:func:`html.escape`. The page has inline CSS, no external URL, and images referenced by relative
file names, so the report folder still works when it is copied elsewhere. A tiny inline script
records on ``<body data-images-loaded="N/M">`` how many of the page's images decoded (the
headless-browser test reads it); the page does not need it.

Example::

    >>> body = section("Metrics", table(["metric", "value"], [["acc", "0.91"]]))
    >>> page("run", [body]).startswith("<!DOCTYPE html>")
    True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["details", "esc", "figure", "note", "page", "pre", "section", "table"]

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 1.5em; background: #fafafa; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; background: #fff; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.proto { color: #555; font-size: 0.9em; }
figure { margin: 0.8em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; background: #fff; }
figcaption { color: #555; font-size: 0.9em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 0.8em; }
pre { background: #fff; border: 1px solid #ddd; padding: 0.7em; overflow-x: auto; font-size: 12px; }
nav a { margin-right: 1em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.row > * { flex: 1 1 330px; min-width: 0; }
.row.wide > * { flex: 0 1 calc(50% - 0.5em); }
section > figure img { max-width: min(100%, 760px); }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.dataset.imagesLoaded = ok + "/" + imgs.length;
});
"""


def esc(value: object) -> str:
    """``str(value)`` with ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    classes: Sequence[str] | None = None,
) -> str:
    """A ``<table>`` of escaped cells; ``classes[j]`` (e.g. ``"num"``) styles column ``j``."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells but the header has {len(header)}")
        cells = []
        for j, cell in enumerate(row):
            cls = f' class="{esc(classes[j])}"' if classes and classes[j] else ""
            cells.append(f"<td{cls}>{esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(src: str, caption: str, *, alt: str | None = None, width: int | None = None) -> str:
    """An ``<img>`` of the relative file ``src`` with a caption."""
    if "://" in src or src.startswith("/"):
        raise ValueError(f"figure src must be a relative file name, got {src!r}")
    style = f' style="width:{int(width)}px"' if width else ""
    return (
        f'<figure><img src="{esc(src)}" alt="{esc(alt or caption)}"{style}>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def details(summary: str, body_html: str, *, open_: bool = False) -> str:
    """A collapsed ``<details>`` block around already-built HTML."""
    flag = " open" if open_ else ""
    return f"<details{flag}><summary>{esc(summary)}</summary>{body_html}</details>"


def pre(text: str) -> str:
    """Preformatted, escaped text."""
    return f"<pre>{esc(text)}</pre>"


def note(text: str) -> str:
    """A highlighted remark (e.g. why a section is missing)."""
    return f'<p class="note">{esc(text)}</p>'


def section(title: str, body_html: str, *, anchor: str | None = None) -> str:
    """An ``<h2>`` section around already-built HTML."""
    ident = f' id="{esc(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{esc(title)}</h2>{body_html}</section>"


def page(title: str, sections: Sequence[str], *, subtitle: str = "",
         nav: Sequence[tuple[str, str]] = ()) -> str:
    """The whole document: inline CSS, a title, a navigation line and the sections."""
    links = " ".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav)
    nav_html = f"<nav>{links}</nav>" if links else ""
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{esc(title)}</h1>{sub}{nav_html}\n"
        + "\n".join(sections)
        + f"\n<script>{_SCRIPT}</script></body></html>\n"
    )
