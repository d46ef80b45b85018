"""The zoo census behind `resnet-probe report`: every registered variant counted, and the
block designs compared across widths."""

from __future__ import annotations

from resnet_probe.jobs.parts import BottleneckPart, ZooPart
from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import CostResult, count_costs
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import frame
from resnet_probe.zoo import list_models

ZOO_COLUMNS = ("model", "family", "design", "block", "depth", "shortcut", "groups",
               "width_per_group", "widths", "shortcut_option", "input_size", "params", "macs",
               "macs_v1", "macs_fvcore_default", "macs_with_elementwise", "flops",
               "backward_flops", "partial")
CENSUS_WIDTHS = (16, 32, 64, 128, 256, 512)


def zoo_census(progress: Progress = NO_PROGRESS,
               counted: dict[str, CostResult] | None = None) -> ZooPart:
    """One row per registered name at its standard input, each block template's cost per
    width at 56x56, and the paper's Fig. 5 at width 64. ``counted`` reuses counts already
    made, by name."""
    rows = []
    for name in list_models():
        summary = ((counted or {}).get(name) or count_costs(name)).summary
        rows.append({key: summary[key] for key in ZOO_COLUMNS})
        progress.update(1)
    widths = [{"width": width, "design": total["template"], "weights": total["weights"],
               "mmacs": total["macs"] / 1e6}
              for width in CENSUS_WIDTHS
              for total in block_cost_totals(block_cost_rows(width, 56))]
    default_rows = block_cost_rows()
    return ZooPart(zoo=frame(rows), widths=frame(widths),
                   bottleneck=BottleneckPart(frame(default_rows),
                                             frame(block_cost_totals(default_rows))))
