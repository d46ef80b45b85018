"""Loss-landscape slices (Li et al. 2018) around a trained net's weights.

Directions are Gaussian, filter-normalised: each filter (each output channel of a conv, each
output unit of a linear layer) of a direction is rescaled to the norm of the same filter of the
trained weights. Biases and BN parameters get a zero direction, Li et al.'s ``ignore='biasbn'``.
The net is evaluated in eval mode, so BN uses the running statistics the training ended with
(frozen, not recomputed per point), on a fixed subset of the data.

A net is sliced along several random directions (``directions``), each its own 1-D slice
through the trained weights; the summary averages over them and gives the spread. The rise at
±0.5 is L(θ ± 0.5 d) - L(θ), and ``relative_rise`` divides it by L(θ), the loss at the trained
weights, so that nets sitting at different losses compare on one scale. The slice's own
second differences (``slice_curvature_ratio``, ``concave_fraction``, and for 2-D
``slice_hessian_ratio`` from the slice's 2x2 finite-difference Hessian) describe that slice
only; Li et al.'s |λmin/λmax| is of the full Hessian (``analysis.hessian``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.progress import NO_PROGRESS, Progress

BN_STATISTICS = ("frozen: each point is evaluated in eval mode with the running BN statistics "
                 "of the trained net; biases and BN parameters are not perturbed (Li et al.'s "
                 "ignore='biasbn')")


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


@torch.no_grad()
def landscape(net: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int = 21,
              extent: float = 1.0, dims: int = 1, seed: int = 0, directions: int = 1,
              progress: Progress = NO_PROGRESS) -> list[dict[str, Any]]:
    """Loss and error at θ + α·d (+ β·d2) for α, β on a ``points``-point grid over
    [-extent, extent], for each of ``directions`` random directions (1-D; a 2-D surface uses
    one pair). Rows: ``direction``, ``alpha``, ``beta`` (2-D only), ``loss``, ``error``."""
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2: {dims}")
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be odd and at least 3, so the grid holds 0: {points}")
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    trained = {name: p.detach().clone() for name, p in net.named_parameters()}
    axis = np.linspace(-extent, extent, points)
    rows = []
    try:
        centre = _loss_and_error(net, x, y)  # the same point on every slice: computed once
        for direction_index in range(1 if dims == 2 else directions):
            picked = [filter_normalized_direction(net, generator) for _ in range(dims)]
            grid = [(a, None) for a in axis] if dims == 1 else [(a, b) for a in axis
                                                               for b in axis]
            for alpha, beta in grid:
                if alpha == 0 and (beta is None or beta == 0):
                    loss, error = centre
                else:
                    for name, parameter in net.named_parameters():
                        moved = trained[name] + float(alpha) * picked[0][name]
                        if beta is not None:
                            moved = moved + float(beta) * picked[1][name]
                        parameter.copy_(moved)
                    loss, error = _loss_and_error(net, x, y)
                row = {"direction": direction_index, "alpha": float(alpha), "loss": loss,
                       "error": error}
                if beta is not None:  # 1-D slices have no beta column
                    row["beta"] = float(beta)
                rows.append(row)
                progress.update(1)
    finally:
        for name, parameter in net.named_parameters():
            parameter.copy_(trained[name])
    return rows


def slice_summary(rows: list[dict[str, Any]], at: float = 0.5) -> dict[str, Any]:
    """A net's slices in numbers: the loss at the trained weights, the rise at ±``at``
    (absolute and relative to that loss) averaged over the directions with its std across
    them, and each slice's own curvature (second differences): ``slice_curvature_ratio`` is
    the smallest over the largest, negative where the slice is not convex, and
    ``concave_fraction`` the share of points with negative curvature. For a 2-D grid,
    ``slice_hessian_ratio`` is the median over the grid of max(0, -λmin)/|λmax| of the slice's
    2x2 finite-difference Hessian."""
    one_d = [row for row in rows if row.get("beta") is None]
    summary: dict[str, Any] = {}
    if one_d:
        rises, ratios, concave = [], [], []
        centre = math.nan
        for index in sorted({row.get("direction", 0) for row in one_d}):
            slice_rows = [row for row in one_d if row.get("direction", 0) == index]
            alphas = np.array([row["alpha"] for row in slice_rows])
            losses = np.array([row["loss"] for row in slice_rows])
            centre = float(losses[np.argmin(np.abs(alphas))])
            rises.append(float((np.interp([-at, at], alphas, losses) - centre).mean()))
            step = alphas[1] - alphas[0]
            curvature = (losses[2:] - 2 * losses[1:-1] + losses[:-2]) / step**2
            ratios.append(float(curvature.min() / curvature.max()) if curvature.max() > 0
                          else float("nan"))
            concave.append(float((curvature < 0).mean()))
        relative = [rise / centre if centre > 0 else math.nan for rise in rises]
        summary.update({
            "loss_at_0": centre, "directions": len(rises),
            f"loss_rise_at_{at:g}": float(np.mean(rises)),
            f"loss_rise_at_{at:g}_std": float(np.std(rises, ddof=1)) if len(rises) > 1
            else 0.0,
            "relative_rise": float(np.mean(relative)),
            "relative_rise_std": float(np.std(relative, ddof=1)) if len(relative) > 1
            else 0.0,
            "slice_curvature_ratio": float(np.nanmean(ratios)) if not all(
                math.isnan(r) for r in ratios) else float("nan"),
            "concave_fraction": float(np.mean(concave))})
    two_d = [row for row in rows if row.get("beta") is not None]
    if two_d:
        summary["slice_hessian_ratio"] = _grid_nonconvexity(two_d)
        centre_row = min(two_d, key=lambda row: abs(row["alpha"]) + abs(row["beta"]))
        summary.setdefault("loss_at_0", centre_row["loss"])
    return summary


def _grid_nonconvexity(rows: list[dict[str, Any]]) -> float:
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
