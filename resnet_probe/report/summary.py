"""The summary part rendered in detail: the verdict with every number behind it, the key
numbers per model with their intervals, each measured change, and the full delta table against
the baseline (folded: it is wide)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from typing import Any

import pandas as pd

from resnet_probe.jobs.parts import SummaryPart
from resnet_probe.report.html import Section, format_value, markup
from resnet_probe.report.words import twin_verdict_line, verdict_line
from resnet_probe.results import (
    COUNTED_UNITS,
    SUMMARY_METRICS,
    change_direction,
    column_label,
    measurable_deltas,
    readable_prefix,
)
from resnet_probe.train.verdict import TwinOutcome, Verdict


def render_summary(part: SummaryPart, number: str = "1.") -> Section:
    section = Section("summary", f"{number} Summary", nav="Summary")
    if part.twin_verdict is not None:
        kind = ("warning" if part.twin_verdict.verdict is TwinOutcome.INCONCLUSIVE
                else "finding")
        section.note(twin_verdict_line(part.twin_verdict), kind=kind)
    elif part.verdict is not None:
        kind = "warning" if part.verdict.verdict is Verdict.INCONCLUSIVE else "finding"
        section.note(verdict_line(part.verdict), kind=kind)
    cells = headline_cells(part)
    section.table(cells, caption="The numbers the comparison rests on: counts are exact; "
                  "medians and means carry a 95% interval", names=tuple(cells.columns),
                  fold=False)
    changes = part.differences
    if not changes.empty:
        shown = changes[["model", "baseline", "metric", "change"]].assign(
            metric=changes["metric"].map(column_label))
        section.table(shown, caption="Each measured change against the baseline")
    section.note(markup("<small>{}</small>", part.rule))
    baseline = part.deltas["model"].iloc[0] if not part.deltas.empty else ""
    section.text(markup(
        "Baseline: <b>{}</b> (the first model named). Every summary column and its Δ against "
        "it, green where it is better and red where it is worse by the metric's direction; a "
        "Δ whose interval spans zero is left blank and its change column says \"no measurable "
        "difference\".", baseline))
    deltas = measurable_deltas(part.deltas).dropna(axis=1, how="all")
    section.table(deltas, caption="All deltas against the baseline",
                  cell_class=_delta_class, scroll=True, fold=True)
    return section


def _delta_class(column: str, value: object) -> str | None:
    """A Δ% cell's class: "better" or "worse" by its metric's direction."""
    if not column.endswith("_delta_pct") or not isinstance(value, numbers.Real):
        return None  # not a Δ, or a blank one
    return change_direction(column, float(value))


def headline_cells(part: SummaryPart) -> pd.DataFrame:
    """One row per model; each measured number with its interval, in words, under its label
    with its unit (counts in K, M or G as the column needs)."""
    headline = part.headline
    table = pd.DataFrame({"model": headline["model"]})
    for metric in SUMMARY_METRICS:
        column = metric.column
        if column not in headline:
            continue
        divisor, prefix = readable_prefix(headline[column]) if metric.unit in COUNTED_UNITS \
            else (1.0, "")
        table[metric.display_heading(prefix)] = [
            _with_interval(record, column, divisor) for record in headline.to_dict("records")]
    return table


def _with_interval(record: dict[Hashable, Any], column: str, divisor: float) -> str:
    def shown(value: Any) -> str:
        return format_value(value / divisor if divisor != 1.0 and not _missing(value)
                            else value)

    value = record[column]
    low, high = record.get(f"{column}_ci95_low"), record.get(f"{column}_ci95_high")
    seeds = record.get(f"{column}_seeds")
    if low is not None and not _missing(low):
        cell = f"{shown(value)} ({shown(low)} to {shown(high)})"
        if seeds:
            cell += f", {int(seeds)} seeds"
        return cell
    if seeds == 1:
        return f"{shown(value)} (one seed)"
    return shown(value)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
