"""The gradients at init in words: the direction the first/last block ratio's interval
settles, and the Why answer's one line over the compared models."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from resnet_probe.report.words.numbers import ratio_interval


class Direction(StrEnum):
    """Which way the gradient changes from the last block to the first."""

    GROWS = "grows toward the input"
    SHRINKS = "shrinks toward the input"
    UNSETTLED = "has no settled direction"


def gradient_direction(low: float, high: float, ratio: float) -> Direction:
    """The direction the first/last ratio's interval settles: the gradient grows toward the
    input when it lies above 1, shrinks (vanishes) when below, else no settled direction;
    with one seed (no interval), the ratio's own side of 1."""
    if low == low and high == high:
        if low > 1:
            return Direction.GROWS
        if high < 1:
            return Direction.SHRINKS
        return Direction.UNSETTLED
    return Direction.GROWS if ratio > 1 else Direction.SHRINKS


def gradient_finding(rows: list[dict[str, Any]]) -> str:
    """The gradients at init in one line: per model the first/last block ratio with its
    interval, the last plain net named first (its interval says the direction), then the other
    plain nets, then the residual ones. ``rows``: model, shortcut, ratio, low, high, seeds."""
    plain = [r for r in rows if not r["shortcut"]]
    lead = plain[-1] if plain else rows[-1]
    said = {Direction.GROWS: "grow toward the input, they do not vanish",
            Direction.SHRINKS: "shrink toward the input: they vanish",
            Direction.UNSETTLED: "have no settled direction",
            }[gradient_direction(lead["low"], lead["high"], lead["ratio"])]
    kind = "the plain nets'" if plain else "the nets'"
    others = [r for r in rows if r is not lead]
    each = [f"{lead['model']}'s gradient at the first block is "
            f"{ratio_interval(lead['ratio'], lead['low'], lead['high'], lead['seeds'])} its "
            f"gradient at the last",
            *(f"{r['model']}'s {ratio_interval(r['ratio'], r['low'], r['high'], r['seeds'])}"
              for r in sorted(others, key=lambda r: bool(r["shortcut"])))]
    return f"At init, with BN, {kind} gradients {said}: {'; '.join(each)}."
