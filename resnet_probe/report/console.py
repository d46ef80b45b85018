"""Console tables: the last step, where numbers become strings."""

from __future__ import annotations

import pandas as pd

from resnet_probe.report.html import format_value
from resnet_probe.results import display_scales


def console_table(df: pd.DataFrame, columns: list[str] | None = None,
                  scale: dict[str, tuple[float, str]] | None = None) -> str:
    """Aligned text table. ``scale`` maps a column to (divisor, new header); by default the
    metric catalogue's display scale (``macs`` in G under "macs (G)")."""
    if df.empty:
        return "(no rows)"
    view = df[[c for c in (columns or list(df.columns)) if c in df.columns]].copy()
    scale = display_scales(view.columns) if scale is None else scale
    headers = []
    for column in view.columns:
        if scale and column in scale:
            divisor, header = scale[column]
            view[column] = view[column].map(
                lambda v, d=divisor: None if v is None or pd.isna(v) else v / d)
            headers.append(header)
        else:
            headers.append(column)
    cells = [[format_value(v) for v in row]
             for row in view.itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def describe_model(source, input_size: int) -> str:
    """One line saying what a MODEL (a ModelSource) is: family, design, blocks, shortcuts,
    depth, input."""
    spec = source.spec
    name = source.text
    if spec is None:
        return (f"{name}: a {source.kind} model (blocks and stages found from its graph), "
                f"input {source.in_channels}x{input_size}x{input_size}")
    stride = (f", stride on the {spec.stride_placement.value} conv"
              if spec.block.value == "bottleneck" else "")
    shortcut = (f"option {spec.shortcut_option.value} shortcuts" if spec.shortcut
                else "no shortcuts (plain)")
    groups = f", {spec.groups}x{spec.width_per_group}d" if spec.groups > 1 else ""
    order = "pre-activation " if spec.preact else ""
    return (f"{name}: {spec.family}-style {spec.design.value}, {order}{spec.block.value} blocks "
            f"{spec.layers}{groups}, {shortcut}{stride}, depth {spec.depth}, "
            f"input {input_size}x{input_size}")
