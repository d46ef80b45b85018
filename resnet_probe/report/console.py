"""Console tables: the last step, where numbers become strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from resnet_probe.report.html import format_value
from resnet_probe.results import display_scales

if TYPE_CHECKING:
    from resnet_probe.analysis.why import WhyPart
    from resnet_probe.jobs.regression import BaselineUpdate, CheckResult
    from resnet_probe.measure.latency import LatencyResult
    from resnet_probe.sources import ModelSource


def _shown(df: pd.DataFrame, columns: list[str] | None,
           scale: dict[str, tuple[float, str]] | None) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells of the columns shown, scaled as the catalogue says (or as
    ``scale`` maps a column to (divisor, new header))."""
    view = df[[c for c in (columns or list(df.columns)) if c in df.columns]].copy()
    scale = display_scales(view) if scale is None else scale
    headers = []
    for column in view.columns:
        if scale and column in scale:
            divisor, header = scale[column]
            view[column] = view[column].map(
                lambda v, d=divisor: None if v is None or pd.isna(v) else v / d)
            headers.append(header)
        else:
            headers.append(column)
    return headers, [[format_value(v) for v in row] for row in view.itertuples(index=False)]


def markdown_table(df: pd.DataFrame, columns: list[str] | None = None,
                   scale: dict[str, tuple[float, str]] | None = None) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned, cells escaped."""
    if df.empty:
        return "_(no rows)_"
    headers, cells = _shown(df, columns, scale)
    numeric = [all(_looks_numeric(row[i]) for row in cells) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    rule = "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _looks_numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("-", "", 1).replace("e", "", 1) \
        .replace("+", "", 1).isdigit() or text == "—"


def console_table(df: pd.DataFrame, columns: list[str] | None = None,
                  scale: dict[str, tuple[float, str]] | None = None) -> str:
    """Aligned text table. ``scale`` maps a column to (divisor, new header); by default the
    metric catalogue's display scale (``macs`` in G under "macs (G)")."""
    if df.empty:
        return "(no rows)"
    headers, cells = _shown(df, columns, scale)
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


TABLE_WIDTH = 100


def conventions_table(df: pd.DataFrame, conventions: list[str], extra: Sequence[str] = (),
                      width: int = TABLE_WIDTH) -> str:
    """The `flops` summary for a console: one row per fact (inputs, params, each convention
    that applies, ``extra`` columns such as memory, partial, error), one column per model,
    each count in K, M or G (CSV and JSON keep the exact integers). ``macs_v1`` shows only
    where it differs from ``macs`` (a bottleneck zoo net); models wrap into blocks so that
    no line is wider than ``width``."""
    from resnet_probe.report.words import readable_count

    if df.empty:
        return "(no rows)"

    def applies(column: str) -> bool:
        if column not in df or not df[column].notna().any():
            return False
        if column == "macs_v1" and "macs" in df:
            return bool((df["macs_v1"].dropna() != df["macs"][df["macs_v1"].notna()]).any())
        return True

    facts = [c for c in ("inputs", "params", *conventions, *extra) if applies(c)]
    if "partial" in df and df["partial"].fillna(False).astype(bool).any():
        facts.append("partial")
    if "error" in df and df["error"].notna().any():
        facts.append("error")

    def cell(column: str, value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "—"
        if column == "partial":
            return "yes" if value else "no"
        if column in ("params", "trainable_params"):
            return f"{value:,.0f}"  # exact: a parameter count is checked to the unit
        if isinstance(value, (int, float, np.integer, np.floating)) and \
                not isinstance(value, (bool, np.bool_)):
            number = float(value)
            unit = " B" if column.endswith("_bytes") else ""
            return readable_count(number, digits=4) + unit if abs(number) >= 1e4 else \
                f"{number:,.0f}{unit}"
        return str(value)

    models = [str(m) for m in df["model"]]

    def value(fact: str, index: int) -> Any:
        if fact not in df:
            return None
        if fact == "macs_v1" and "stride_placement" in df and \
                pd.isna(df["stride_placement"].iloc[index]):
            return None  # a stride placement is the zoo's: not a fact of another model
        return df[fact].iloc[index]

    cells = [[cell(f, value(f, i)) for f in facts] for i in range(len(df))]
    label = max(len("model"), *(len(f) for f in facts))
    widths = [max(len(m), *(len(c) for c in column)) for m, column in zip(models, cells,
                                                                           strict=True)]
    blocks: list[list[int]] = []
    current: list[int] = []
    used = label
    for index, column_width in enumerate(widths):
        if current and used + 2 + column_width > width:
            blocks.append(current)
            current, used = [], label
        current.append(index)
        used += 2 + column_width
    blocks.append(current)
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines.append("  ".join(["model".ljust(label),
                                *(models[i].rjust(widths[i]) for i in block)]))
        lines.append("  ".join(["-" * label, *("-" * widths[i] for i in block)]))
        for row, fact in enumerate(facts):
            lines.append("  ".join([fact.ljust(label),
                                    *(cells[i][row].rjust(widths[i]) for i in block)]))
    return "\n".join(lines)


# torchinfo's rule, from torchinfo/layer_info.py (calculate_macs), said where its total is shown.
TORCHINFO_RULE = ("torchinfo multiplies each module's weights and biases by its output's batch "
                  "(a conv's by its output positions too): a Linear applied to every token "
                  "counts once per sample, norm layers count their weights, and matmuls a "
                  "forward makes itself (attention) count nothing")


def describe_counts(summary: dict[str, Any], torchinfo_total: int | None) -> list[str]:
    """What `show` prints beside torchinfo's summary: the project's counts in each convention
    (a CostResult's summary), then torchinfo's total labelled as its own, with the
    difference and its cause."""
    from resnet_probe.report.words import readable_count
    from resnet_probe.results import CONVENTIONS

    def count(value: int) -> str:
        readable = readable_count(value, digits=4)
        return f"{value:,}" if readable == f"{value:,}" else f"{readable} ({value:,})"

    lines = [f"resnet-probe counts (docs/counting.md), inputs {summary.get('inputs')}:",
             f"  params                 {summary['params']:,}"]
    for metric in CONVENTIONS:
        value = summary.get(metric.column)
        if value is None or (metric.column == "macs_v1" and
                             summary.get("stride_placement") is None):
            continue
        lines.append(f"  {metric.column:<22} {count(value)}  {metric.label}")
    if summary.get("partial"):
        lines.append(f"  partial: no formula for {summary.get('uncounted_operators')}")
    if torchinfo_total is not None:
        macs = summary["macs"]
        if torchinfo_total == macs:
            lines.append(f"torchinfo's Total mult-adds: {count(torchinfo_total)}, the same as "
                         f"macs")
        else:
            difference = torchinfo_total - macs
            relative = f" ({100 * difference / macs:+.3g}%)" if macs else ""
            lines.append(
                f"torchinfo's Total mult-adds: {count(torchinfo_total)}, "
                f"{count(abs(difference))} {'more' if difference > 0 else 'fewer'} than macs"
                f"{relative}: {TORCHINFO_RULE}")
    return lines


def torchinfo_text(summary: Any) -> tuple[str, int]:
    """torchinfo's summary as text without its own "Total mult-adds" line (describe_counts
    says it, labelled), and that total."""
    text = "\n".join(line for line in str(summary).splitlines()
                     if not line.startswith("Total mult-adds"))
    return text, int(summary.total_mult_adds)


def describe_model(source: ModelSource, input_size: int) -> str:
    """One line saying what a MODEL (a ModelSource) is: family, design, blocks, shortcuts,
    depth, input."""
    spec = source.spec
    name = source.text
    fed = (f"inputs {source.inputs.text()}" if source.inputs is not None
           else f"input {source.in_channels}x{input_size}x{input_size}")
    if spec is None:
        return f"{name}: a {source.kind} model, {fed}"
    stride = (f", stride on the {spec.stride_placement.value} conv"
              if spec.block.value == "bottleneck" else "")
    shortcut = (f"option {spec.shortcut_option.value} shortcuts" if spec.shortcut
                else "no shortcuts (plain)")
    groups = f", {spec.groups}x{spec.width_per_group}d" if spec.groups > 1 else ""
    order = "pre-activation " if spec.preact else ""
    return (f"{name}: {spec.family}-style {spec.design.value}, {order}{spec.block.value} blocks "
            f"{spec.layers}{groups}, {shortcut}{stride}, depth {spec.depth}, "
            f"{fed}")


def describe_baseline_update(update: BaselineUpdate) -> str:
    """One line for a BaselineUpdate: what was written, added, replaced and kept."""
    line = (f"wrote {update.path}: {len(update.added)} added, {len(update.replaced)} replaced, "
            f"{len(update.kept)} kept")
    for what, names in (("added", update.added), ("replaced", update.replaced)):
        line += f" ({what}: {', '.join(names)})" if names else ""
    return line


def describe_check(result: CheckResult) -> str:
    """One line for a regression CheckResult."""
    entries = len({r["model"] for r in result.rows})
    unusable = f"; {len(result.errors)} entries could not be checked" if result.errors else ""
    if result.drifts:
        return (f"cost check FAILED against {result.path}: {len(result.drifts)} value(s) "
                f"drifted in {len({d.model for d in result.drifts})} of {entries} entries "
                f"({result.tolerance.text()}){unusable}")
    if result.errors:
        return (f"cost check INCOMPLETE against {result.path}: {entries} entries match"
                f"{unusable} ({result.tolerance.text()})")
    return (f"cost check passed: {entries} entries, {len(result.rows)} values match "
            f"{result.path} ({result.tolerance.text()})")


def check_summary_markdown(result: CheckResult, line: str, columns: list[str]) -> str:
    """A cost check as Markdown for a CI summary page: a PASS or FAIL line first (whatever
    the outcome, so a passing run says so too), then the drift table, if any."""
    from resnet_probe.results import frame

    verdict = "FAIL" if result.exit_code else "PASS"
    block = f"**{verdict}**: {line}"
    if result.errors:
        block += "\n\n" + "\n".join(f"- entry `{name}` could not be checked: {reason}"
                                      for name, reason in result.errors.items())
    if result.drifts:
        block += "\n\n" + markdown_table(frame(result.drift_rows()), columns, scale={})
    return block


def latency_notes(result: LatencyResult) -> list[str]:
    """What a LatencyResult says beside its tables: warnings, failed models, the setting."""
    env = result.environment
    return [*(f"warning: {warning}" for warning in result.warnings),
            *(f"warning: {f['model']} batch {f['batch_size']}: {f['error']} (rows already "
              f"measured are kept)" for f in result.failures),
            f"device: {env['device']} ({env['device_name']}), threads {env['threads']}, "
            f"dtype {env['dtype']}, torch {env['torch_version']}"]


def analysis_notes(part: WhyPart) -> list[str]:
    """The nets left out and why, then each claim's outcome with its evidence (a WhyPart)."""
    notes = [*(f"note: not analysed: {skipped}" for skipped in part.not_analysed),
             *(f"note: did not train: {net}" for net in part.untrained)]
    from resnet_probe.report.words import findings_in_words

    for row in findings_in_words(part.findings).itertuples():
        notes.append(f"{row.claim}, depth {row.depth}: {row.outcome} ({row.evidence})")
    return notes
