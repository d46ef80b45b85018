"""Lesion study (Veit, Wilber & Belongie 2016): delete blocks of a trained net at test time.

Deleting a residual block removes its branch and keeps its shortcut: the block returns
``relu(x)`` (post-activation, identity), ``relu(projection(x))`` (downsampling), or the bare
shortcut in a pre-activation net. A plain block has no shortcut to keep; it is replaced by the
identity, which exists only where the block keeps its input's shape. A shape-changing plain
block cannot be deleted, and is listed with that reason rather than skipped.

Foreign nets (torchvision, timm, user code) and their plain twins are lesioned on their fx
graph (surgery.py): the residual add becomes its shortcut operand, or a twin's identity-shaped
block's output reads the block's input, the same deletions by the same block boundaries.

Every error rise is also given relative to the room the net had: ``relative_rise`` =
(error - baseline) / (chance - baseline), 0 for no change and 1 for a net sent to chance, so
a net that trained worse is not favoured by having less to lose. The k-block curve is summed up
by ``k_half``: the number of deleted blocks (linearly interpolated between the k measured) at
which the mean relative rise first reaches one half; a curve that never gets there reads the
largest k measured, flagged by ``k_half_reached``.
"""

from __future__ import annotations

import contextlib
import math
import random
import statistics
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn

from resnet_probe.sources.surgery import deletable_blocks, lesioned_graph
from resnet_probe.zoo import LayerInfo, ResNet
from resnet_probe.zoo.blocks import ZeroPadShortcut, _Block


def block_table(net: nn.Module) -> list[dict[str, Any]]:
    """One row per block: its name, stage, whether it downsamples, and why it cannot be
    deleted (None when it can)."""
    if not isinstance(net, ResNet):
        # A foreign model or twin carries the structure discovered when it was built.
        return [{"block": block,
                 "stage": cast(dict[str, LayerInfo], net.layer_info)[block].stage,
                 "downsampling": downsampling, "not_deletable_because": reason}
                for block, (downsampling, reason) in deletable_blocks(net).items()]
    rows = []
    for name, block in net.blocks():
        info = net.layer_info[name]
        first_conv = getattr(block, block._pairs[0][0])
        last_conv = getattr(block, block._pairs[-1][0])
        keeps_shape = block.stride == 1 and first_conv.in_channels == last_conv.out_channels
        reason = None
        if not block.residual and not keeps_shape:
            reason = (f"changes shape ({first_conv.in_channels} -> {last_conv.out_channels} "
                      f"channels, stride {block.stride}) and has no shortcut to keep, so no "
                      f"identity can replace it")
        rows.append({"block": name, "stage": info.stage, "downsampling": not keeps_shape,
                     "not_deletable_because": reason})
    return rows


def _deleted_forward(block: _Block):
    """The block's forward with its branch removed (see the module docstring)."""
    def forward(x: torch.Tensor) -> torch.Tensor:
        if not block.residual or block.downsample is None:
            return x if block.preact else block.relu(x)
        if block.preact and not isinstance(block.downsample, ZeroPadShortcut):
            x = block.relu(getattr(block, block._pairs[0][1])(x))  # the pre-activated input
        shortcut = block.downsample(x)
        return shortcut if block.preact else block.relu(shortcut)
    return forward


@contextlib.contextmanager
def lesioned(net: nn.Module, names: list[str]) -> Iterator[nn.Module]:
    """``net`` with the named blocks deleted (evaluate what this yields); restored on exit."""
    if not isinstance(net, ResNet):
        known = deletable_blocks(net)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"no such block(s): {', '.join(unknown)}; blocks are "
                             f"{', '.join(known)}")
        yield lesioned_graph(net, names).eval()
        return
    blocks = dict(net.blocks())
    unknown = [name for name in names if name not in blocks]
    if unknown:
        raise ValueError(f"no such block(s): {', '.join(unknown)}; blocks are "
                         f"{', '.join(blocks)}")
    deletable = {row["block"]: row["not_deletable_because"] for row in block_table(net)}
    refused = [f"{name}: {deletable[name]}" for name in names if deletable[name]]
    if refused:
        raise ValueError("; ".join(refused))
    try:
        for name in names:
            vars(blocks[name])["forward"] = _deleted_forward(blocks[name])  # instance wins
        yield net
    finally:
        for name in names:
            blocks[name].__dict__.pop("forward", None)


@torch.no_grad()
def error_on(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    net.eval()
    wrong = sum((net(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum().item()
                for i in range(0, len(y), batch))
    return wrong / len(y)


def relative_rise(error: float | None, baseline: float, chance: float) -> float:
    """(error - baseline) / (chance - baseline); NaN when the net has no room (its own error
    is at chance) or the block could not be deleted."""
    room = chance - baseline
    if error is None or room <= 1e-9:
        return math.nan
    return (error - baseline) / room


def lesion_by_block(net: nn.Module, x: torch.Tensor, y: torch.Tensor, chance: float
                    ) -> list[dict[str, Any]]:
    """Error with each single block deleted; undeletable blocks carry their reason and no
    error."""
    baseline = error_on(net, x, y)
    rows = []
    for row in block_table(net):
        error = None
        if row["not_deletable_because"] is None:
            with lesioned(net, [row["block"]]) as deleted:
                error = error_on(deleted, x, y)
        rows.append({**row, "error": error, "baseline_error": baseline,
                     "relative_rise": relative_rise(error, baseline, chance)})
    return rows


def lesion_by_count(net: nn.Module, x: torch.Tensor, y: torch.Tensor, chance: float,
                    samples: int = 10, max_removed: int | None = None, seed: int = 0
                    ) -> list[dict[str, Any]]:
    """Error with k random shape-preserving blocks deleted, for k = 0.. ``max_removed``
    (default: all of them), each averaged over ``samples`` random choices."""
    candidates = [row["block"] for row in block_table(net) if not row["downsampling"]]
    largest = len(candidates) if max_removed is None else min(max_removed, len(candidates))
    chooser = random.Random(seed)
    rows = []
    baseline = math.nan
    for removed in range(largest + 1):
        draws = 1 if removed == 0 else samples
        errors = []
        for _ in range(draws):
            with lesioned(net, chooser.sample(candidates, removed)) as deleted:
                errors.append(error_on(deleted, x, y))
        mean = statistics.fmean(errors)
        baseline = mean if removed == 0 else baseline
        rows.append({"removed": removed, "error": mean,
                     "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                     "relative_rise": relative_rise(mean, baseline, chance),
                     "samples": draws, "candidates": len(candidates)})
    return rows


def k_half(rows: list[dict[str, Any]]) -> tuple[float, bool]:
    """The k at which the mean relative rise first reaches 1/2, interpolated linearly between
    the measured k; (largest k, False) when it never does."""
    points = [(row["removed"], row["relative_rise"]) for row in rows
              if not math.isnan(row["relative_rise"])]
    for (k0, r0), (k1, r1) in zip(points, points[1:], strict=False):
        if r1 >= 0.5 > r0:
            return k0 + (0.5 - r0) / (r1 - r0) * (k1 - k0), True
    return (float(points[-1][0]) if points else math.nan), False
