"""Effective path lengths (Veit, Wilber & Belongie 2016, Fig. 6) of a trained residual net.

A net of n residual blocks unrolls into 2^n paths, one per choice at each block of the branch
or the shortcut; C(n, k) of them pass through k branches, so path lengths are binomial, with
mean n/2. To measure the gradient that reaches the input through paths of one length, the
forward pass runs unchanged and, at each block, the gradient is let through either the branch
(the shortcut's output is detached) or the shortcut (the branch's is), with k branches drawn at
random: the backward then follows that single path. ``gradient_magnitude`` is the mean over
images (in eval mode, so each image's gradient is its own) and draws of ||dL_i/dx_i||.

Veit et al.'s claim: the gradient through a path shrinks fast with its length, so most of the
gradient comes from paths far shorter than the net. ``effective_length`` is the path length
below which half of the total contribution (share of paths x gradient magnitude) lies.

Zoo residual nets only: a foreign net's blocks would need the same detach at their adds.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.zoo import ResNet
from resnet_probe.zoo.blocks import ZeroPadShortcut, _Block


def path_fractions(blocks: int) -> dict[int, float]:
    """The share of the 2^n paths that pass through k branches: C(n, k) / 2^n."""
    return {k: math.comb(blocks, k) / 2 ** blocks for k in range(blocks + 1)}


def _path_forward(block: _Block, through_branch: bool):
    """The block's forward with its value unchanged and its gradient routed through the
    branch only, or the shortcut only."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        if block.preact:
            pre = block.relu(getattr(block, block._pairs[0][1])(x))
            out = getattr(block, block._pairs[0][0])(pre)
            for conv, bn in block._pairs[1:]:
                out = getattr(block, conv)(block.relu(getattr(block, bn)(out)))
            if block.downsample is None:
                shortcut = x
            else:
                source = x if isinstance(block.downsample, ZeroPadShortcut) else pre
                shortcut = block.downsample(source)
        else:
            out = x
            for index, (conv, bn) in enumerate(block._pairs):
                out = getattr(block, bn)(getattr(block, conv)(out))
                if index < len(block._pairs) - 1:
                    out = block.relu(out)
            shortcut = x if block.downsample is None else block.downsample(x)
        joined = out + shortcut.detach() if through_branch else out.detach() + shortcut
        return joined if block.preact else block.relu(joined)
    return forward


@contextlib.contextmanager
def routed(net: ResNet, branches: set[str]) -> Iterator[ResNet]:
    """``net`` with each block's gradient routed through its branch (``branches``) or its
    shortcut (the others); restored on exit."""
    blocks = dict(net.blocks())
    try:
        for name, block in blocks.items():
            vars(block)["forward"] = _path_forward(block, name in branches)  # instance wins
        yield net
    finally:
        for block in blocks.values():
            block.__dict__.pop("forward", None)


def path_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 3,
                   seed: int = 0) -> list[dict[str, Any]]:
    """Per path length k: its share of all paths and the gradient magnitude at the input
    through sampled paths of that length. Empty for a net without residual blocks."""
    if not isinstance(net, ResNet) or not net.spec.shortcut:
        return []
    names = [name for name, _ in net.blocks()]
    fractions = path_fractions(len(names))
    chooser = random.Random(seed)
    rows = []
    net.eval()
    for k in range(len(names) + 1):
        draws = 1 if k in (0, len(names)) else samples  # one path has no branch, one all
        magnitudes = []
        for _ in range(draws):
            with routed(net, set(chooser.sample(names, k))):
                inputs = x.clone().requires_grad_(True)
                loss = F.cross_entropy(net(inputs), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, inputs)
            magnitudes.append(grad.flatten(1).norm(dim=1).mean().item())
        rows.append({"path_length": k, "blocks": len(names), "fraction": fractions[k],
                     "paths": math.comb(len(names), k), "samples": draws,
                     "gradient_magnitude": sum(magnitudes) / len(magnitudes)})
    return rows


def effective_length(rows: list[dict[str, Any]]) -> float:
    """The path length below which half of the total gradient contribution lies: each length
    k is a bin [k - 1/2, k + 1/2] over which its contribution (fraction x magnitude) spreads
    evenly, so equal magnitudes put it at n/2, the binomial's middle."""
    contributions = [(row["path_length"], row["fraction"] * row["gradient_magnitude"])
                     for row in sorted(rows, key=lambda r: r["path_length"])]
    total = sum(c for _, c in contributions)
    if not total:
        return math.nan
    running = 0.0
    for k, contribution in contributions:
        if running + contribution >= total / 2:
            return k - 0.5 + (total / 2 - running) / contribution
        running += contribution
    return float(contributions[-1][0])
