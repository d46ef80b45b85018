"""Labels that follow from a stated rule applied to measured numbers; made here, at the last
step, so measurements carry only the numbers."""

from __future__ import annotations

import math

import pandas as pd

# Per-layer growth of ||dL/dx|| toward the input: thresholds of the words below.
EXPLODES, GROWS = 1.1, 1.02


def gradient_trend(growth_per_layer: float) -> str:
    """Rule: per-layer growth >= 1.1 explodes, >= 1.02 grows mildly, within 1.02 either way
    stays level, down to 1/1.1 shrinks mildly, below that vanishes."""
    if growth_per_layer >= EXPLODES:
        return "explodes toward the input"
    if growth_per_layer >= GROWS:
        return "grows mildly toward the input"
    if growth_per_layer > 1 / GROWS:
        return "stays level"
    if growth_per_layer > 1 / EXPLODES:
        return "shrinks mildly toward the input"
    return "vanishes toward the input"


def roofline_bound(flops: float, intensity: float, peak_gflops: float,
                   peak_gbytes_per_s: float) -> str:
    """Rule: a layer whose FLOPs per byte moved reach the ridge (peak compute / peak
    bandwidth) is compute-bound, below it memory-bound; a layer with no FLOPs has no bound."""
    if not flops or math.isnan(intensity):
        return "no arithmetic"
    return "compute-bound" if intensity >= peak_gflops / peak_gbytes_per_s else "memory-bound"


def with_gradient_trend(models: pd.DataFrame) -> pd.DataFrame:
    return models.assign(gradient_trend=models["growth_per_layer"].map(gradient_trend))


def with_bound(layers: pd.DataFrame, peak_gflops: float, peak_gbytes_per_s: float
               ) -> pd.DataFrame:
    return layers.assign(bound=[roofline_bound(f, i, peak_gflops, peak_gbytes_per_s)
                                for f, i in zip(layers["flops"], layers["arithmetic_intensity"],
                                                strict=True)])
