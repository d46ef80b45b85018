"""Labels that follow from a stated rule applied to measured numbers; made here, at the last
step, so measurements carry only the numbers."""

from __future__ import annotations

import math

import pandas as pd

# A whole-net ratio within this factor of 1 either way is called level, whatever fits.
LEVEL = 2.0


def gradient_trend(ratio: float, better_fit: str | None, exp_rate_per_layer: float,
                   power_exponent: float) -> str:
    """Rule: a first/last ratio within [1/2, 2] stays level. Otherwise the model that fits
    ||dL/ds|| against depth better over the seeds (the t interval of the per-seed R²
    difference excludes zero, see measure.gradients.fit_comparison) names the shape:
    exponential -> "explodes (vanishes) exponentially, x r per layer"; power law -> "grows
    (shrinks) polynomially, ~depth^-k"; neither -> the direction only."""
    if not math.isfinite(ratio) or better_fit is None:
        return "not measured"
    if 1 / LEVEL <= ratio <= LEVEL:
        return f"stays level (x{ratio:.2g} first/last)"
    toward_input = ratio > 1
    if better_fit == "neither":
        verb = "grows" if toward_input else "shrinks"
        return (f"{verb} toward the input (x{ratio:.3g} first/last); exponential and "
                f"power-law fits are not distinguishable over these seeds")
    if better_fit == "exponential":
        verb = "explodes" if toward_input else "vanishes"
        return f"{verb} exponentially toward the input (x{exp_rate_per_layer:.3g} per layer)"
    verb = "grows" if toward_input else "shrinks"
    return f"{verb} polynomially toward the input (~depth^{-power_exponent:.2g})"


def roofline_bound(flops: float, intensity: float, peak_gflops: float,
                   peak_gbytes_per_s: float) -> str:
    """Rule: a layer whose FLOPs per byte moved reach the ridge (peak compute / peak
    bandwidth) is compute-bound, below it memory-bound; a layer with no FLOPs has no bound."""
    if not flops or math.isnan(intensity):
        return "no arithmetic"
    return "compute-bound" if intensity >= peak_gflops / peak_gbytes_per_s else "memory-bound"


def with_gradient_trend(models: pd.DataFrame) -> pd.DataFrame:
    return models.assign(gradient_trend=[
        gradient_trend(r.grad_ratio_first_last, r.better_fit, r.exp_rate_per_layer,
                       r.power_exponent) for r in models.itertuples()])


def with_bound(layers: pd.DataFrame, peak_gflops: float, peak_gbytes_per_s: float
               ) -> pd.DataFrame:
    return layers.assign(bound=[roofline_bound(f, i, peak_gflops, peak_gbytes_per_s)
                                for f, i in zip(layers["flops"], layers["arithmetic_intensity"],
                                                strict=True)])
