"""Hessian spectra of the training loss at the trained weights (Li et al. 2018, Fig. 7; the
approach of pyhessian, Yao et al. 2020).

The loss is cross-entropy on a fixed batch of training images with BN in eval mode (the trained
running statistics), so it is a fixed function of the weights. Hessian-vector products come
from differentiating the gradient (double backward); ``iterations`` steps of Lanczos with full
reorthogonalisation build a tridiagonal matrix whose extreme eigenvalues (Ritz values)
approximate the Hessian's. Reported: the top eigenvalue and |λmin / λmax|, Li et al.'s measure
of non-convexity (0 where the loss is locally convex). Lanczos finds the extremes first; with
as many iterations as parameters it is exact (tests/test_analysis.py checks it against a dense
Hessian). Cost: ``iterations`` Hessian-vector products, each about two forward-backward passes
on the batch.
"""

from __future__ import annotations

import math
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
        alphas, betas = lanczos(hvp, size, min(iterations, size), seed)
    values = eigh_tridiagonal(alphas, betas, eigvals_only=True)
    top, bottom = float(values[-1]), float(values[0])
    return {"top_eigenvalue": top, "min_eigenvalue": bottom,
            "min_max_ratio": abs(bottom / top) if top else math.nan,
            "iterations": len(alphas), "parameters": size, "images": len(y),
            "loss": loss.item()}


def lanczos(hvp, size: int, iterations: int, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """The tridiagonal (diagonal, off-diagonal) of ``iterations`` Lanczos steps on the
    symmetric operator ``hvp``, with full reorthogonalisation (float64)."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(size, generator=generator, dtype=torch.float64)
    vector /= vector.norm()
    basis = [vector]
    alphas, betas = [], []
    for step in range(iterations):
        w = hvp(basis[-1].float()).double()
        alpha = float(w @ basis[-1])
        alphas.append(alpha)
        w = w - alpha * basis[-1] - (betas[-1] * basis[-2] if betas else 0)
        for q in basis:  # full reorthogonalisation keeps the Ritz values honest
            w -= (w @ q) * q
        beta = float(w.norm())
        if step == iterations - 1 or beta < 1e-10:
            break
        betas.append(beta)
        basis.append(w / beta)
    return np.array(alphas), np.array(betas[:len(alphas) - 1])


def _split(vector: torch.Tensor, parameters: list[torch.Tensor]) -> list[torch.Tensor]:
    pieces, start = [], 0
    for p in parameters:
        pieces.append(vector[start:start + p.numel()].view_as(p).to(p.dtype))
        start += p.numel()
    return pieces
