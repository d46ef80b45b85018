"""The zoo census behind `resnet-probe report`: every registered variant counted, and the
block designs compared across widths."""

from __future__ import annotations

import pandas as pd

from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import CostResult, count_costs
from resnet_probe.progress import Progress
from resnet_probe.results import frame
from resnet_probe.zoo import list_models

ZOO_COLUMNS = ("model", "family", "design", "block", "depth", "shortcut", "groups",
               "width_per_group", "widths", "shortcut_option", "input_size", "params", "macs",
               "macs_v1", "macs_fvcore_default", "macs_with_elementwise", "flops",
               "backward_flops", "partial")
CENSUS_WIDTHS = (16, 32, 64, 128, 256, 512)


def zoo_census(progress: Progress | None = None,
               counted: dict[str, CostResult] | None = None) -> dict[str, pd.DataFrame]:
    """Tables ``zoo`` (one row per registered name at its standard input), ``bottleneck_widths``
    (each block template's cost per width at 56x56), ``bottleneck`` and ``bottleneck_totals``
    (the paper's Fig. 5 at width 64). ``counted`` reuses counts already made, by name."""
    rows = []
    for name in list_models():
        summary = ((counted or {}).get(name) or count_costs(name)).summary
        rows.append({key: summary[key] for key in ZOO_COLUMNS})
        if progress is not None:
            progress.update(1)
    widths = [{"width": width, "design": total["template"], "weights": total["weights"],
               "mmacs": total["macs"] / 1e6}
              for width in CENSUS_WIDTHS
              for total in block_cost_totals(block_cost_rows(width, 56))]
    default_rows = block_cost_rows()
    return {"zoo": frame(rows), "bottleneck_widths": frame(widths),
            "bottleneck": frame(default_rows),
            "bottleneck_totals": frame(block_cost_totals(default_rows))}
