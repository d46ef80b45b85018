"""Each measurement's tables by granularity (``by=``), shared by the API, the CLI and the jobs:
one place where rows are rolled up and labelled by their rules (``labels``), so every caller
gets the same columns."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace
from typing import Literal, cast, get_args

import pandas as pd

from resnet_probe.labels import with_bound, with_gradient_trend
from resnet_probe.results import CONVENTIONS, frame, rollup
from resnet_probe.stats import median_interval

COST_COLUMNS = ["params", *(m.column for m in CONVENTIONS)]
# Each measurement's views: the Literal types the API's ``by=`` takes, and their values.
CostView = Literal["model", "module", "block", "stage", "operator"]
LatencyView = Literal["model", "difference", "layer", "block", "stage", "sample", "sweep"]
GradientView = Literal["model", "block", "stage", "layer", "shattering"]
COST_VIEWS: tuple[str, ...] = get_args(CostView)
LATENCY_VIEWS: tuple[str, ...] = get_args(LatencyView)
GRADIENT_VIEWS: tuple[str, ...] = get_args(GradientView)
# The views whose rows need a foreign model's blocks and stages (found from its graph).
STRUCTURED_VIEWS = ("module", "block", "stage")
DYNAMICS_VIEWS = ("dynamics", "dynamics_layer")


def check_view(by: str, views: tuple[str, ...]) -> None:
    """Before anything is measured: a bad ``by`` names itself and the accepted views."""
    if by not in views:
        raise ValueError(f"unknown by={by!r}; choose one of: {', '.join(views)}")


def cost_view(results: list, by: str = "model") -> pd.DataFrame:
    """``results`` are CostResults. Block and stage rows are sums of module rows, so every
    view's totals equal the model's."""
    check_view(by, COST_VIEWS)
    if by == "model":
        return frame([r.summary for r in results])
    if by == "operator":
        return frame([row for r in results for row in r.operators])
    modules = frame([row for r in results for row in r.modules])
    return modules if by == "module" else rollup(modules, by, COST_COLUMNS)


class EmptyViewWarning(UserWarning):
    """A block or stage view has no rows for a model: none of its structure was found."""


def missing_structure(results: list, by: str) -> str | None:
    """Which models (CostResults) a block or stage view has no rows for, why, and the view
    that has them; None when every model has rows (or the view is not a roll-up)."""
    if by not in ("block", "stage"):
        return None
    missing = [r.summary["model"] for r in results
               if r.modules and not any(row.get("stage") or row.get("block")
                                        for row in r.modules)]
    if not missing:
        return None
    return (f"no {by}s found in {', '.join(map(str, missing))}: blocks are found by their "
            f"residual adds and stages between changes of spatial size, and "
            f"{'this model has' if len(missing) == 1 else 'these models have'} neither, so "
            f"the {by} view has no rows for {'it' if len(missing) == 1 else 'them'}; the "
            f"module view has them (--by module, or by_module())")


def latency_view(result, by: str = "model") -> pd.DataFrame:
    """``result`` is a LatencyResult. Layer rows carry their roofline ``bound``. Block and
    stage rows: ``sum_of_median_ms`` sums the layers' medians; ``median_ms`` with its 95%
    interval is the median over repeats of the block's (stage's) total in each repeat.
    ``difference``: each model against the first."""
    check_view(by, LATENCY_VIEWS)
    if by in ("block", "stage"):
        return rolled_up_times(frame(result.layers), frame(result.samples), by)
    if by == "layer":
        layers = frame(result.layers)
        return layers if layers.empty else with_bound(
            layers, result.environment["peak_gflops"], result.environment["peak_gbytes_per_s"])
    return frame({"model": result.models, "difference": result.comparisons,
                  "layer": result.layers, "sample": result.samples,
                  "sweep": result.sweep}[by])


def rolled_up_times(layers: pd.DataFrame, samples: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per block or stage and direction: the sum of layer medians, and the median over
    repeats of the per-repeat total with its bootstrap 95% interval."""
    summed = rollup(layers, by, ["median_ms"], keys=("model", "direction")
                    ).rename(columns={"median_ms": "sum_of_median_ms"})
    places = layers.assign(block=layers["block"].fillna(layers["stage"]))[
        ["model", "module", by]]
    per_repeat = (samples.merge(places, on=["model", "module"])
                  .groupby(["model", "direction", by, "repeat"], sort=False)["ms"].sum())
    intervals = []
    for key, totals in per_repeat.groupby(level=[0, 1, 2], sort=False):
        # pandas-stubs type a group's key as one scalar; three levels give three parts.
        model, direction, place = cast(tuple[Hashable, Hashable, Hashable], key)
        interval = median_interval(totals.tolist())
        intervals.append({"model": model, "direction": direction, by: place,
                          "median_ms": interval.estimate, "ci95_low_ms": interval.low,
                          "ci95_high_ms": interval.high})
    return summed.merge(frame(intervals), on=["model", "direction", by], how="left")


def gradient_view(result, by: str = "model") -> pd.DataFrame:
    """``result`` is a GradientResult. Model rows carry the ``gradient_trend`` label its rule
    gives; stage rows are the mean over the stage's blocks (and over seeds), with the
    within-stage ratio."""
    from resnet_probe.measure.gradients import stage_rates  # the result came from there

    check_view(by, GRADIENT_VIEWS)
    if by == "stage" and not result.blocks:  # no residual blocks: nothing to roll up
        return frame([])
    if by == "model":
        models = frame(result.models)
        return models if models.empty else with_gradient_trend(
            models, frame(stage_rates(result.stages)))
    if by == "stage":
        means = rollup(frame(result.blocks), "stage", ["act_grad_norm", "join_grad_norm",
                                                       "act_std", "variance_ratio"], how="mean")
        within = frame(result.stages).groupby(["model", "stage"], sort=False, as_index=False)[
            ["blocks", "within_stage_ratio"]].mean()
        merged = means.merge(within, on=["model", "stage"], how="left")
        rates = frame(stage_rates(result.stages))
        if rates.empty:
            return merged
        return merged.merge(rates[["model", "stage", "layers", "rate_per_layer",
                                   "rate_ci95_low", "rate_ci95_high"]],
                            on=["model", "stage"], how="left")
    return frame({"model": result.models, "block": result.blocks, "layer": result.layers,
                  "shattering": result.shattering}[by])


def measured_for(by: str, config):
    """A GradientConfig for one view: the shattering grid costs far more than the rest, so it
    is measured only where it is shown."""
    return config if by == "shattering" else replace(config, shatter_points=0)
