"""Page assembly: sections of prose, real HTML tables and plotly figures, written atomically.

Text reaches the page one way: ``esc`` (markupsafe's ``escape``). A ``Section`` takes plain
text, which it escapes, or ``Markup`` for deliberate markup, built with ``markup(template,
*values)``, which escapes every value; no f-string builds HTML from data.

plotly.js is written once as ``plotly.min.js`` beside the reports (so every report works
offline and stays small), or inlined into the page with ``inline_plotly=True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup, escape
from plotly.offline import get_plotlyjs

from resnet_probe.results import atomic_write_text, display_table

PLOTLY_JS = "plotly.min.js"
# A table whose estimated width passes this folds into <details> (the page's text column is
# 1200 px wide less its padding); it still scrolls inside its box with a frozen first column.
FOLD_WIDTH_PX = 1150
CHARACTER_PX = 7.2  # a .85rem system-ui digit, about
CELL_PADDING_PX = 18
WRAP_CHARACTERS = 32  # a longer text cell wraps at its spaces

Text = str | Markup  # plain text (escaped on the way in) or deliberate markup

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2330;
       line-height: 1.45; }
header { background: #1d2330; color: #fff; padding: .7rem 1.5rem; }
header h1 { margin: 0; font-size: 1.3rem; overflow-wrap: anywhere; }
header p { margin: .2rem 0 0; color: #c8d0e0; font-size: .9rem; overflow-wrap: anywhere; }
nav { padding: .35rem 1.5rem; border-bottom: 1px solid #dde; background: #f6f7fb;
      position: sticky; top: 0; z-index: 10; display: flex; flex-wrap: wrap;
      column-gap: 1rem; row-gap: .15rem; }
nav a { color: #2953a6; text-decoration: none; font-size: .88rem; white-space: nowrap; }
nav a.answer { font-weight: 600; }
main { max-width: 1200px; margin: 0 auto; padding: 0 1.5rem 3rem; }
section { margin-top: 1.6rem; scroll-margin-top: 3.5rem; }
section.answer { margin-top: .8rem; }
h2 { border-bottom: 2px solid #2953a6; padding-bottom: .2rem; margin: .4rem 0 .5rem;
     font-size: 1.35rem; }
section.answer h2 { font-size: 1.25rem; }
p { margin: .45rem 0; }
p.lead { font-size: 1.05rem; margin: .3rem 0; }
ul.findings { margin: .3rem 0; padding-left: 1.3rem; }
ul.findings li { margin: .2rem 0; }
.table-wrap { overflow-x: auto; margin: .6rem 0; max-width: 100%; }
.table-wrap.scroll { max-height: 26rem; overflow: auto; border: 1px solid #d5d9e4; }
table.data { border-collapse: separate; border-spacing: 0; font-size: .85rem; }
table.data caption { text-align: left; font-size: .85rem; color: #4a5368; padding: .2rem 0;
                     caption-side: top; }
table.data th, table.data td { border-right: 1px solid #d5d9e4; border-bottom: 1px solid #d5d9e4;
                                padding: .25rem .5rem; text-align: right; }
table.data tr > :first-child { border-left: 1px solid #d5d9e4; }
table.data thead th { border-top: 1px solid #d5d9e4; }
table.data th { background: #eef1f8; vertical-align: bottom; }
table.data td { white-space: nowrap; }
table.data td.wrap { white-space: normal; min-width: 16rem; }
table.data td.text, table.data th.text, table.data th:first-child { text-align: left; }
/* The first column stays in view while a wide table scrolls sideways. */
table.data tr > :first-child { position: sticky; left: 0; z-index: 1; background: #fff; }
table.data thead tr > :first-child { background: #eef1f8; z-index: 2; }
.table-wrap.scroll thead th { position: sticky; top: 0; z-index: 1; }
.table-wrap.scroll thead tr > :first-child { z-index: 3; }
.figure { margin: .6rem 0; min-height: 300px; max-width: 100%; overflow: hidden; }
.note { background: #fff7e0; border-left: 4px solid #e0a800; padding: .4rem .8rem; }
.finding { background: #eaf4ea; border-left: 4px solid #3a8a3a; padding: .4rem .8rem; }
.warning { background: #fdecea; border-left: 4px solid #c0392b; padding: .4rem .8rem; }
td.better { color: #1e7b34; font-weight: 600; }
td.worse { color: #b03a2e; font-weight: 600; }
details { margin: .5rem 0; }
details > summary { cursor: pointer; color: #2953a6; font-size: .92rem; }
details.method { background: #f6f7fb; border-left: 4px solid #9aa6c2; padding: .3rem .8rem; }
details.method p { font-size: .92rem; }
code { background: #f0f2f7; padding: 0 .2rem; overflow-wrap: anywhere; }
header code { background: #39435a; color: #fff; }
ul.reports li { margin: .3rem 0; overflow-wrap: anywhere; }
"""


def esc(value: object) -> Markup:
    """The one way text reaches HTML: escaped, unless it is already ``Markup``."""
    return escape(value)


def markup(template: str, *values: object, **named: object) -> Markup:
    """A fragment from a literal ``template`` (``{}`` fields), every value escaped unless it
    is ``Markup`` itself."""
    return Markup(template).format(*values, **named)


def join(separator: str, items: Iterable[object]) -> Markup:
    """``items`` joined by a literal ``separator``, each escaped unless it is ``Markup``."""
    return Markup(separator).join(esc(item) for item in items)


def plain_text(text: Text) -> str:
    """What a reader sees of ``text``: markup's tags dropped and entities read."""
    return text.striptags() if isinstance(text, Markup) else " ".join(str(text).split())


@dataclass
class Section:
    """A titled part of a page. ``nav`` is its short name in the section bar; ``paragraphs``
    keeps each paragraph's text as given, so a test can compare it with what a browser shows."""

    anchor: str
    title: str
    nav: str = ""
    answer: bool = False  # one of the three answers at the top of the compare report
    parts: list[Markup] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)

    def _paragraph(self, text: Text, css_class: str | None) -> Markup:
        self.paragraphs.append(plain_text(text))
        if css_class:
            return markup('<p class="{}">{}</p>', css_class, text)
        return markup("<p>{}</p>", text)

    def text(self, paragraph: Text, css_class: str | None = None) -> Section:
        self.parts.append(self._paragraph(paragraph, css_class))
        return self

    def note(self, text: Text, kind: str = "note") -> Section:
        self.parts.append(self._paragraph(text, kind))
        return self

    def method(self, *paragraphs: Text, summary: Text = "How this is measured") -> Section:
        """Method notes, folded: the reader who wants them opens them."""
        body = join("", [self._paragraph(p, None) for p in paragraphs])
        self.parts.append(markup('<details class="method"><summary>{}</summary>{}</details>',
                                 summary, body))
        return self

    def html(self, fragment: Markup) -> Section:
        """A deliberate fragment (a list, a link), built with ``markup``."""
        self.parts.append(fragment)
        return self

    def table(self, df: pd.DataFrame, caption: Text | None = None,
              cell_class: Callable[[str, object], str | None] | None = None,
              scroll: bool = False, fold: bool | None = None,
              names: tuple[str, ...] = ()) -> Section:
        """``scroll``: a tall table scrolls inside its own box. ``fold``: inside
        <details> (by default when the table is wider than the page). ``names``: columns
        headed by a name (a model's), shown as they are."""
        self.parts.append(table_html(df, caption, cell_class, scroll, fold, names))
        return self

    def figure(self, fig: go.Figure) -> Section:
        self.parts.append(figure_html(fig))
        return self


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


def table_html(df: pd.DataFrame, caption: Text | None = None,
               cell_class: Callable[[str, object], str | None] | None = None,
               scroll: bool = False, fold: bool | None = None,
               names: tuple[str, ...] = ()) -> Markup:
    """A plain HTML table (readable without JavaScript): headers are the catalogue's labels
    with units (``results.display_table``), numbers scaled per column and formatted for
    reading; ``cell_class(column, value)`` (by the raw column name) may add a CSS class to a
    cell (e.g. better/worse). The first column stays in view when the table scrolls sideways."""
    shown = display_table(df, names)
    head = join("", (markup('<th class="{}">{}</th>', "num" if _numeric(df.iloc[:, i]) else
                            "text", c) for i, c in enumerate(shown.columns)))
    cells = [[format_value(v) for v in row] for row in shown.itertuples(index=False)]
    body = join("", (
        markup("<tr>{}</tr>", join("", (
            _cell(value, text, cell_class(column, value) if cell_class else None)
            for column, value, text in zip(df.columns, row, texts, strict=True))))
        for row, texts in zip(df.itertuples(index=False), cells, strict=True)))
    cap = markup("<caption>{}</caption>", caption) if caption else Markup("")
    wrap = "table-wrap scroll" if scroll else "table-wrap"
    table = markup('<div class="{}"><table class="data">{}<thead><tr>{}</tr></thead>'
                   "<tbody>{}</tbody></table></div>", wrap, cap, head, body)
    if fold is None:
        fold = estimated_width([str(c) for c in shown.columns], cells) > FOLD_WIDTH_PX
    if not fold:
        return table
    columns, rows = len(shown.columns), len(shown)
    summary = caption or "The table"
    return markup('<details class="wide"><summary>{} ({} columns × {} rows: open to '
                  "see)</summary>{}</details>", summary, columns, rows, table)


def estimated_width(headers: list[str], cells: list[list[str]]) -> float:
    """The table's width in px, about: a column is as wide as its longest word, or its
    longest cell up to WRAP_CHARACTERS (text wraps there), plus padding."""
    def characters(text: str, wrap: int = WRAP_CHARACTERS) -> int:
        longest_word = max((len(word) for word in text.split()), default=0)
        return max(longest_word, min(len(text), wrap))

    width = 0.0
    for index, header in enumerate(headers):
        longest = max((characters(row[index]) for row in cells), default=0)
        width += max(characters(header, 14), longest) * CHARACTER_PX + CELL_PADDING_PX
    return width


def _cell(value: object, text: str, extra_class: str | None = None) -> Markup:
    value = _python(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    classes = ("num" if numeric else "text") + (" wrap" if len(text) > WRAP_CHARACTERS else "") \
        + (f" {extra_class}" if extra_class else "")
    return markup('<td class="{}">{}</td>', classes, text)


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _python(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def figure_html(fig: go.Figure) -> Markup:
    fig.update_layout(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50))
    # plotly writes its own markup: a div and a script holding the figure as JSON, in which
    # it escapes "<" and ">" itself (names such as "<script>" stay inside a JSON string).
    return markup('<div class="figure">{}</div>', Markup(fig.to_html(
        full_html=False, include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True})))


def ordered_pivot(df: pd.DataFrame, index: str, values: str) -> pd.DataFrame:
    """pivot() sorts labels; keep stages in network order and models in the order named."""
    pivot = df.pivot(index=index, columns="model", values=values)
    labels = list(dict.fromkeys(df[index]))
    if index == "stage":  # models of different depths: stem, stage1..N, head, whatever came first
        labels.sort(key=lambda s: (s == "head", s != "stem"))
    pivot = pivot.reindex(labels)
    return pivot[list(dict.fromkeys(df["model"]))].reset_index()


def render_page(title: str, subtitle: Text, sections: list[Section], inline_plotly: bool,
                with_plotly: bool = True) -> str:
    nav = join("", (markup('<a href="#{}"{}>{}</a>', s.anchor,
                           Markup(' class="answer"') if s.answer else Markup(""),
                           s.nav or s.title) for s in sections))
    if not with_plotly:
        script = Markup("")
    elif inline_plotly:
        script = markup("<script>{}</script>", Markup(get_plotlyjs()))
    else:
        script = markup('<script src="{}"></script>', PLOTLY_JS)
    body = join("", (markup('<section id="{}"{}><h2>{}</h2>{}</section>', s.anchor,
                            Markup(' class="answer"') if s.answer else Markup(""), s.title,
                            join("", s.parts)) for s in sections))
    return str(markup(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>{}</title><style>{}</style>{}</head><body>"
        "<header><h1>{}</h1><p>{}</p></header><nav>{}</nav>"
        "<main>{}</main></body></html>", title, Markup(CSS), script, title, subtitle, nav,
        body))


def write_page(path: Path, page: str, inline_plotly: bool) -> Path:
    if not inline_plotly:
        js = path.parent / PLOTLY_JS
        if not js.exists():
            atomic_write_text(js, get_plotlyjs())
    return atomic_write_text(path, page)
