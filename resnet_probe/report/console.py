"""Console tables: the last step, where numbers become strings."""

from __future__ import annotations

import pandas as pd

from resnet_probe.report.html import format_value


def console_table(df: pd.DataFrame, columns: list[str] | None = None,
                  scale: dict[str, tuple[float, str]] | None = None) -> str:
    """Aligned text table. ``scale`` maps a column to (divisor, new header), e.g. GMACs."""
    if df.empty:
        return "(no rows)"
    view = df[[c for c in (columns or list(df.columns)) if c in df.columns]].copy()
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
