"""Uncertainty for every comparison between measurements: the one standard every verdict,
summary cell, finding and README number uses (``RULE`` states it; reports print it).

Timings have many raw samples: their medians get percentile-bootstrap intervals
(``scipy.stats.bootstrap``), paired by round when the models were timed in interleaved rounds,
so drift that hits a round hits both sides. Per-seed results (final errors, gradient ratios,
the analyses of trained nets) have a few values: their means get Student-t intervals with n - 1
degrees of freedom, on the per-seed differences when two things are compared on the same
seeds. A difference whose interval contains zero is "no measurable difference"; nothing is
labelled from a point estimate.

A quantity that cannot be negative (an error, a norm, a ratio, a radius) gets its interval on
the log scale instead (``positive_mean_interval``): a symmetric t interval would run below
zero for a small mean with a wide spread (a final error of 0.0081 read "-0.0021 to 0.0183").
Differences of such quantities stay on the linear scale.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
RESAMPLES = 2000
NO_DIFFERENCE = "no measurable difference"
RULE = ("Every difference is given with a 95% interval. Over seeds: a Student-t interval with "
        "n - 1 degrees of freedom on the per-seed (paired) differences, so 3 seeds give "
        "mean ± 4.30 standard errors. Over timing rounds: a percentile bootstrap of medians, "
        "paired by round. A difference whose interval contains zero is 'no measurable "
        "difference'; one seed gives no interval at all. A mean of a quantity that cannot be "
        "negative (errors, norms, ratios) gets its interval on the log scale: log(mean) ± t "
        "standard errors, the standard error s / (mean √n), back-transformed, so it never "
        "runs below zero and is wider above the mean than below.")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Difference:
    """``other`` against ``baseline`` in percent, with its confidence interval; ``low`` and
    ``high`` are NaN when the data cannot give one (a single seed)."""

    pct: float
    low_pct: float
    high_pct: float
    method: str
    unit: str = "%"  # "%" of the baseline, or "" for an absolute difference (error rates)

    @property
    def known(self) -> bool:
        return not (math.isnan(self.low_pct) or math.isnan(self.high_pct))

    @property
    def measurable(self) -> bool:
        return self.known and not (self.low_pct <= 0.0 <= self.high_pct)

    def text(self) -> str:
        def number(value: float) -> str:
            return f"{value:+.1f}%" if self.unit == "%" else f"{value:+.3f}"

        if not self.known:
            return f"{number(self.pct)} (no interval: {self.method})"
        interval = f"95% CI {number(self.low_pct)} to {number(self.high_pct)}"
        if not self.measurable:
            return f"{NO_DIFFERENCE} ({interval})"
        return f"{number(self.pct)} ({interval})"


def difference_row(model: str, baseline: str, metric: str, baseline_value: float,
                   value: float, difference: Difference) -> dict[str, Any]:
    """One row of a differences table: what compare's delta table and the CLI read."""
    return {"model": model, "baseline": baseline, "metric": metric,
            "baseline_value": baseline_value, "value": value, "delta_pct": difference.pct,
            "ci95_low_pct": difference.low_pct, "ci95_high_pct": difference.high_pct,
            "measurable": difference.measurable, "change": difference.text(),
            "method": difference.method, "unit": difference.unit or "absolute"}


def median_interval(samples: list[float], seed: int = 0) -> Interval:
    values = np.asarray(samples, dtype=float)
    estimate = float(np.median(values))
    if len(values) < 2 or np.all(values == values[0]):
        return Interval(estimate, estimate, estimate)
    result = scipy_stats.bootstrap((values,), np.median, n_resamples=RESAMPLES,
                                   confidence_level=CONFIDENCE, method="percentile",
                                   random_state=np.random.default_rng(seed))
    return Interval(estimate, float(result.confidence_interval.low),
                    float(result.confidence_interval.high))


def median_difference(baseline: list[float], other: list[float], paired: bool,
                      seed: int = 0) -> Difference:
    """median(other) / median(baseline) - 1, in percent; paired resamples rounds together."""
    base, values = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    pct = (np.median(values) / np.median(base) - 1) * 100

    def relative(a, b, axis=-1):
        return (np.median(b, axis=axis) / np.median(a, axis=axis) - 1) * 100

    if min(len(base), len(values)) < 2:
        return Difference(float(pct), math.nan, math.nan, "one sample")
    if paired and len(base) != len(values):
        raise ValueError(f"paired samples need equal counts: {len(base)} vs {len(values)}")
    result = scipy_stats.bootstrap((base, values), relative, paired=paired, vectorized=True,
                                   n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                                   method="percentile", random_state=np.random.default_rng(seed))
    interval = result.confidence_interval
    return Difference(float(pct), float(interval.low), float(interval.high),
                      "bootstrap of medians, paired by round" if paired else
                      "bootstrap of medians")


def mean_interval(values: list[float]) -> Interval:
    """Mean with a Student-t interval; NaN bounds for a single value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan)
    half = _t_half_width(values)
    return Interval(mean, mean - half, mean + half)


def positive_mean_interval(values: list[float], upper: float | None = None) -> Interval:
    """Mean of a quantity that cannot be negative, with a 95% interval on the log scale.

    The mean m stays the arithmetic mean (so a column's meaning does not change, and a zero
    among the values is allowed); its interval is the Student-t interval of log m with the
    delta-method standard error s / (m √n), back-transformed: m · exp(± t · s / (m √n)). It
    is never below zero, and multiplicative, as the spread of such quantities is. ``upper``
    is a bound the quantity cannot pass (an error rate's 1, a censored radius's extent): the
    interval is cut there, which keeps its coverage (the true value lies below it). NaN bounds
    for a single value, as ``mean_interval``; all zeros give [0, 0]."""
    negative = [v for v in values if v < 0]
    if negative:
        raise ValueError(f"a quantity that cannot be negative has negative values: "
                         f"{negative}; use mean_interval for a difference")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan)
    if mean == 0:
        return Interval(0.0, 0.0, 0.0)
    factor = math.exp(_t_half_width(values) / mean)
    low, high = mean / factor, mean * factor
    if upper is not None:
        high = min(high, upper)
    return Interval(mean, low, high)


def paired_mean_difference(baseline: list[float], other: list[float],
                           absolute: bool = False) -> Difference:
    """mean(other - baseline), paired by position (seed), relative to mean(baseline) in
    percent or, with ``absolute``, as is (for error rates, where a percent of a near-zero
    baseline says little); a Student-t interval on the paired differences."""
    if len(baseline) != len(other):
        raise ValueError(f"paired values need equal counts: {len(baseline)} vs {len(other)}")
    base_mean = statistics.fmean(baseline)
    differences = [b - a for a, b in zip(baseline, other, strict=True)]
    scale = 1.0 if absolute else (100 / base_mean if base_mean else math.nan)
    unit = "" if absolute else "%"
    estimate = statistics.fmean(differences) * scale
    if len(differences) < 2 or math.isnan(scale):
        return Difference(estimate, math.nan, math.nan,
                          "one seed" if len(differences) < 2 else "zero baseline", unit)
    half = _t_half_width(differences) * abs(scale)
    return Difference(estimate, estimate - half, estimate + half,
                      f"t interval over {len(differences)} seeds", unit)


def _t_half_width(values: list[float]) -> float:
    n = len(values)
    quantile = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)
    return float(quantile * statistics.stdev(values) / math.sqrt(n))


@dataclass(frozen=True)
class SeedEstimate:
    """A per-seed quantity (often a paired difference) with its t interval: the form every
    training comparison is reported in."""

    name: str
    per_seed: dict[int, float]
    estimate: float
    low: float
    high: float

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    @property
    def known(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    @property
    def above_zero(self) -> bool:
        return self.known and self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.known and self.high < 0

    def text(self, digits: int = 3) -> str:
        if not self.known:
            return f"{self.estimate:+.{digits}f} (one seed: no interval)"
        interval = f"95% CI {self.low:+.{digits}f} to {self.high:+.{digits}f}, {self.seeds} seeds"
        if not (self.above_zero or self.below_zero):
            return f"{NO_DIFFERENCE}: {self.estimate:+.{digits}f} ({interval})"
        return f"{self.estimate:+.{digits}f} ({interval})"


def seed_estimate(name: str, per_seed: dict[int, float]) -> SeedEstimate:
    """The mean over seeds of ``per_seed`` with its Student-t 95% interval."""
    values = [per_seed[seed] for seed in sorted(per_seed)]
    if not values:
        return SeedEstimate(name, {}, math.nan, math.nan, math.nan)
    interval = mean_interval(values)
    return SeedEstimate(name, dict(sorted(per_seed.items())), interval.estimate, interval.low,
                        interval.high)


def positive_seed_estimate(name: str, per_seed: dict[int, float],
                           upper: float | None = None) -> SeedEstimate:
    """``seed_estimate`` for a quantity that cannot be negative (an error, a norm, a ratio):
    the interval of ``positive_mean_interval``, never below zero."""
    values = [per_seed[seed] for seed in sorted(per_seed)]
    if not values:
        return SeedEstimate(name, {}, math.nan, math.nan, math.nan)
    interval = positive_mean_interval(values, upper)
    return SeedEstimate(name, dict(sorted(per_seed.items())), interval.estimate, interval.low,
                        interval.high)


# --- tests whose verdict cannot flip when one side gets worse --------------------------------

@dataclass(frozen=True)
class SignTest:
    """The exact one-sided sign test over seeds: under "no difference" each seed's value is
    as likely below zero as above it, so the number above zero is Binomial(n, 1/2) with n the
    seeds that are not exactly zero. ``p_value`` = P(that many or more above zero). With n
    seeds it cannot go below 2^-n (0.125 for three)."""

    above: int
    below: int
    ties: int

    @property
    def seeds(self) -> int:
        return self.above + self.below

    @property
    def p_value(self) -> float:
        n = self.seeds
        return sum(math.comb(n, k) for k in range(self.above, n + 1)) / 2 ** n

    @property
    def smallest_p(self) -> float:
        return 0.5 ** self.seeds


def sign_test(values: list[float]) -> SignTest:
    return SignTest(above=sum(v > 0 for v in values), below=sum(v < 0 for v in values),
                    ties=sum(v == 0 for v in values))


EXHAUSTIVE_SEEDS = 20  # 2^20 corners; beyond this the search is local


def lowest_lower_bound(values: list[float], ceilings: list[float]) -> float:
    """The smallest lower bound of the 95% t interval of the mean over every set of values in
    which each value lies anywhere between its own and its ceiling.

    A verdict that requires this bound (not only the observed one) to clear a threshold
    cannot be undone by any value growing: the sets it ranges over only shrink as a value
    grows. The bound mean - t * sd / sqrt(n) is concave in the values (sd is a norm of the
    centred values), so its smallest value over the box is at one of the 2^n corners, where
    each value is either its own or its ceiling; they are all checked up to
    EXHAUSTIVE_SEEDS values, and beyond that a greedy walk over corners (each step raising
    the one value that lowers the bound most) gives the bound it ends at."""
    low = np.asarray(values, dtype=float)
    high = np.maximum(np.asarray(ceilings, dtype=float), low)
    n = len(low)
    if n < 2:
        return math.nan
    k = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1)) / math.sqrt(n)

    def bounds(corners: np.ndarray) -> np.ndarray:
        sets = np.where(corners, high, low)
        return sets.mean(axis=1) - k * sets.std(axis=1, ddof=1)

    if n <= EXHAUSTIVE_SEEDS:
        lowest = math.inf
        chunk = 1 << min(n, 14)
        bits = 1 << np.arange(n)
        for start in range(0, 1 << n, chunk):
            codes = np.arange(start, min(start + chunk, 1 << n))[:, None]
            lowest = min(lowest, float(bounds((codes & bits) != 0).min()))
        return lowest
    raised = np.zeros(n, dtype=bool)
    current = float(bounds(raised[None, :])[0])
    while not raised.all():
        candidates = np.repeat(raised[None, :], n, axis=0) | np.eye(n, dtype=bool)
        options = bounds(candidates)
        options[raised] = math.inf
        best = int(options.argmin())
        if options[best] >= current:
            break
        raised[best], current = True, float(options[best])
    return current
