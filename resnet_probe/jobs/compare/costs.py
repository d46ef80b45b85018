"""The costs section: params and MACs in every convention, per layer and stage, memory, the
architecture side by side, and the bottleneck blocks' cost."""

from __future__ import annotations

from typing import Any

from resnet_probe.jobs.compare.plan import Plan, size_for
from resnet_probe.jobs.parts import BottleneckPart, CostsPart
from resnet_probe.measure.architecture import architecture_rows
from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import count_costs, stage_costs
from resnet_probe.progress import Progress
from resnet_probe.results import CONVENTIONS, frame


def costs_part(plan: Plan, progress: Progress) -> CostsPart:
    progress.set_description("counting params and MACs")
    costs = [count_costs(source, input_size=size_for(plan, source), memory=True)
             for source in plan.sources]
    rows = block_cost_rows(plan.options.bottleneck_width, plan.options.bottleneck_size)
    progress.update(1)
    return CostsPart(
        summary=frame([c.summary for c in costs]),
        layers=frame([row for c in costs for row in c.modules]),
        stages=frame([row for c in costs for row in stage_costs(c)]),
        operators=frame([row for c in costs for row in c.operators]),
        conventions=frame([row for c in costs for row in convention_rows(c.summary)]),
        memory=frame([row for c in costs for row in c.memory]),
        architecture=frame([row for source in plan.sources
                            for row in architecture_rows(source, size_for(plan, source))]),
        bottleneck=BottleneckPart(frame(rows), frame(block_cost_totals(rows))))


def convention_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every convention for one model, named, with who reports numbers that way."""
    return [{"model": summary["model"], "convention": metric.label,
             "value": summary[metric.column], "unit": metric.unit,
             "reported_by": metric.reported_by,
             "giga": summary[metric.column] / 1e9 if summary[metric.column] is not None
             else None,
             "partial": summary["partial"], "uncounted_operators": summary["uncounted_operators"]}
            for metric in CONVENTIONS]
