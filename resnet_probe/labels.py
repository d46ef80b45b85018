"""Labels that follow from a stated rule applied to measured numbers; made here, at the last
step, so measurements carry only the numbers."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# A whole-net ratio within this factor of 1 either way is called level, whatever fits.
LEVEL = 2.0


def stage_trend(rate: float, low: float, high: float, layers: float) -> str:
    """One stage's direction by the rule of ``gradient_trend``: "level", "grows",
    "shrinks" or "unsettled"."""
    growth = rate ** layers if math.isfinite(rate) and layers else math.nan
    if not math.isfinite(growth):
        return "unsettled"
    if 1 / LEVEL <= growth <= LEVEL:
        return "level"
    if growth > LEVEL and low > 1:
        return "grows"
    if growth < 1 / LEVEL and high < 1:
        return "shrinks"
    return "unsettled"  # the interval holds 1, or one seed gives none


def gradient_trend(ratio: float, stages: list[dict[str, Any]]) -> str:
    """Rule, from the per-stage rates (measure.gradients.stage_rates; a projection's BN
    resets the stream at each stage, so one fit across stages would describe a sawtooth):
    a stage whose growth over its layers, rate^layers, lies within [1/2, 2] is level; else
    it grows (shrinks) toward the input when the 95% interval of its rate lies above (below)
    1, and is unsettled otherwise. When every stage says the same, the trend says it once
    with the range of rates; else stage by stage. The whole-net first/last ratio follows."""
    if not math.isfinite(ratio):
        return "not measured"
    whole = f"x{ratio:.3g} first/last over the whole net"
    if not stages:
        return f"no stage has two blocks to fit; {whole}"
    kinds = [stage_trend(s["rate_per_layer"], s["rate_ci95_low"], s["rate_ci95_high"],
                         s["layers"]) for s in stages]
    rates = [s["rate_per_layer"] for s in stages]
    span = (f"x{min(rates):.3g} per layer" if f"{min(rates):.3g}" == f"{max(rates):.3g}"
            else f"x{min(rates):.3g} to x{max(rates):.3g} per layer")
    if len(set(kinds)) == 1:
        kind = kinds[0]
        said = {"level": "stays level within every stage",
                "grows": "grows toward the input within every stage",
                "shrinks": "shrinks toward the input within every stage",
                "unsettled": "has no settled direction within any stage"}[kind]
        return f"{said} ({span}); {whole}"
    each = ", ".join(f"{s['stage']} {kind} (x{s['rate_per_layer']:.3g}/layer)"
                     for s, kind in zip(stages, kinds, strict=True))
    return f"differs by stage: {each}; {whole}"


def roofline_bound(flops: float, intensity: float, peak_gflops: float,
                   peak_gbytes_per_s: float) -> str:
    """Rule: a layer whose FLOPs per byte moved reach the ridge (peak compute / peak
    bandwidth) is compute-bound, below it memory-bound; a layer with no FLOPs has no bound."""
    if not flops or math.isnan(intensity):
        return "no arithmetic"
    return "compute-bound" if intensity >= peak_gflops / peak_gbytes_per_s else "memory-bound"


def with_gradient_trend(models: pd.DataFrame, stage_rates: pd.DataFrame) -> pd.DataFrame:
    """``models`` with the ``gradient_trend`` label, from each model's rows of
    ``stage_rates`` (measure.gradients.stage_rates)."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in stage_rates.to_dict("records"):
        by_model.setdefault(str(row["model"]), []).append({str(k): v for k, v in row.items()})
    return models.assign(gradient_trend=[
        gradient_trend(float(row["grad_ratio_first_last"]), by_model.get(str(row["model"]), []))
        for row in models.to_dict("records")])


def with_bound(layers: pd.DataFrame, peak_gflops: float, peak_gbytes_per_s: float
               ) -> pd.DataFrame:
    return layers.assign(bound=[roofline_bound(f, i, peak_gflops, peak_gbytes_per_s)
                                for f, i in zip(layers["flops"], layers["arithmetic_intensity"],
                                                strict=True)])
