"""The numbers that answer a ResNet tutorial's claims, taken from one run's tables (the same
tables its CSV and JSON files hold, so ``docs/generate.py`` can read them from a recorded run).
``report.words`` says each in words; the compare report shows them in a compact block."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ErrorsByDepth:
    """Final training and test error (mean over seeds) of the plain or the residual nets,
    shallowest first."""

    shortcut: bool
    models: tuple[str, ...]
    depths: tuple[int, ...]
    train: tuple[float, ...]
    test: tuple[float, ...]


def errors_by_depth(final: pd.DataFrame) -> list[ErrorsByDepth]:
    """``final``: the training part's final table (train_final)."""
    if final.empty or "final_test_error" not in final:
        return []
    means = final.groupby(["shortcut", "depth", "model"], as_index=False, sort=True)[
        ["final_train_error", "final_test_error"]].mean()
    found = []
    for shortcut, group in means.groupby("shortcut", sort=True):
        group = group.sort_values("depth")
        found.append(ErrorsByDepth(bool(shortcut), tuple(group["model"]),
                                   tuple(int(d) for d in group["depth"]),
                                   tuple(group["final_train_error"]),
                                   tuple(group["final_test_error"])))
    return found


@dataclass(frozen=True)
class GradientRatio:
    """The first block's gradient norm over the last block's at init, mean over seeds with
    its 95% interval."""

    model: str
    shortcut: bool
    ratio: float
    low: float
    high: float
    seeds: int


def gradient_ratios(headline: pd.DataFrame, gradient_models: pd.DataFrame
                    ) -> list[GradientRatio]:
    """``headline``: the summary's (ratio with interval per model); ``gradient_models``: the
    gradients part's models table (which nets have shortcuts)."""
    if "grad_ratio_first_last" not in headline or gradient_models.empty:
        return []
    shortcut = {str(row["model"]): bool(row["shortcut"])
                for row in gradient_models.to_dict("records")}
    found = []
    for row in headline.to_dict("records"):
        model, ratio = str(row["model"]), row.get("grad_ratio_first_last")
        if model not in shortcut or ratio is None or ratio != ratio:
            continue
        seeds = row.get("grad_ratio_first_last_seeds")
        found.append(GradientRatio(model, shortcut[model], float(ratio),
                                   float(row.get("grad_ratio_first_last_ci95_low", math.nan)),
                                   float(row.get("grad_ratio_first_last_ci95_high", math.nan)),
                                   int(seeds) if seeds == seeds and seeds else 0))
    return found


def within_stage_ratios(stages: pd.DataFrame, gradient_models: pd.DataFrame
                        ) -> dict[str, float]:
    """Per residual net: the join gradient at a stage's first block over its last, over the
    stages with more than one block (identity blocks only), mean over stages and seeds."""
    if stages.empty or gradient_models.empty:
        return {}
    residual = set(gradient_models.loc[gradient_models["shortcut"].astype(bool), "model"])
    inside = stages[(stages["blocks"] > 1) & stages["model"].isin(residual)]
    inside = inside[np.isfinite(inside["within_stage_ratio"].astype(float))]
    return {str(model): float(group["within_stage_ratio"].mean())
            for model, group in inside.groupby("model", sort=False)}


@dataclass(frozen=True)
class ShortcutCost:
    """What a residual net's shortcuts cost against its plain twin in the same run (when the
    run has one): identity blocks, parameters in projections, the residual adds' elements."""

    model: str
    twin: str | None
    params_over_twin: int | None  # params(model) - params(twin)
    identity_blocks: int
    projections: int
    projection_params: int
    add_elements: int
    macs: int


def shortcut_costs(summary: pd.DataFrame, layers: pd.DataFrame, operators: pd.DataFrame,
                   architecture: pd.DataFrame) -> list[ShortcutCost]:
    """From the costs part's tables: ``summary`` (one row per model), ``layers`` (per module,
    with its role), ``operators`` (per operator), ``architecture`` (per stage)."""
    if summary.empty or "shortcut" not in architecture:
        return []
    stages = architecture[~architecture["stage"].isin(["stem", "head"])]
    residual = {str(m): bool(s) for m, s in
                stages.groupby("model", sort=False)["shortcut"].any().items()}
    by_model = {str(row["model"]): row for row in summary.to_dict("records")}
    found = []
    for model, has_shortcut in residual.items():
        if not has_shortcut or model not in by_model:
            continue
        mine = by_model[model]
        twins = [m for m, s in residual.items() if not s and m in by_model
                 and by_model[m].get("depth") == mine.get("depth")]
        twin = twins[0] if twins else None
        identities = pd.to_numeric(stages.loc[stages["model"] == model, "identity_blocks"],
                                   errors="coerce").fillna(0).sum() \
            if "identity_blocks" in stages else 0
        # Option A's zero-padding sits on the shortcut too, with no parameters: not a projection
        projections = layers[(layers["model"] == model) & (layers["role"] == "shortcut")
                             & (layers["params"] > 0)] if "role" in layers else layers.iloc[0:0]
        adds = operators[(operators["model"] == model) & (operators["direction"] == "forward")
                         & (operators["operator"] == "aten.add")]
        found.append(ShortcutCost(
            model=model, twin=twin,
            params_over_twin=int(mine["params"]) - int(by_model[twin]["params"])
            if twin else None,
            identity_blocks=int(identities),
            projections=int(projections["block"].nunique()) if not projections.empty else 0,
            projection_params=int(projections["params"].sum()),
            add_elements=int(adds["macs"].sum()) if not adds.empty else 0,
            macs=int(mine["macs"])))
    return found


@dataclass(frozen=True)
class BottleneckSaving:
    """The bottleneck explainer's numbers: a bottleneck block at 4d channels against a basic
    block at d and at 4d, the same spatial size."""

    bottleneck_weights: int
    bottleneck_macs: int
    basic_macs: int
    wide_macs: int
    wide_over_bottleneck: float


def bottleneck_saving(totals: pd.DataFrame) -> BottleneckSaving | None:
    if totals.empty:
        return None
    by = {str(row["template"]): row for row in totals.to_dict("records")}
    if not {"bottleneck at 4d", "basic at d", "basic at 4d"} <= set(by):
        return None
    bottleneck, basic, wide = by["bottleneck at 4d"], by["basic at d"], by["basic at 4d"]
    return BottleneckSaving(int(bottleneck["weights"]), int(bottleneck["macs"]),
                            int(basic["macs"]), int(wide["macs"]),
                            float(wide["macs_vs_bottleneck"]))


def bn_biases(layers: pd.DataFrame, architecture: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per post-activation net: (biases its convs would carry, its params). Each BN there
    follows a conv without a bias and holds 2 parameters per channel; a bias on that conv
    would add one per channel, which the BN's shift makes redundant."""
    if layers.empty or "type" not in layers:
        return {}
    preact = {str(m): bool(p) for m, p in architecture.groupby("model")["preact"].any().items()} \
        if "preact" in architecture else {}
    found = {}
    for model, group in layers.groupby("model", sort=False):
        if preact.get(str(model), True):  # unknown or pre-activation: no BN follows a conv
            continue
        norms = group[group["type"] == "BatchNorm2d"]
        found[str(model)] = (int(norms["params"].sum() // 2), int(group["params"].sum()))
    return found
