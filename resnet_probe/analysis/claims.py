"""The papers' claims about why residual nets train, each tested on the analyses' tables by the
rule FINDINGS_RULE states: one row per (claim, depth)."""

from __future__ import annotations

import math
import statistics
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from resnet_probe.analysis.measurements import WhyTables
from resnet_probe.results import frame
from resnet_probe.stats import mean_interval
from resnet_probe.train.verdict import TRAINED_FRACTION

LOW_LOSS = 0.5  # cross-entropy at the trained weights below which a net sits near a minimum
FINDINGS_RULE = (
    "Each claim is tested at one depth, paired by seed, with a Student-t 95% interval over the "
    "seeds (resnet_probe.stats): it holds when the interval lies wholly on the claimed side "
    "of zero, does not hold when it lies wholly on the other side, is 'not measurable' when "
    "it contains zero, and needs 2 seeds with one. A claim is 'inconclusive' when a net it "
    "compares did not train: for lesions, its own test error is not below 3/4 of chance (it "
    "has no room to lose); for the landscape and the Hessian, its training loss at the "
    f"trained weights is not below {LOW_LOSS} (it is not at a minimum). Lesion: the mean "
    "relative rise, (error - own error) / (chance - own error), over the deletable "
    "non-downsampling blocks, plain minus residual (claim: > 0). Lesion curve: k_half, the "
    "number of deleted blocks that takes a net halfway to chance, residual minus plain "
    "(claim: > 0). Paths: half the number of blocks minus the effective path length of the "
    "residual net (claim: > 0, the gradient comes from short paths). Responses: mean over "
    "rank positions of log10(residual std / plain std) in the sorted curves (claim: < 0). "
    "Landscape: the relative loss rise at ±0.5, averaged over the directions, plain minus "
    "residual (claim: > 0). Hessian: |λmin/λmax|, plain minus residual (claim: > 0).")


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    NOT_MEASURABLE = "not measurable"
    TOO_FEW_SEEDS = "needs 2 seeds"
    INCONCLUSIVE = "inconclusive: a net did not train"


def findings(tables: WhyTables, classes: int = 10) -> pd.DataFrame:
    """One row per (claim, depth): the per-seed values, the paired difference, the outcome
    under FINDINGS_RULE and the evidence in words."""
    bar = TRAINED_FRACTION * (1 - 1 / classes)
    rows = []
    if not tables.lesion_blocks.empty:
        lesions = tables.lesion_blocks
        deletable = lesions.dropna(subset=["error"])
        deletable = deletable[~deletable["downsampling"].astype(bool)]
        rise = deletable.groupby(["net_depth", "shortcut", "seed"])["relative_rise"].mean()
        rows += _claim("one block deleted: relative error rise (plain − residual)", rise,
                       expect_positive=True, untrained=_untrained(lesions, "baseline_error",
                                                                  bar))
    if not tables.lesion_count.empty:
        curves = tables.lesion_count.drop_duplicates(["net_depth", "shortcut", "seed"])
        half = curves.set_index(["net_depth", "shortcut", "seed"])["k_half"]
        baselines = tables.lesion_count[tables.lesion_count["removed"] == 0]
        rows += _claim("k blocks deleted: k_half (residual − plain)", half,
                       expect_positive=True, untrained=_untrained(baselines, "error", bar),
                       sign=-1)
    if not tables.paths.empty:
        paths = tables.paths.drop_duplicates(["net_depth", "seed"])
        margin = (paths["blocks"] / 2 - paths["effective_length"]).to_numpy()
        index = pd.MultiIndex.from_arrays([paths["net_depth"], paths["seed"]],
                                          names=["net_depth", "seed"])
        rows += _claim("paths: half the blocks − the effective path length (residual)",
                       pd.Series(margin, index=index), expect_positive=True,
                       already_paired=True)
    if not tables.responses.empty:
        rows += _claim("sorted response std: mean log10(residual / plain)",
                       _response_log_ratio(tables.responses), expect_positive=False,
                       already_paired=True, expected_sign="below zero (He et al. Fig. 7)")
    if "relative_rise" in tables.landscape_summary:
        summary = tables.landscape_summary
        rise = summary.set_index(["net_depth", "shortcut", "seed"])["relative_rise"]
        rows += _claim("1-D slices: relative loss rise at ±0.5 (plain − residual)", rise,
                       expect_positive=True,
                       untrained=_untrained(summary, "loss_at_0", LOW_LOSS))
    if not tables.hessian.empty:
        hessian = tables.hessian
        ratio = hessian.set_index(["net_depth", "shortcut", "seed"])["min_max_ratio"]
        rows += _claim("Hessian: |λmin/λmax| (plain − residual)", ratio, expect_positive=True,
                       untrained=_untrained(hessian, "loss", LOW_LOSS))
    return frame(rows)


def _untrained(table: pd.DataFrame, column: str, bar: float) -> dict[tuple[int, int], str]:
    """(depth, seed) -> the nets there whose ``column`` is not below ``bar``, in words."""
    found: dict[tuple[int, int], str] = {}
    for row in table.drop_duplicates(["model", "seed"]).itertuples():
        value = getattr(row, column)
        if not value < bar:
            key = (int(row.net_depth), int(row.seed))
            found[key] = ", ".join(filter(None, [found.get(key), f"{row.model} seed "
                                                 f"{row.seed} ({column} {value:.3f})"]))
    return found


def _response_log_ratio(responses: pd.DataFrame) -> pd.Series:
    values = {}
    for (depth, seed), group in responses.groupby(["net_depth", "seed"]):
        curves = {shortcut: np.sort(g["response_std"].to_numpy())[::-1]
                  for shortcut, g in group.groupby("shortcut")}
        if len(curves) == 2 and len(curves[True]) == len(curves[False]):
            values[(depth, seed)] = float(np.mean(np.log10(curves[True] / curves[False])))
    index = pd.MultiIndex.from_tuples(list(values), names=["net_depth", "seed"])
    return pd.Series(list(values.values()), index=index, dtype=float)


def _claim(claim: str, values: pd.Series, expect_positive: bool, already_paired: bool = False,
           untrained: dict[tuple[int, int], str] | None = None, sign: int = 1,
           expected_sign: str | None = None) -> list[dict[str, Any]]:
    """``values`` by (net_depth, shortcut, seed), or by (net_depth, seed) when
    ``already_paired``; plain minus residual (times ``sign``)."""
    rows = []
    for depth in sorted(values.index.get_level_values("net_depth").unique()):
        at_depth = values.xs(depth, level="net_depth")
        if already_paired:
            per_seed = at_depth.to_dict()
        else:
            if at_depth.index.get_level_values("shortcut").nunique() < 2:
                continue
            pivot = at_depth.unstack("shortcut")
            per_seed = ((pivot[False] - pivot[True]) * sign).to_dict()
        blocked = [(untrained or {}).get((int(depth), int(seed))) for seed in per_seed]
        if not any(blocked):  # a pair with a missing value cannot be compared
            per_seed = {s: v for s, v in per_seed.items() if v == v}
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        diffs = [float(per_seed[s]) for s in seeds]
        finite = [d for d in diffs if d == d]
        interval = mean_interval(finite) if finite else mean_interval([math.nan])
        if any(blocked):
            outcome = Outcome.INCONCLUSIVE
        elif math.isnan(interval.low):
            outcome = Outcome.TOO_FEW_SEEDS
        elif interval.contains(0.0):
            outcome = Outcome.NOT_MEASURABLE
        elif (interval.estimate > 0) == expect_positive:
            outcome = Outcome.HOLDS
        else:
            outcome = Outcome.FAILS
        per_seed_text = ", ".join(f"{v:+.3f}" for v in diffs)
        interval_text = (f"95% CI {interval.low:+.3f} to {interval.high:+.3f}, "
                         if interval.low == interval.low else "")
        evidence = f"mean {interval.estimate:+.3f}, {interval_text}seeds {per_seed_text}"
        opposite = sum((d > 0) == (not expect_positive) and d != 0 for d in diffs)
        if opposite and outcome is not Outcome.HOLDS:
            evidence += (f"; {opposite} of {len(diffs)} seeds on the opposite side to the "
                         f"claim{f', which expects {expected_sign}' if expected_sign else ''}")
        if any(blocked):
            evidence += f"; did not train: {'; '.join(b for b in blocked if b)}"
        rows.append({"claim": claim, "depth": int(depth), "seeds": len(seeds),
                     "per_seed": per_seed_text, "mean": interval.estimate,
                     "ci95_low": interval.low, "ci95_high": interval.high,
                     "spread_std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
                     "outcome": outcome.value, "evidence": evidence})
    return rows
