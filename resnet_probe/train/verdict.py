"""The degradation verdict: one of three outcomes, from a stated rule applied to the runs.

The rule, per kind (plain, residual): pair each seed's deep and shallow runs and take the gap
in final training error (deep minus shallow). Across seeds that gives a mean and a standard
error (SE = std / sqrt(seeds)). Then:

* ``inconclusive`` when fewer than MIN_SEEDS (2) seeds paired up, when a plain run did not
  train (its final training error is not below TRAINED_FRACTION, 3/4, of chance error,
  1 - 1/classes), or when a run did not finish;
* ``degradation observed`` when the plain gap exceeds both MIN_GAP (0.01) and 2 SE (outside
  the seed noise) and the residual gap is at most half the plain gap;
* ``no degradation`` when the plain gap's upper bound, mean + 2 SE, is below MIN_GAP;
* ``inconclusive`` otherwise (a gap inside the seed noise, or residual nets degrading too).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from resnet_probe.train.loop import RunStatus

MIN_SEEDS = 2
MIN_GAP = 0.01  # one digit-image in a hundred: below this a gap is not worth a verdict
# "Trained" = final training error below 3/4 of chance (0.675 for ten classes). The rule exists
# to set aside nets stuck at chance (plain34 at 0.867 of 0.9); a degraded net that learned part
# of the task (plain56 at 0.45) is the effect itself. First set at 1/2, which called such a
# plain56 run untrained.
TRAINED_FRACTION = 0.75


class Verdict(StrEnum):
    OBSERVED = "degradation observed"
    NONE = "no degradation"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class DepthGap:
    kind: str  # "plain" or "residual"
    shallow_depth: int
    deep_depth: int
    shallow_error: float  # mean final training error across seeds
    deep_error: float
    gap_mean: float
    gap_se: float
    seeds: int


@dataclass(frozen=True)
class DegradationVerdict:
    verdict: Verdict
    reasons: list[str]
    gaps: list[DepthGap] = field(default_factory=list)
    rule: str = __doc__.split("The rule, ")[1].strip()


def depth_gaps(finals: list[dict[str, Any]]) -> list[DepthGap]:
    """Deep minus shallow final training error per kind, paired by seed."""
    gaps = []
    for shortcut, kind in ((False, "plain"), (True, "residual")):
        group = [r for r in finals if bool(r["shortcut"]) is shortcut]
        depths = sorted({r["depth"] for r in group})
        if len(depths) < 2:
            continue
        shallow, deep = depths[0], depths[-1]
        pairs = []
        for seed in sorted({r["seed"] for r in group}):
            by_depth = {r["depth"]: r["final_train_error"] for r in group if r["seed"] == seed}
            if shallow in by_depth and deep in by_depth:
                pairs.append((by_depth[shallow], by_depth[deep]))
        pairs = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
        if not pairs:
            continue
        differences = [b - a for a, b in pairs]
        se = (statistics.stdev(differences) / math.sqrt(len(differences))
              if len(differences) > 1 else math.nan)
        gaps.append(DepthGap(kind, shallow, deep, statistics.fmean(a for a, _ in pairs),
                             statistics.fmean(b for _, b in pairs),
                             statistics.fmean(differences), se, len(pairs)))
    return gaps


def settled_early(finals: list[dict[str, Any]], chance_error: float) -> str | None:
    """Why more seeds cannot change the verdict, or None: once a plain run did not train or a
    run did not finish, the rule says inconclusive whatever later seeds show."""
    reasons = judge(finals, chance_error).reasons
    if any(r.startswith("plain runs that did not train") for r in reasons):
        return "a plain run did not train, so no later seed can change the verdict"
    if any(r.startswith("runs that did not finish") for r in reasons):
        return "a run did not finish, so no later seed can change the verdict"
    return None


def judge(finals: list[dict[str, Any]], chance_error: float) -> DegradationVerdict:
    """``finals`` are final_rows(): model, depth, shortcut, seed, final_train_error, status."""
    gaps = {g.kind: g for g in depth_gaps(finals)}
    plain, residual = gaps.get("plain"), gaps.get("residual")
    reasons = []
    unfinished = sorted({f"{r['model']} seed {r['seed']} ({r['status']})" for r in finals
                         if r["status"] != RunStatus.FINISHED})
    if unfinished:
        reasons.append(f"runs that did not finish: {', '.join(unfinished)}")
    untrained = sorted({f"{r['model']} seed {r['seed']} ({r['final_train_error']:.3f})"
                        for r in finals if not r["shortcut"]
                        and not r["final_train_error"] < TRAINED_FRACTION * chance_error})
    if untrained:
        reasons.append(f"plain runs that did not train (final training error not below "
                       f"{TRAINED_FRACTION:g} x chance = {TRAINED_FRACTION * chance_error:.2f}): "
                       f"{', '.join(untrained)}")
    if plain is None:
        reasons.append("no plain pair of depths to compare")
    elif plain.seeds < MIN_SEEDS:
        reasons.append(f"{plain.seeds} seed(s) paired; the rule needs at least {MIN_SEEDS}")
    if reasons:
        return DegradationVerdict(Verdict.INCONCLUSIVE, reasons, list(gaps.values()))
    assert plain is not None
    bound = 2 * plain.gap_se
    residual_text = ("no residual pair" if residual is None else
                     f"residual gap {residual.gap_mean:+.3f} ± {2 * residual.gap_se:.3f}")
    numbers = (f"plain gap {plain.gap_mean:+.3f} ± {bound:.3f} (2 SE, {plain.seeds} seeds); "
               f"{residual_text}")
    if plain.gap_mean > max(MIN_GAP, bound):
        if residual is None or residual.gap_mean <= plain.gap_mean / 2:
            return DegradationVerdict(Verdict.OBSERVED, [
                f"the deeper plain net trains worse beyond the seed noise; {numbers}"],
                list(gaps.values()))
        return DegradationVerdict(Verdict.INCONCLUSIVE, [
            f"the residual nets lose accuracy with depth too; {numbers}"], list(gaps.values()))
    if plain.gap_mean + bound < MIN_GAP:
        return DegradationVerdict(Verdict.NONE, [
            f"the deeper plain net trains as well as the shallower one; {numbers}"],
            list(gaps.values()))
    return DegradationVerdict(Verdict.INCONCLUSIVE, [
        f"the plain gap sits inside the seed noise; {numbers}"], list(gaps.values()))
