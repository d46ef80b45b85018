"""Results in a notebook: each API result as a compact HTML table (its ``_repr_html_``), the same
table as aligned text (its ``__repr__``), and the figure the report draws for it (its
``.figure()``).

The result classes (``resnet_probe.probes``, ``resnet_probe.comparison``) import these when
they are shown, so nothing below the report knows a report exists. Tables carry readable
labels with units, from the metric catalogue (``results.METRICS``); the raw column names stay
in the DataFrames the results return. Every string reaches the HTML through ``esc``, as in the
report, so a model named ``<script>`` shows as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from resnet_probe.jobs.compare.costs import convention_rows
from resnet_probe.jobs.parts import CompareResult, CostsPart, Failed, Skipped
from resnet_probe.measure.cost_result import CostResult
from resnet_probe.measure.gradients import GradientResult
from resnet_probe.measure.latency import LatencyResult
from resnet_probe.report import figures
from resnet_probe.report.console import console_table
from resnet_probe.report.html import esc, format_value, table_html
from resnet_probe.report.summary import headline_cells
from resnet_probe.report.words import verdict_line
from resnet_probe.results import CONVENTIONS, METRICS, frame
from resnet_probe.views import gradient_view, latency_view

INTERVAL = "95% interval"
Figure = go.Figure  # what ``.figure()`` returns, named for the layers that never import plotly


@dataclass(frozen=True)
class Shown:
    """One result ready to show: a title, lines that lead, tables (each with its caption),
    and notes under them."""

    title: str
    tables: tuple[tuple[pd.DataFrame, str | None], ...]
    lead: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def html(self) -> str:
        lead = "".join(f"<p>{esc(line)}</p>" for line in self.lead)
        tables = "".join(table_html(df, caption) for df, caption in self.tables)
        notes = "".join(f"<p><small>{esc(note)}</small></p>" for note in self.notes)
        return (f'<div class="resnet-probe"><p><b>{esc(self.title)}</b></p>{lead}{tables}'
                f"{notes}</div>")

    def text(self) -> str:
        blocks = [self.title, *self.lead]
        for df, caption in self.tables:  # labels are set here: no catalogue scaling
            blocks += [*([caption] if caption else []), console_table(df, scale={})]
        return "\n".join([*blocks, *self.notes])


def label(column: str) -> str:
    """A catalogued column's readable label, its unit added where the label lacks it."""
    metric = METRICS[column]
    unit = metric.unit.lower()
    said = any(word.startswith((unit, unit.removesuffix("s")))
               for word in metric.label.lower().split())  # "parameters" says params
    return metric.label if said else f"{metric.label} ({metric.unit})"


def _with_interval(row: dict[str, Any], column: str) -> str:
    value, low, high = (row.get(column), row.get(f"{column}_ci95_low"),
                        row.get(f"{column}_ci95_high"))
    if _missing(low) or _missing(high):
        return format_value(value)
    return f"{format_value(value)} ({format_value(low)} to {format_value(high)})"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --- counts ------------------------------------------------------------------------------

def costs_shown(result: CostResult) -> Shown:
    summary = result.summary
    rows = [{"quantity": label(metric.column), "value": summary.get(metric.column)}
            for metric in (METRICS["params"], METRICS["trainable_params"], *CONVENTIONS)]
    notes = []
    if summary.get("partial"):
        notes.append(f"partial: operators that ran with no formula: "
                     f"{summary['uncounted_operators']}")
    notes += result.notes
    where = summary.get("inputs") or f"input {summary.get('input_size')}"
    return Shown(f"FlopAnalysis of {summary['model']}: {where}, engine {summary['engine']}",
                 ((pd.DataFrame(rows, dtype=object), None),), notes=tuple(notes))


def costs_figure(result: CostResult) -> go.Figure:
    """The report's costs figure: every counting convention, one bar per model."""
    return figures.conventions(frame(convention_rows(result.summary)))


# --- latency -----------------------------------------------------------------------------

def device_label(environment: dict[str, Any]) -> str:
    return (f"{environment['device'].upper()} ({environment['device_name']}, "
            f"{environment['threads']} threads, {environment['dtype']})")


def latency_shown(result: LatencyResult) -> Shown:
    environment = result.environment
    config = environment.get("config", {})
    columns = [c for c in ("forward_ms", "backward_ms")
               if any(not _missing(row.get(c)) for row in result.models)]
    models = pd.DataFrame(
        [{"model": row["model"],
          **{f"{label(c)}, {INTERVAL}": _with_interval(row, c) for c in columns},
          label("images_per_s"): row.get("images_per_s")} for row in result.models],
        dtype=object)
    tables: list[tuple[pd.DataFrame, str | None]] = [(models, None)]
    if result.comparisons:
        tables.append((pd.DataFrame(
            [{"model": row["model"], "baseline": row["baseline"],
              "metric": label(row["metric"]) if row["metric"] in METRICS else row["metric"],
              "change": row["change"]} for row in result.comparisons], dtype=object),
            "Each model against the first"))
    notes = [*result.warnings,
             *(f"{f['model']} at batch {f['batch_size']} failed: {f['error']}"
               for f in result.failures)]
    title = (f"LatencyAnalysis on {device_label(environment)}, torch "
             f"{environment['torch_version']}: {config.get('repeats')} timed passes after "
             f"{config.get('warmup')} warm-up, batch {config.get('batch_size')}")
    return Shown(title, tuple(tables), notes=tuple(notes))


def latency_figure(result: LatencyResult) -> go.Figure:
    """The report's time-by-stage figure; per layer where a model's stages are not known
    (a plain model whose graph shows no blocks)."""
    stages = latency_view(result, "stage").dropna(subset=["stage"])
    device = device_label(result.environment)
    if set(stages["model"]) != {row["model"] for row in result.models}:
        return figures.latency_layers(latency_view(result, "layer"), device)
    return figures.latency_stages(stages, device)


# --- gradients ---------------------------------------------------------------------------

def gradients_shown(result: GradientResult) -> Shown:
    ratio = label("grad_ratio_first_last")
    rows = [{"model": row["model"], "depth (weighted layers)": row.get("depth"),
             "shortcuts": row.get("shortcut"),
             f"{ratio}, mean ± std over seeds":
                 f"{format_value(row['grad_ratio_first_last'])} ± "
                 f"{format_value(row.get('grad_ratio_std'))}",
             "trend": row.get("gradient_trend"), "loss at init": row.get("loss_at_init"),
             "seeds": row.get("seeds")}
            for row in gradient_view(result, "model").to_dict("records")]
    return Shown(f"GradientAnalysis at initialization (BN in train mode), input: "
                 f"{result.input_description}",
                 ((pd.DataFrame(rows, dtype=object), None),),
                 notes=("‖∂L/∂x‖ at each block output; the ratio is the first block's over "
                        "the last's: above 1, gradients grow toward the input",))


def gradients_figure(result: GradientResult) -> go.Figure:
    """The report's gradient-norm-by-depth figure: one line per model, ± std over seeds."""
    return figures.grad_norm_depth(frame(result.blocks))


# --- plain twins -------------------------------------------------------------------------

def twin_shown(original: str, original_params: int, twin_params: int,
               removed: list[str], kept: list[Any]) -> Shown:
    rows = [{"model": original, label("params"): original_params,
             "residual additions": len(removed)},
            {"model": f"plain twin of {original}", label("params"): twin_params,
             "residual additions": 0}]
    notes = [f"shortcuts removed at: {', '.join(removed)}"]
    if original_params != twin_params:
        notes.append(f"{original_params - twin_params:,} params were in projection "
                     f"shortcuts, which the twin drops with them")
    if kept:
        notes.append(f"{len(kept)} additions kept: they are not shortcuts")
    return Shown(f"Plain twin of {original}: {len(removed)} residual additions removed",
                 ((pd.DataFrame(rows, dtype=object), None),), notes=tuple(notes))


# --- compare -----------------------------------------------------------------------------

def compare_shown(result: CompareResult) -> Shown:
    summary = result.summary
    lead = (verdict_line(summary.verdict),) if summary.verdict is not None else ()
    tables = ((headline_cells(summary), "The numbers the comparison rests on: counts are "
               "exact; medians and means carry a 95% interval"),) \
        if not summary.headline.empty else ()
    notes = [*(f"{part.section} failed: {part.error}" for part in result.failures),
             *(f"{name} skipped: {part.reason}" for name, part in
               (("latency", result.latency), ("gradients", result.gradients),
                ("training", result.training)) if isinstance(part, Skipped))]
    if result.interruption is not None:
        notes.append("interrupted: the finished sections are kept")
    return Shown(f"compare {', '.join(result.models)} (baseline: {result.models[0]})",
                 tables, lead=lead, notes=tuple(notes))


def compare_figure(result: CompareResult) -> go.Figure:
    """The report's first figure: the training curves where training ran, else every
    counting convention per model."""
    if not result.summary.history.empty:
        return figures.training_curves(result.summary.history, result.summary.finals)
    if isinstance(result.costs, CostsPart):
        return figures.conventions(result.costs.conventions)
    reason = result.costs.error if isinstance(result.costs, Failed) else "it was skipped"
    raise ValueError(f"no figure: training did not run and the costs section has none "
                     f"({reason})")
