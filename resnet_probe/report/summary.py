"""The summary part rendered: the first screen says the verdict and the few numbers behind
it, each with its interval; the full delta table follows in its own scrolling box."""

from __future__ import annotations

import math

import pandas as pd

from resnet_probe.jobs.parts import SummaryPart
from resnet_probe.report import figures
from resnet_probe.report.html import Section, esc, format_value, scaled
from resnet_probe.report.words import verdict_line
from resnet_probe.results import change_direction, measurable_deltas
from resnet_probe.train.verdict import Verdict

HEADLINE = (("params", "parameters", None), ("macs", "MACs (a)", None),
            ("forward_ms", "forward ms (median)", "forward_ms"),
            ("grad_ratio_first_last", "gradient ratio first/last", "grad_ratio_first_last"),
            ("final_train_error", "final training error", "final_train_error"),
            ("final_test_error", "final test error", "final_test_error"))


def render_summary(part: SummaryPart, notes: list[str]) -> Section:
    section = Section("summary", "1. Summary")
    if part.verdict is not None:
        kind = "warning" if part.verdict.verdict is Verdict.INCONCLUSIVE else "finding"
        section.note(esc(verdict_line(part.verdict)), kind=kind)
    section.table(headline_cells(part), caption="The numbers the comparison rests on: counts "
                  "are exact; medians and means carry a 95% interval")
    changes = part.differences
    if not changes.empty:
        section.table(changes[["model", "baseline", "metric", "change"]],
                      caption="Each measured change against the baseline")
    section.note(f"<small>{esc(part.rule)}</small>")
    if not part.history.empty:
        section.figure(figures.training_curves(part.history, part.finals))
    for note in notes:
        section.note(esc(note))
    deltas = scaled(measurable_deltas(part.deltas)).dropna(axis=1, how="all")
    section.text(f"Baseline: <b>{esc(part.deltas['model'].iloc[0])}</b> (the first model "
                 f"named). Every summary column and its Δ% against it, green where it is "
                 f"better and red where it is worse by the metric's direction; a Δ% whose "
                 f"interval spans zero is left blank and its <i>_change</i> column says \"no "
                 f"measurable difference\". MACs and FLOPs in G (10⁹).")
    section.table(deltas, caption="All deltas",
                  cell_class=lambda column, value: change_direction(column, value)
                  if column.endswith("_delta_pct") else None, scroll=True)
    return section


def headline_cells(part: SummaryPart) -> pd.DataFrame:
    """One row per model; each measured number with its interval, in words."""
    rows = []
    for record in part.headline.to_dict("records"):
        row = {"model": record["model"]}
        for column, label, interval in HEADLINE:
            if column not in record:
                continue
            value = record[column]
            low = record.get(f"{column}_ci95_low") if interval else None
            high = record.get(f"{column}_ci95_high") if interval else None
            seeds = record.get(f"{column}_seeds")
            if low is not None and not _missing(low):
                cell = f"{format_value(value)} ({format_value(low)} to {format_value(high)})"
                if seeds:
                    cell += f", {int(seeds)} seeds"
            elif seeds == 1:
                cell = f"{format_value(value)} (one seed)"
            else:
                cell = format_value(value)
            row[label] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
