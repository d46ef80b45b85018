"""Page assembly: sections of prose, real HTML tables and plotly figures, written atomically.

plotly.js is written once as ``plotly.min.js`` beside the reports (so every report works
offline and stays small), or inlined into the page with ``inline_plotly=True``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from resnet_probe.results import atomic_write_text

PLOTLY_JS = "plotly.min.js"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2330;
       line-height: 1.45; }
header { background: #1d2330; color: #fff; padding: 1rem 1.5rem; }
header h1 { margin: 0; font-size: 1.4rem; }
header p { margin: .3rem 0 0; color: #c8d0e0; }
nav { padding: .5rem 1.5rem; border-bottom: 1px solid #dde; background: #f6f7fb;
      position: sticky; top: 0; z-index: 10; overflow-x: auto; white-space: nowrap; }
nav a { margin-right: 1rem; color: #2953a6; text-decoration: none; font-size: .9rem; }
main { max-width: 1200px; margin: 0 auto; padding: 0 1.5rem 3rem; }
section { margin-top: 2rem; }
h2 { border-bottom: 2px solid #2953a6; padding-bottom: .2rem; }
.table-wrap { overflow-x: auto; margin: .8rem 0; max-width: 100%; }
.table-wrap.scroll { max-height: 26rem; overflow: auto; border: 1px solid #d5d9e4; }
.figure { max-width: 100%; overflow: hidden; }
table.data { border-collapse: collapse; font-size: .85rem; }
table.data th, table.data td { border: 1px solid #d5d9e4; padding: .25rem .5rem;
                                text-align: right; }
table.data th { background: #eef1f8; }
table.data td.text, table.data th:first-child { text-align: left; }
.figure { margin: 1rem 0; min-height: 300px; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: .5rem .8rem; }
.finding { background: #eaf4ea; border-left: 4px solid #3a8a3a; padding: .5rem .8rem; }
td.better { color: #1e7b34; font-weight: 600; }
td.worse { color: #b03a2e; font-weight: 600; }
.warning { background: #fdecea; border-left: 4px solid #c0392b; padding: .5rem .8rem; }
code { background: #f0f2f7; padding: 0 .2rem; }
header code { background: #39435a; color: #fff; }
ul.reports li { margin: .3rem 0; }
"""


@dataclass
class Section:
    anchor: str
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, paragraph_html: str) -> Section:
        self.parts.append(f"<p>{paragraph_html}</p>")
        return self

    def note(self, text: str, kind: str = "note") -> Section:
        self.parts.append(f'<p class="{kind}">{text}</p>')
        return self

    def table(self, df: pd.DataFrame, caption: str | None = None,
              cell_class: Callable[[str, object], str | None] | None = None,
              scroll: bool = False) -> Section:
        """``scroll``: a tall, wide table scrolls inside its own box."""
        self.parts.append(table_html(df, caption, cell_class, scroll))
        return self

    def figure(self, fig: go.Figure) -> Section:
        self.parts.append(figure_html(fig))
        return self


def esc(value: object) -> str:
    return html.escape(str(value))


def format_value(value: object) -> str:
    value = _python(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def table_html(df: pd.DataFrame, caption: str | None = None,
               cell_class: Callable[[str, object], str | None] | None = None,
               scroll: bool = False) -> str:
    """A plain HTML table (readable without JavaScript), numbers formatted for reading;
    ``cell_class(column, value)`` may add a CSS class to a cell (e.g. better/worse)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, cell_class(c, v) if cell_class else None)
                         for c, v in zip(df.columns, row, strict=True)) + "</tr>"
        for row in df.itertuples(index=False))
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    wrap = "table-wrap scroll" if scroll else "table-wrap"
    return (f'<div class="{wrap}"><table class="data">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _cell(value: object, extra_class: str | None = None) -> str:
    value = _python(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = ("num" if numeric else "text") + (f" {extra_class}" if extra_class else "")
    return f'<td class="{classes}">{esc(format_value(value))}</td>'


def _python(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def figure_html(fig: go.Figure) -> str:
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50))
    return '<div class="figure">' + fig.to_html(
        full_html=False, include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True}) + "</div>"


def scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Catalogued columns divided by their display scale, renamed to say so."""
    from resnet_probe.results import display_scales

    view = df.copy()
    scales = display_scales(view.columns)
    for column, (divisor, _) in scales.items():
        view[column] = view[column] / divisor
    return view.rename(columns={c: header for c, (_, header) in scales.items()})


def ordered_pivot(df: pd.DataFrame, index: str, values: str) -> pd.DataFrame:
    """pivot() sorts labels; keep stages in network order and models in the order named."""
    pivot = df.pivot(index=index, columns="model", values=values)
    labels = list(dict.fromkeys(df[index]))
    if index == "stage":  # models of different depths: stem, stage1..N, head, whatever came first
        labels.sort(key=lambda s: (s == "head", s != "stem"))
    pivot = pivot.reindex(labels)
    return pivot[list(dict.fromkeys(df["model"]))].reset_index()


def render_page(title: str, subtitle: str, sections: list[Section], inline_plotly: bool,
                with_plotly: bool = True) -> str:
    nav = "".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    if not with_plotly:
        script = ""
    elif inline_plotly:
        script = f"<script>{get_plotlyjs()}</script>"
    else:
        script = f'<script src="{PLOTLY_JS}"></script>'
    body = "".join(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>{"".join(s.parts)}'
                   f"</section>" for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style>{script}</head><body>"
            f"<header><h1>{esc(title)}</h1><p>{subtitle}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>")


def write_page(path: Path, page: str, inline_plotly: bool) -> Path:
    if not inline_plotly:
        js = path.parent / PLOTLY_JS
        if not js.exists():
            atomic_write_text(js, get_plotlyjs())
    return atomic_write_text(path, page)
