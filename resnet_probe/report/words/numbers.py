"""Numbers in words: a count in K/M/G, an exact count's change, a ratio or a seed estimate with
its interval, and the record ``verdict.json`` keeps of a seed estimate."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from resnet_probe.stats import SeedEstimate


def readable_count(value: float, digits: int = 3) -> str:
    """A count in K, M or G to ``digits`` significant digits: "21.8 M", "4.09 G", "512"."""
    for divisor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= divisor:
            return f"{value / divisor:.{digits}g} {prefix}"
    return f"{value:,.0f}"


def counted(count: int, thing: str) -> str:
    """"1 seed", "3 seeds"."""
    return f"{count} {thing}{'' if count == 1 else 's'}"


def known(value: object) -> TypeGuard[float]:
    """A number, not NaN or a null read back from JSON."""
    return isinstance(value, (int, float)) and not math.isnan(value)


def cost_change(value: float, base: float, unit: str) -> str:
    """An exact count's change against the baseline: "-0.88%, -192 K params (exact count)";
    "no difference (exact count)" when equal."""
    difference = value - base
    if difference == 0:
        return "no difference (exact count)"
    pct = difference / base * 100 if base else float("nan")
    percent = "" if pct != pct else f"{pct:+,.0f}%, " if abs(pct) >= 100 else f"{pct:+.2f}%, "
    sign = "+" if difference > 0 else "-"
    return f"{percent}{sign}{readable_count(abs(difference))} {unit} (exact count)"


def ratio_interval(ratio: float, low: float, high: float, seeds: int | None = None) -> str:
    """"170× (95% CI 120× to 220×, 3 seeds)"; a ratio with no interval says so."""
    def times(value: float) -> str:
        return f"{value:.3g}×"

    count = f", {seeds} seeds" if seeds else ""
    if low != low or high != high:
        return f"{times(ratio)} (one seed: no interval)"
    return f"{times(ratio)} (95% CI {times(low)} to {times(high)}{count})"


def signed_interval(estimate: SeedEstimate) -> str:
    """"95% CI +0.670 to +0.770", or "one seed: no interval"."""
    if not estimate.known:
        return "one seed: no interval"
    return f"95% CI {estimate.low:+.3f} to {estimate.high:+.3f}"


def estimate_record(e: SeedEstimate | None) -> dict[str, Any] | None:
    """A seed estimate as ``verdict.json`` keeps it: per seed, mean, interval, in words."""
    if e is None:
        return None
    return {"per_seed": {str(k): v for k, v in e.per_seed.items()},
            "mean": e.estimate, "ci95_low": e.low, "ci95_high": e.high,
            "seeds": e.seeds, "in_words": e.text()}
