"""Each measurement's tables by granularity (``by=``), shared by the API and the CLI."""

from __future__ import annotations

import pandas as pd

from resnet_probe.results import CONVENTIONS, frame, rollup

COST_COLUMNS = ["params", *(m.column for m in CONVENTIONS)]
COST_VIEWS = ("model", "module", "block", "stage", "operator")
LATENCY_VIEWS = ("model", "layer", "block", "stage", "sample", "sweep")
GRADIENT_VIEWS = ("model", "block", "stage", "layer", "shattering")


def _check(by: str, views: tuple[str, ...]) -> None:
    if by not in views:
        raise ValueError(f"unknown by={by!r}; choose one of: {', '.join(views)}")


def cost_view(results: list, by: str = "model") -> pd.DataFrame:
    """``results`` are CostResults. Block and stage rows are sums of module rows, so every
    view's totals equal the model's."""
    _check(by, COST_VIEWS)
    if by == "model":
        return frame([r.summary for r in results])
    if by == "operator":
        return frame([row for r in results for row in r.operators])
    modules = frame([row for r in results for row in r.modules])
    return modules if by == "module" else rollup(modules, by, COST_COLUMNS)


def latency_view(result, by: str = "model") -> pd.DataFrame:
    """``result`` is a LatencyResult. Block and stage rows sum the layers' medians per
    direction (``sum_of_median_ms``), which is not the block's own median."""
    _check(by, LATENCY_VIEWS)
    if by in ("block", "stage"):
        return rollup(frame(result.layers), by, ["median_ms"], keys=("model", "direction")
                      ).rename(columns={"median_ms": "sum_of_median_ms"})
    return frame({"model": result.models, "layer": result.layers, "sample": result.samples,
                  "sweep": result.sweep}[by])


def gradient_view(result, by: str = "model") -> pd.DataFrame:
    """``result`` is a GradientResult. Stage rows are the mean over the stage's blocks."""
    _check(by, GRADIENT_VIEWS)
    if by == "stage":
        return rollup(frame(result.blocks), "stage", ["act_grad_norm", "act_std"], how="mean")
    return frame({"model": result.models, "block": result.blocks, "layer": result.layers,
                  "shattering": result.shattering}[by])
