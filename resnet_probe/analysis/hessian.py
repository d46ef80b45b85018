"""Hessian spectra of the training loss at the trained weights (Li et al. 2018, Fig. 7; the
approach of pyhessian, Yao et al. 2020).

The loss is cross-entropy on a fixed batch of training images with BN in eval mode (the trained
running statistics), so it is a fixed function of the weights. Hessian-vector products come
from differentiating the gradient (double backward); ``iterations`` steps of Lanczos with full
reorthogonalisation build a tridiagonal matrix whose extreme eigenvalues (Ritz values)
approximate the Hessian's. Full reorthogonalisation keeps every Lanczos vector (iterations x
parameters, in float32); above ``FULL_BASIS_BYTES`` only the last two are kept (the three-term
recurrence), which still finds the extremes first, and the row says which was used.
Reported: the top eigenvalue and |λmin / λmax|, Li et al.'s measure of non-convexity (0 where
the loss is locally convex). With as many iterations as parameters it is exact
(tests/test_why.py checks it against a dense Hessian). Cost: ``iterations`` Hessian-vector
products, each about two forward-backward passes on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import eigh_tridiagonal
from torch import nn

from resnet_probe.modes import in_mode


def hessian_extremes(net: nn.Module, x: torch.Tensor, y: torch.Tensor, iterations: int = 20,
                     seed: int = 0) -> dict[str, Any]:
    """The Hessian of the mean cross-entropy over (x, y) with respect to the trainable
    parameters: its largest and smallest eigenvalue by Lanczos, and |λmin / λmax|."""
    parameters = [p for p in net.parameters() if p.requires_grad]
    with in_mode(net, training=False):
        loss = F.cross_entropy(net(x), y)
        gradients = torch.autograd.grad(loss, parameters, create_graph=True)

        def hvp(vector: torch.Tensor) -> torch.Tensor:
            pieces = _split(vector, parameters)
            products = torch.autograd.grad(gradients, parameters, grad_outputs=pieces,
                                           retain_graph=True)
            return torch.cat([p.reshape(-1) for p in products]).detach()

        size = sum(p.numel() for p in parameters)
        steps = min(iterations, size)
        full = reorthogonalises_fully(size, steps)
        alphas, betas = lanczos(hvp, size, steps, seed, full)
    values = eigh_tridiagonal(alphas, betas, eigvals_only=True)
    top, bottom = float(values[-1]), float(values[0])
    return {"top_eigenvalue": top, "min_eigenvalue": bottom,
            "min_max_ratio": abs(bottom / top) if top else math.nan,
            "iterations": len(alphas), "parameters": size, "images": len(y),
            "reorthogonalisation": "full" if full else "three-term",
            "loss": loss.item()}


FULL_BASIS_BYTES = 256 * 2**20  # the most the kept Lanczos vectors may take


def reorthogonalises_fully(size: int, iterations: int) -> bool:
    """Whether the whole basis fits in FULL_BASIS_BYTES (decided before allocating it)."""
    return size * iterations * 4 <= FULL_BASIS_BYTES


def lanczos(hvp, size: int, iterations: int, seed: int = 0, full: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """The tridiagonal (diagonal, off-diagonal) of ``iterations`` Lanczos steps on the
    symmetric operator ``hvp``: with ``full`` reorthogonalisation against every earlier
    vector, else the three-term recurrence (two vectors kept). Vectors are float32, their
    products accumulated in float64."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(size, generator=generator)
    vector /= vector.norm()
    basis = [vector]
    alphas: list[float] = []
    betas: list[float] = []
    for step in range(iterations):
        w = hvp(basis[-1]).float()
        alpha = _dot(w, basis[-1])
        alphas.append(alpha)
        w -= alpha * basis[-1]
        if betas:
            w -= betas[-1] * basis[-2]
        if full:
            for q in basis:  # full reorthogonalisation keeps the Ritz values honest
                w -= _dot(w, q) * q
        beta = float(w.double().norm())
        if step == iterations - 1 or beta < 1e-10:
            break
        betas.append(beta)
        basis.append(w / beta)
        if not full:
            basis = basis[-2:]
    return np.array(alphas), np.array(betas[:len(alphas) - 1])


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.double(), b.double()))


def _split(vector: torch.Tensor, parameters: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    pieces, start = [], 0
    for p in parameters:
        pieces.append(vector[start:start + p.numel()].view_as(p).to(p.dtype))
        start += p.numel()
    return pieces
