"""How far a trained net's training loss stays low along random directions (Li et al. 2018's
filter-normalised directions), as a bounded number: the half-way radius.

Directions are Gaussian, filter-normalised: each filter (each output channel of a conv, each
output unit of a linear layer) of a direction is rescaled to the norm of the same filter of the
trained weights, so a step α moves every filter by α of its own norm. Biases and BN parameters
get a zero direction, Li et al.'s ``ignore='biasbn'``. The net is evaluated in eval mode, so
BN uses the running statistics the training ended with (frozen, not recomputed per point), on
a fixed subset of the data.

Measures, per net, with L0 the loss at the trained weights and C the number of classes:

* ``half_way_radius`` (r½, primary): on each side of each direction, the smallest |α| at which
  the loss reaches L0 + (ln C - L0) / 2, half-way from the trained loss to the loss of a
  uniform guess; averaged over the sides of ``directions`` directions. A side that never
  reaches it within ``extent`` counts as the extent (censored, and counted in ``censored``),
  so r½ lies in [0, extent] and stays finite as L0 -> 0, where a rise divided by L0 does not.
  Censoring pulls a mean down, the more so the more of its sides reach the extent; where a
  comparison rests on censored sides, a larger extent is the remedy. Found by a bracketing
  search on each side (``crossing_radius``): within about 1% of the crossing on smooth
  slices. For a net whose L0 is not below ln C there is no
  half-way loss: r½ is NaN.
* ``keskar_sharpness`` (secondary; Keskar et al. 2017, along these directions): the largest
  rise L - L0 at the points evaluated with |α| <= 0.1 (the first probe of every side is at
  0.1, and the search may add points inside it), on every side of every direction, over
  (1 + L0). It is a lower bound on Keskar's, whose maximum is over a whole box, and equals
  the 1-D maximum where the slices rise monotonically from the minimum.

Cost: about three evaluations of the loss on the images per side (``evaluations``). The
probed points (``landscape`` rows) draw each direction's slice out to where it crosses the
half-way loss. ``dims=2`` adds Li et al.'s 2-D surface on a regular grid
(``surface``) and ``slice_hessian_ratio``, from that surface's 2x2 finite-difference
Hessians.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.stats import positive_mean_interval

BN_STATISTICS = ("frozen: each point is evaluated in eval mode with the running BN statistics "
                 "of the trained net; biases and BN parameters are not perturbed (Li et al.'s "
                 "ignore='biasbn')")
KESKAR_RADIUS = 0.1  # Keskar et al.'s box half-width, in units of each filter's norm
# The search for a crossing: outward from Keskar's radius by COARSE_RATIO on a net's first
# direction, from the median radius found so far by FINE_RATIO on the others (r½ varies by
# some 10-20% between directions), then geometric halving until the bracket's ratio is at
# most FINE_RATIO, and an interpolation of log(L - L0) against log r inside it: exact where
# the rise is a power of r (a quadratic bowl), within about 1% where it is exponential, for
# about three evaluations per side, Keskar's probe included.
COARSE_RATIO = 2.0
FINE_RATIO = math.sqrt(2)
SMALLEST_RADIUS = 1e-3  # a side still at or above the half-way loss here is taken to cross here


def filter_normalized_direction(net: nn.Module, generator: torch.Generator
                                ) -> dict[str, torch.Tensor]:
    direction = {}
    for name, weight in net.named_parameters():
        if weight.dim() <= 1:
            direction[name] = torch.zeros_like(weight)
            continue
        random = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
        direction[name] = random * _filter_norms(weight.detach()) / (_filter_norms(random)
                                                                     + 1e-10)
    return direction


def _filter_norms(tensor: torch.Tensor) -> torch.Tensor:
    """Each filter's (output channel's) norm, shaped to broadcast over the tensor."""
    return tensor.flatten(1).norm(dim=1).view(-1, *[1] * (tensor.dim() - 1))


@torch.no_grad()
def _loss_and_error(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512
                    ) -> tuple[float, float]:
    loss, wrong = 0.0, 0
    for i in range(0, len(y), batch):
        logits = net(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        wrong += (logits.argmax(1) != y[i:i + batch]).sum().item()
    return loss / len(y), wrong / len(y)


def half_way_loss(loss_at_0: float, classes: int) -> float:
    """L0 + (ln C - L0) / 2: half-way from the trained loss to a uniform guess's."""
    return loss_at_0 + (math.log(classes) - loss_at_0) / 2


def crossing_radius(loss_at: Callable[[float], float], threshold: float, loss_at_0: float,
                    extent: float, guess: float | None = None
                    ) -> tuple[float, bool, dict[float, float]]:
    """Where ``loss_at(r)`` reaches ``threshold`` for r in (0, extent], given ``loss_at_0``
    (the loss at r = 0) below it; a non-finite loss counts as reached. The loss is first
    taken at Keskar's radius (min(0.1, extent)), then at ``guess`` if given; the search walks
    out (or in) from there by COARSE_RATIO, or FINE_RATIO with a guess, until two points at
    most that ratio apart bracket the threshold, halves the bracket geometrically until its
    ratio is at most FINE_RATIO, and interpolates log(L - L0) against log r inside it (linearly in L
    where that cannot be taken: from r = 0, or a loss at or under L0). A slice that crosses,
    falls back under the threshold and crosses again is taken at the crossing the bracket
    holds. Returns (radius, reached, every loss evaluated, by r); a threshold not reached at
    ``extent`` gives the extent, censored there."""
    if not loss_at_0 < threshold:
        raise ValueError(f"the loss at 0 must be below the threshold: loss_at_0={loss_at_0}, "
                         f"threshold={threshold}")
    if extent <= 0:
        raise ValueError(f"extent must be above 0: {extent}")
    losses: dict[float, float] = {}
    below, above = 0.0, math.inf  # the bracket: under the threshold at below, not at above

    def probe(r: float) -> None:
        nonlocal below, above
        losses[r] = loss_at(r)
        if losses[r] < threshold:
            below = max(below, r)
        else:
            above = min(above, r)

    probe(min(KESKAR_RADIUS, extent))
    if guess is not None and below < guess < above and guess <= extent:
        probe(guess)
    ratio = FINE_RATIO if guess is not None else COARSE_RATIO
    while math.isinf(above):  # walk out
        if below >= extent:
            return extent, False, losses
        probe(min(below * ratio, extent))
    while below < above / ratio and above > SMALLEST_RADIUS:  # walk in
        probe(above / ratio)
    if below == 0.0:
        return above, True, losses
    while above / below > FINE_RATIO * (1 + 1e-9):  # halve the bracket
        probe(math.sqrt(below * above))
    return _interpolated(below, losses[below], above, losses[above], threshold,
                         loss_at_0), True, losses


def _interpolated(below: float, low: float, above: float, high: float, threshold: float,
                  loss_at_0: float) -> float:
    """The r in [below, above] where the loss reaches ``threshold``: by log(L - L0) against
    log r, else linearly in L; ``above`` itself when its loss is not finite."""
    if not math.isfinite(high):
        return above
    if below > 0 and low > loss_at_0:
        rise = math.log(threshold - loss_at_0)
        low_rise, high_rise = math.log(low - loss_at_0), math.log(high - loss_at_0)
        if high_rise > low_rise:
            fraction = (rise - low_rise) / (high_rise - low_rise)
            return math.exp(math.log(below) + fraction * (math.log(above) - math.log(below)))
    return below + (above - below) * (threshold - low) / (high - low)


def keskar_sharpness(rises: list[float], loss_at_0: float) -> float:
    """Keskar et al.'s sharpness from the rises L - L0 at the probes with |α| <= 0.1: the
    largest over (1 + L0); a non-finite rise makes it infinite."""
    if not rises:
        return math.nan
    worst = max(rise if math.isfinite(rise) else math.inf for rise in rises)
    return worst / (1 + loss_at_0)


@torch.no_grad()
def landscape_radii(net: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int,
                    directions: int = 10, extent: float = 1.0, seed: int = 0,
                    progress: Progress = NO_PROGRESS
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The half-way radius of ``net`` on (x, y) along ``directions`` filter-normalised
    directions (one progress unit per side): (points, sides, summary). Points:
    ``direction``, ``alpha``, ``loss``, ``error``; sides: ``direction``, ``side`` (+1 or
    -1), ``half_way_radius``, ``reached``, ``evaluations`` (of the loss on the images),
    ``keskar_rise`` (the largest L - L0 at |α| <= 0.1); the summary as ``radius_summary``.
    The search on a side starts from the median radius of the sides before it
    (``crossing_radius``). The weights are restored afterwards."""
    if directions < 1:
        raise ValueError(f"directions must be at least 1: {directions}")
    if extent <= 0:
        raise ValueError(f"extent must be above 0: {extent}")
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    trained = {name: p.detach().clone() for name, p in net.named_parameters()}
    points: list[dict[str, Any]] = []
    sides: list[dict[str, Any]] = []
    try:
        loss_at_0, error_at_0 = _loss_and_error(net, x, y)
        threshold = half_way_loss(loss_at_0, classes)
        for index in range(directions):
            direction = filter_normalized_direction(net, generator)
            points.append({"direction": index, "alpha": 0.0, "loss": loss_at_0,
                           "error": error_at_0})
            for side in (1, -1):
                errors: dict[float, float] = {}
                loss_at = _loss_along(net, trained, direction, side, x, y, errors)
                found = [row["half_way_radius"] for row in sides]
                if threshold > loss_at_0:
                    radius, reached, losses = crossing_radius(
                        loss_at, threshold, loss_at_0, extent,
                        guess=float(np.median(found)) if found else None)
                else:  # no half-way loss above the trained one: probe Keskar's box only
                    radius, reached = math.nan, False
                    keskar = min(KESKAR_RADIUS, extent)
                    losses = {keskar: loss_at(keskar)}
                points += [{"direction": index, "alpha": side * r, "loss": loss,
                            "error": errors[r]} for r, loss in sorted(losses.items())]
                sides.append({"direction": index, "side": side, "half_way_radius": radius,
                              "reached": reached, "evaluations": len(losses),
                              "keskar_rise": max((loss - loss_at_0 if math.isfinite(loss)
                                                  else math.inf)
                                                 for r, loss in losses.items()
                                                 if r <= KESKAR_RADIUS)})
                progress.update(1)
    finally:
        for name, parameter in net.named_parameters():
            parameter.copy_(trained[name])
    points.sort(key=lambda row: (row["direction"], row["alpha"]))
    return points, sides, radius_summary(sides, loss_at_0, error_at_0, classes, extent)


def _loss_along(net: nn.Module, trained: dict[str, torch.Tensor],
                direction: dict[str, torch.Tensor], side: int, x: torch.Tensor,
                y: torch.Tensor, errors: dict[float, float]) -> Callable[[float], float]:
    """r -> the loss at θ + side·r·d (the net's weights are left there; those the direction
    leaves alone, biases and BN, are never touched), noting each error in ``errors``."""
    moved = [(parameter, trained[name], direction[name])
             for name, parameter in net.named_parameters() if direction[name].any()]

    def loss_at(r: float) -> float:
        for parameter, start, step in moved:  # in place: no temporary of the net's size
            torch.add(start, step, alpha=side * r, out=parameter)
        loss, errors[r] = _loss_and_error(net, x, y)
        return loss

    return loss_at


def radius_summary(sides: list[dict[str, Any]], loss_at_0: float, error_at_0: float,
                   classes: int, extent: float) -> dict[str, Any]:
    """A net's landscape in numbers: ``loss_at_0`` and ``error_at_0``, ``half_way_loss``,
    ``half_way_radius`` (the mean over every side) with its spread and a 95% interval over
    the directions (each direction's mean of its two sides is one sample; log scale, cut at
    the extent: ``resnet_probe.stats.positive_mean_interval``), ``censored`` sides (never
    reached within the extent), and ``keskar_sharpness``."""
    radii = [row["half_way_radius"] for row in sides]
    per_direction: dict[int, list[float]] = {}
    for row in sides:
        per_direction.setdefault(row["direction"], []).append(row["half_way_radius"])
    samples = [float(np.mean(values)) for values in per_direction.values()]
    known = all(math.isfinite(r) for r in radii) and bool(radii)
    interval = (positive_mean_interval(samples, upper=extent) if known
                else positive_mean_interval([math.nan]))
    return {"loss_at_0": loss_at_0, "error_at_0": error_at_0, "classes": classes,
            "half_way_loss": half_way_loss(loss_at_0, classes),
            "half_way_radius": float(np.mean(radii)) if known else math.nan,
            "half_way_radius_ci95_low": interval.low,
            "half_way_radius_ci95_high": interval.high,
            "half_way_radius_std": float(np.std(radii, ddof=1)) if known and len(radii) > 1
            else math.nan,
            "directions": len(per_direction), "sides": len(radii),
            "censored": sum(not row["reached"] for row in sides) if known else 0,
            "extent": extent,
            "keskar_sharpness": keskar_sharpness([row["keskar_rise"] for row in sides],
                                                 loss_at_0),
            "keskar_radius": KESKAR_RADIUS}


@torch.no_grad()
def surface(net: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int = 21,
            extent: float = 1.0, seed: int = 0, progress: Progress = NO_PROGRESS
            ) -> list[dict[str, Any]]:
    """Loss and error at θ + α·d1 + β·d2 for α, β on a ``points``-point grid over
    [-extent, extent] (one progress unit per point). Rows: ``alpha``, ``beta``, ``loss``,
    ``error``; the weights are restored afterwards."""
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be odd and at least 3, so the grid holds 0: {points}")
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    trained = {name: p.detach().clone() for name, p in net.named_parameters()}
    axis = np.linspace(-extent, extent, points)
    rows = []
    try:
        first, second = (filter_normalized_direction(net, generator) for _ in range(2))
        centre = _loss_and_error(net, x, y)
        for alpha in axis:
            for beta in axis:
                if alpha == 0 and beta == 0:
                    loss, error = centre
                else:
                    for name, parameter in net.named_parameters():
                        parameter.copy_(trained[name] + float(alpha) * first[name]
                                        + float(beta) * second[name])
                    loss, error = _loss_and_error(net, x, y)
                rows.append({"alpha": float(alpha), "beta": float(beta), "loss": loss,
                             "error": error})
                progress.update(1)
    finally:
        for name, parameter in net.named_parameters():
            parameter.copy_(trained[name])
    return rows


def slice_hessian_ratio(rows: list[dict[str, Any]]) -> float:
    """The median over a 2-D grid of max(0, -λmin)/|λmax| of its 2x2 finite-difference
    Hessians: 0 where the surface is convex, 1 at a symmetric saddle."""
    alphas = sorted({row["alpha"] for row in rows})
    n = len(alphas)
    loss = np.full((n, n), np.nan)
    index = {a: i for i, a in enumerate(alphas)}
    for row in rows:
        loss[index[row["alpha"]], index[row["beta"]]] = row["loss"]
    h = alphas[1] - alphas[0]
    ratios = []
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            d_aa = (loss[i + 1, j] - 2 * loss[i, j] + loss[i - 1, j]) / h**2
            d_bb = (loss[i, j + 1] - 2 * loss[i, j] + loss[i, j - 1]) / h**2
            d_ab = (loss[i + 1, j + 1] - loss[i + 1, j - 1] - loss[i - 1, j + 1]
                    + loss[i - 1, j - 1]) / (4 * h**2)
            low, high = np.linalg.eigvalsh(np.array([[d_aa, d_ab], [d_ab, d_bb]]))
            scale = max(abs(low), abs(high))
            ratios.append(max(0.0, -low) / scale if scale > 0 else 0.0)
    return float(np.median(ratios)) if ratios else math.nan
