"""One baseline entry: the metrics it can pin, the request that measures it, the record kept.

A ``Request`` names the model and every input that changes its counts (the MODEL text or an
``nn.Module``, the input size or ``--input`` spec, the batch size, the metrics pinned).
``entry_of`` turns its measurement into the record a baseline keeps: the MODEL text made
portable, the input, the library versions, and the values for the whole model and per group:
per stage for zoo nets (their structure is known), per top-level module for any other model
(no graph tracing needed, so a check stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.regression.portability import FOREIGN_KINDS, portable, versions
from resnet_probe.measure.costs import CostResult, count_costs
from resnet_probe.measure.memory import MEMORY_COLUMNS
from resnet_probe.sources import InputSpec, ModelSource, resolve
from resnet_probe.sources.recorded import Recorded

DEFAULT_METRICS = ("params", "macs")
# What a baseline can pin: the summary's counts (every convention) and memory (bytes).
COUNT_METRICS = ("params", "trainable_params", "macs", "flops", "macs_with_elementwise",
                 "macs_fvcore_default", "backward_flops")
MEMORY_METRICS = tuple(c for c in MEMORY_COLUMNS if c != "cuda_measured_peak_bytes")
METRICS = COUNT_METRICS + MEMORY_METRICS
# The metrics each module row carries, so a group's value is the sum of its rows.
GROUP_METRICS = ("params", "trainable_params", "macs", "flops", "macs_with_elementwise",
                 "macs_fvcore_default", "backward_flops", "activation_bytes")


@dataclass(frozen=True)
class Request:
    """What one entry measures: the model and every input that changes its counts."""

    model: Any  # MODEL text, or an nn.Module (the pytest plugin's; no text to rebuild it)
    input_size: int | None = None
    in_channels: int | None = None
    inputs: InputSpec | None = None
    batch_size: int = 1
    metrics: tuple[str, ...] = DEFAULT_METRICS
    # Where ``model`` was read, when a file named it: then it is resolved as data.
    recorded: Recorded | None = None
    # The tensors ``inputs`` was taken from (the pytest fixture's): counted as given, values
    # too (a sorted lengths tensor stays sorted), rather than redrawn from the spec.
    example: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise InvalidRequest(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose from: {', '.join(METRICS)}")

    @property
    def label(self) -> str:
        if isinstance(self.model, str):
            return self.model
        return getattr(self.model, "name", None) or type(self.model).__name__

    def source(self) -> ModelSource:
        model = self.recorded.checked(self.model) if self.recorded is not None else self.model
        return resolve(model, self.in_channels, self.input_size, inputs=self.inputs)

    def measure(self) -> CostResult:
        memory = any(m in MEMORY_METRICS for m in self.metrics)
        if self.example is not None:
            return count_costs(self.source(), structure=False, memory=memory,
                               example=self.example)
        return count_costs(self.source(), None if self.inputs else self.input_size,
                           self.batch_size, structure=False, memory=memory)


def entry_of(request: Request, result: CostResult, baseline_dir: Path) -> dict[str, Any]:
    """The record a baseline keeps for ``request``, measured as ``result``."""
    grouped_by, groups = _groups(result, request.metrics)
    return {
        "model": portable(request.label, baseline_dir) if isinstance(request.model, str)
        else request.label,
        "input_size": result.summary["input_size"] if request.inputs is None else None,
        "in_channels": request.in_channels,
        "inputs": request.inputs.record() if request.inputs is not None else None,
        "batch_size": request.batch_size,
        "versions": versions(result.summary["family"]),
        "metrics": {m: result.summary[m] for m in request.metrics
                    if result.summary.get(m) is not None},
        "grouped_by": grouped_by,
        "groups": groups,
    }


def _groups(result: CostResult, metrics: tuple[str, ...]
            ) -> tuple[str, dict[str, dict[str, Any]]]:
    """Per stage for a zoo net, else per top-level module: the sum of its rows."""
    pinned = [m for m in metrics if m in GROUP_METRICS]
    staged = result.summary["family"] not in FOREIGN_KINDS
    group_of = {}
    for row in result.modules:
        name = row["module"]
        group_of[name] = (row["stage"] or "model") if staged else \
            ("(model)" if name == "(model)" else name.split(".")[0])
    groups: dict[str, dict[str, int]] = {}
    for row in result.modules:
        totals = groups.setdefault(group_of[row["module"]], {})
        for metric in pinned:
            if metric != "activation_bytes" and row.get(metric) is not None:
                totals[metric] = totals.get(metric, 0) + row[metric]
    if "activation_bytes" in pinned:
        for row in result.memory[:-1]:  # per module, then the model's row
            module = row["module"]
            group = group_of.get(module) or ("(model)" if module.startswith("(") else
                                             module.split(".")[0])
            totals = groups.setdefault(group, {})
            totals["activation_bytes"] = totals.get("activation_bytes", 0) + \
                row["activation_bytes"]
    return ("stage" if staged else "top-level module"), groups
