"""How the gradient grows with depth, fitted from the per-block rows of the probe.

* per model: ``grad_ratio_first_last`` = ||dL/dx_first|| / ||dL/dx_last|| over block outputs
  (``first_last_ratio``), where first is the block nearest the input. Above 1 means gradients
  grow toward the input (explode), below 1 that they vanish. ``growth_per_layer`` is that ratio
  spread evenly over the weighted layers between the two blocks (Yang et al. 2019 predict about
  1.21 for plain BN-ReLU stacks at init);
* per stage: ``rate_per_layer``, the factor per layer of ||dL/ds|| fitted within the stage
  (``stage_rate``), and its mean over seeds with a log-scale interval (``stage_rates``). A
  projection shortcut's BN resets the stream at each stage, so the whole-net curve is a
  sawtooth: the per-stage rates, not one fit across stages, say how the gradient grows
  (``labels.gradient_trend`` names the trend from them). The whole-net fits
  (``growth_fits``, ``fit_comparison``) are kept as numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from resnet_probe.stats import positive_mean_interval, seed_estimate


def first_last_ratio(rows: list[dict[str, Any]]) -> float:
    """||dL/ds|| at the first block's join over the last block's."""
    first, last = rows[0]["join_grad_norm"], rows[-1]["join_grad_norm"]
    return first / last if last else math.inf


def growth_fits(depths: list[float], norms: list[float]) -> dict[str, Any]:
    """Fit ||dL/ds|| against depth l (weighted layers from the input) two ways, each a
    straight line in log space with two parameters, so their R² (of log g) compare directly:

    * exponential, log g = a - l log r: a constant factor r per layer toward the input, what
      plain BN-ReLU stacks show;
    * power law, log g = a - k log l: g ~ l^-k, growth concentrated in the first layers, what
      residual nets show when each block adds a shrinking share to the stream's variance.

    ``exp_rate_per_layer`` is r (above 1: growing toward the input); ``power_exponent`` is k.
    """
    points = [(d, g) for d, g in zip(depths, norms, strict=True)
              if math.isfinite(g) and g > 0 and d > 0]
    if len({d for d, _ in points}) < 3:
        return {"exp_rate_per_layer": math.nan, "exp_r2": math.nan, "power_exponent": math.nan,
                "power_r2": math.nan, "better_fit": None}
    depth = np.array([d for d, _ in points], dtype=float)
    log_norm = np.log([g for _, g in points])
    exponential = scipy_stats.linregress(depth, log_norm)
    power = scipy_stats.linregress(np.log(depth), log_norm)
    exp_r2, power_r2 = exponential.rvalue ** 2, power.rvalue ** 2
    return {"exp_rate_per_layer": float(np.exp(-exponential.slope)), "exp_r2": float(exp_r2),
            "power_exponent": float(-power.slope), "power_r2": float(power_r2),
            "better_fit": "exponential" if exp_r2 > power_r2 else "power law"}


def fit_comparison(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Which shape fits ||dL/ds|| against depth better, decided over seeds: per seed, the power
    law's R² minus the exponential's, with its t interval (resnet_probe.stats). ``better_fit``
    is the power law or the exponential when the interval excludes zero, else "neither"."""
    per_seed = {}
    for seed in sorted({r["seed"] for r in blocks}):
        rows = [r for r in blocks if r["seed"] == seed]
        seed_fits = growth_fits([r["depth"] for r in rows], [r["join_grad_norm"] for r in rows])
        if math.isfinite(seed_fits["power_r2"]) and math.isfinite(seed_fits["exp_r2"]):
            per_seed[seed] = seed_fits["power_r2"] - seed_fits["exp_r2"]
    estimate = seed_estimate("power R² - exponential R²", per_seed)
    better = ("power law" if estimate.above_zero else "exponential" if estimate.below_zero
              else "neither" if per_seed else None)
    return {"r2_power_minus_exp": estimate.estimate,
            "r2_power_minus_exp_ci95_low": estimate.low,
            "r2_power_minus_exp_ci95_high": estimate.high, "better_fit": better}


def within_stage_ratios(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, seed and stage: the join gradient at the stage's first block over its last,
    so the growth inside stages is seen apart from what stage transitions (option A's zero
    padding, projections) do to the whole-net ratio (1 for identity blocks); and
    ``rate_per_layer``, the stage's own exponential fit (``stage_rate``) over its ``layers``
    (the depth from its first block's output to its last's)."""
    rows = []
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for row in blocks:
        keyed.setdefault((row["model"], row["seed"], row["stage"]), []).append(row)
    for (model, seed, stage), members in keyed.items():
        members = sorted(members, key=lambda r: r["depth"])
        first, last = members[0]["join_grad_norm"], members[-1]["join_grad_norm"]
        rows.append({"model": model, "seed": seed, "stage": stage, "blocks": len(members),
                     "within_stage_ratio": first / last if last else math.nan,
                     "layers": members[-1]["depth"] - members[0]["depth"],
                     "rate_per_layer": stage_rate([r["depth"] for r in members],
                                                  [r["join_grad_norm"] for r in members])})
    return rows


def stage_rate(depths: list[float], norms: list[float]) -> float:
    """r in ||dL/ds|| ~ r^-l within one stage: exp(-slope) of the least-squares line of
    log ||dL/ds|| against depth l (above 1: growing toward the input). A projection
    shortcut's BN resets the stream at each stage, so the curve of a whole net is a sawtooth
    and one line across stages fits neither its teeth nor its resets; NaN with fewer than two
    depths."""
    points = [(d, g) for d, g in zip(depths, norms, strict=True)
              if d is not None and math.isfinite(g) and g > 0]
    if len({d for d, _ in points}) < 2:
        return math.nan
    slope = np.polyfit([d for d, _ in points], np.log([g for _, g in points]), 1)[0]
    return float(np.exp(-slope))


def stage_rates(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and stage (network order), over seeds: ``rate_per_layer``, the mean of the
    per-seed rates with its 95% interval on the log scale (a rate cannot be negative:
    ``resnet_probe.stats.positive_mean_interval``), ``rate_ci95_low`` / ``rate_ci95_high``,
    ``layers``, ``blocks`` and ``seeds``. Stages of one block have no rate and no row."""
    keyed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in stages:
        if row.get("rate_per_layer") is not None and math.isfinite(row["rate_per_layer"]):
            keyed.setdefault((row["model"], row["stage"]), []).append(row)
    rows = []
    for (model, stage), members in keyed.items():
        interval = positive_mean_interval([r["rate_per_layer"] for r in members])
        rows.append({"model": model, "stage": stage, "blocks": members[0]["blocks"],
                     "layers": members[0]["layers"], "seeds": len(members),
                     "rate_per_layer": interval.estimate, "rate_ci95_low": interval.low,
                     "rate_ci95_high": interval.high})
    return rows
