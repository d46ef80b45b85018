"""Loss-landscape slices (Li et al. 2018) around a trained net's weights.

Directions are Gaussian, filter-normalised: each filter (each output channel of a conv, each
output unit of a linear layer) of a direction is rescaled to the norm of the same filter of the
trained weights. Biases and BN parameters get a zero direction, Li et al.'s ``ignore='biasbn'``.
The net is evaluated in eval mode, so BN uses the running statistics the training ended with
(frozen, not recomputed per point), on a fixed subset of the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.progress import Progress

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
              extent: float = 1.0, dims: int = 1, seed: int = 0,
              progress: Progress | None = None) -> list[dict[str, Any]]:
    """Loss and error at θ + α·d1 (+ β·d2) for α, β on a ``points``-point grid over
    [-extent, extent]. Rows: ``alpha``, ``beta`` (2-D only), ``loss``, ``error``."""
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 or 2: {dims}")
    if points < 3 or points % 2 == 0:
        raise ValueError(f"points must be odd and at least 3, so the grid holds 0: {points}")
    net.eval()
    generator = torch.Generator().manual_seed(seed)
    directions = [filter_normalized_direction(net, generator) for _ in range(dims)]
    trained = {name: p.detach().clone() for name, p in net.named_parameters()}
    axis = np.linspace(-extent, extent, points)
    grid = [(a, None) for a in axis] if dims == 1 else [(a, b) for a in axis for b in axis]
    rows = []
    try:
        for alpha, beta in grid:
            for name, parameter in net.named_parameters():
                moved = trained[name] + float(alpha) * directions[0][name]
                if beta is not None:
                    moved = moved + float(beta) * directions[1][name]
                parameter.copy_(moved)
            loss, error = _loss_and_error(net, x, y)
            row = {"alpha": float(alpha), "loss": loss, "error": error}
            if beta is not None:  # 1-D slices have no beta column
                row["beta"] = float(beta)
            rows.append(row)
            if progress is not None:
                progress.update(1)
    finally:
        for name, parameter in net.named_parameters():
            parameter.copy_(trained[name])
    return rows


def slice_summary(rows: list[dict[str, Any]], at: float = 0.5) -> dict[str, Any]:
    """The 1-D slice in numbers: the loss at 0, its mean rise at ±``at``, and its curvature
    (second differences): ``curvature_ratio`` is the smallest over the largest, negative
    where the slice is not convex, and ``concave_fraction`` the share of points with negative
    curvature. For a 2-D grid, ``nonconvexity`` is the median over the grid of
    max(0, -λmin)/|λmax| of the 2x2 finite-difference Hessian (Li et al.'s |λmin/λmax| where
    λmin < 0)."""
    one_d = [row for row in rows if row.get("beta") is None]
    summary: dict[str, Any] = {}
    if one_d:
        alphas = np.array([row["alpha"] for row in one_d])
        losses = np.array([row["loss"] for row in one_d])
        centre = losses[np.argmin(np.abs(alphas))]
        rise = np.interp([-at, at], alphas, losses) - centre
        step = alphas[1] - alphas[0]
        curvature = (losses[2:] - 2 * losses[1:-1] + losses[:-2]) / step**2
        summary.update({"loss_at_0": float(centre), f"loss_rise_at_{at:g}": float(rise.mean()),
                        "curvature_ratio": float(curvature.min() / curvature.max())
                        if curvature.max() > 0 else float("nan"),
                        "concave_fraction": float((curvature < 0).mean())})
    two_d = [row for row in rows if row.get("beta") is not None]
    if two_d:
        summary["nonconvexity"] = _grid_nonconvexity(two_d)
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
