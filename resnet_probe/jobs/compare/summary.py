"""The first screen: per model the few numbers the comparison rests on, each with its interval,
the delta table against the baseline, and the training verdict in one line."""

from __future__ import annotations

import math

import pandas as pd

from resnet_probe.jobs.compare.gradients import seed_differences
from resnet_probe.jobs.parts import (
    CostsPart,
    Failed,
    GradientsPart,
    InProgress,
    LatencyPart,
    Skipped,
    SummaryPart,
    TrainingPart,
)
from resnet_probe.results import SUMMARY_COLUMNS, delta_table, frame
from resnet_probe.stats import RULE, positive_mean_interval


def summary_part(models: list[str], costs: CostsPart | Failed | Skipped,
                 latency: LatencyPart | Failed | Skipped,
                 gradients: GradientsPart | Failed | Skipped,
                 training: TrainingPart | InProgress | Failed | Skipped) -> SummaryPart:
    """Parts that did not finish (or failed, or were skipped) leave their columns out."""
    headline = frame([{"model": model} for model in models])
    columns: list[pd.DataFrame] = []
    differences = []
    if isinstance(costs, CostsPart):
        columns.append(costs.summary[["model", *[c for c in SUMMARY_COLUMNS
                                                 if c in costs.summary]]])
        headline = headline.merge(costs.summary[["model", "params", "macs"]], on="model",
                                  how="left")
    if isinstance(latency, LatencyPart) and not latency.models.empty:
        models_ = latency.models
        columns.append(models_[["model", "forward_ms", "backward_ms", "images_per_s"]])
        headline = headline.merge(models_[["model", "forward_ms", "forward_ms_ci95_low",
                                           "forward_ms_ci95_high"]], on="model", how="left")
        differences.append(latency.differences)
    if isinstance(gradients, GradientsPart) and not gradients.models.empty:
        columns.append(gradients.models[["model", "grad_ratio_first_last"]])
        headline = headline.merge(_seed_means(gradients.seeds, "grad_ratio_first_last"),
                                  on="model", how="left")
        differences.append(gradients.differences)
    verdict = twin_verdict = None
    history = finals = frame([])
    if isinstance(training, TrainingPart):
        history, finals = training.degradation.history, training.degradation.final
        final = training.degradation.final
        if not final.empty:
            means = final.groupby("model", as_index=False)[
                ["final_train_error", "final_test_error"]].mean()
            columns.append(means)
            for metric in ("final_train_error", "final_test_error"):
                headline = headline.merge(_seed_means(final, metric), on="model", how="left")
            differences.append(seed_differences(final, models, "final_train_error"))
        verdict = training.degradation.verdict
        twin_verdict = training.degradation.twin_verdict
    merged = frame([{"model": model} for model in models])
    for part in columns:
        merged = merged.merge(part, on="model", how="left")
    found = [d for d in differences if not d.empty]
    all_differences = pd.concat(found, ignore_index=True) if found else frame([])
    return SummaryPart(headline=headline,
                       deltas=delta_table(merged, SUMMARY_COLUMNS, uncertainty=all_differences),
                       differences=all_differences, verdict=verdict,
                       twin_verdict=twin_verdict, rule=RULE,
                       history=history, finals=finals)


def _seed_means(per_seed: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per model: the mean of ``metric`` over seeds with its 95% interval and seed count. Every
    summary metric is a positive quantity (a gradient ratio, an error rate at most 1): its
    interval is on the log scale (stats.positive_mean_interval), never below zero, and an
    error's never above 1."""
    upper = 1.0 if metric.endswith("_error") else None
    rows = []
    for model, group in per_seed.groupby("model", sort=False):
        values = [v for v in group[metric].tolist() if v == v and math.isfinite(v)]
        interval = positive_mean_interval(values, upper) if values else None
        rows.append({"model": model, metric: interval.estimate if interval else math.nan,
                     f"{metric}_ci95_low": interval.low if interval else math.nan,
                     f"{metric}_ci95_high": interval.high if interval else math.nan,
                     f"{metric}_seeds": len(values)})
    return frame(rows)

