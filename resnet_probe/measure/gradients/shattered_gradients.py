"""Shattering (Balduzzi et al. 2017, "The Shattered Gradients Problem"), measured on images.

On a 1-D grid of inputs interpolated between two digits, the gradient of a random projection of
a block output with respect to the input is computed at every point, and ``correlation`` at each
``lag`` is the mean Pearson correlation of gradients that many grid points apart (1 = smooth,
0 = white noise); ``SHATTERING_METHOD`` says how this differs from the paper. A model fed
``--input`` tensors has no line between two images, so the probe skips it and says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.gradients.batch import Fed, make_batch
from resnet_probe.measure.gradients.block_probe import block_depth, recorded_layer_info
from resnet_probe.measure.gradients.config import GradientConfig, probe_setting
from resnet_probe.measure.hooks import hooked
from resnet_probe.modes import in_mode
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.sources.surgery import block_modules

SHATTER_LAGS = (0, 1, 2, 4, 8, 16, 32, 64, 128)
BN_STATISTICS_IMAGES = 64  # the data batch that fixes BN statistics for shattering
SHATTERING_METHOD = (
    "Balduzzi-style (after Balduzzi et al. 2017): the input moves along a line of N points "
    "between two digits; for a random projection of a block's output, the gradient with respect "
    "to the input image is taken at every point, and the correlation of the gradients at points "
    "`lag` apart is averaged along the line. It differs from the paper's experiment, which "
    "feeds a scalar to fully-connected nets and correlates df/dx along that 1-D input: here "
    "the input is an image and each gradient a vector of pixels. BN statistics are fixed from "
    "a batch of 64 training digits (eval mode), so each point's gradient depends on that point "
    "alone, as in the paper's nets without BN; in train mode the grid would be one BN batch "
    "whose points' gradients depend on each other. Samples are the (seed, projection) pairs.")


def shattering(source: ModelSource | str, config: GradientConfig) -> list[dict[str, Any]]:
    """Per block at the end of each stage and per lag: the mean correlation of input
    gradients ``lag`` points apart and its spread over (seed, projection) samples (see
    SHATTERING_METHOD). Lag 0 is 1 by definition; white-noise gradients give 0 elsewhere."""
    source = resolve(source)
    name = source.text
    samples: dict[tuple[str, int], list[float]] = {}
    places: dict[str, tuple[str, int]] = {}
    for seed in config.seeds:
        for block, stage, depth, grads in grid_gradients(source, seed, config):
            places[block] = (stage, depth)
            for lag in SHATTER_LAGS:
                if lag < grads.shape[1]:
                    samples.setdefault((block, lag), []).extend(
                        lag_correlation(g, lag) for g in grads)
    rows = []
    for (block, lag), values in samples.items():
        stage, depth = places[block]
        rows.append({"model": name, "block": block, "stage": stage, "depth": depth,
                     "lag": lag, "correlation": statistics.fmean(values),
                     "correlation_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "samples": len(values), "points": config.shatter_points,
                     "bn": "fixed from a data batch"})
    return rows


def grid_gradients(source: ModelSource, seed: int, config: GradientConfig,
                   points: torch.Tensor | None = None
                   ) -> Iterator[tuple[str, str, int, torch.Tensor]]:
    """(block, stage, depth, gradients [projections x points x input size]) for the last block
    of each stage. ``points`` overrides the line (tests feed a subset of it)."""
    setting_ = probe_setting(source, config)
    torch.manual_seed(seed)
    model = setting_.build(source)
    x = _image_batch(make_batch(model, config, seed, source, setting_.size, batch_size=2)[0])
    if points is None:
        t = torch.linspace(0, 1, config.shatter_points).view(-1, 1, 1, 1)
        points = (1 - t) * x[0:1] + t * x[1:2]
    fix_bn_statistics(model, _image_batch(make_batch(model, config, seed + 1, source,
                                                     setting_.size,
                                                     batch_size=BN_STATISTICS_IMAGES)[0]))
    line = points.clone().requires_grad_(True)
    blocks = block_modules(model)
    stage_ends: dict[str, str] = {}
    for block_name in blocks:
        stage_ends[recorded_layer_info(model)[block_name].stage] = block_name
    watched = {block: blocks[block] for block in stage_ends.values()}
    outputs: dict[str, torch.Tensor] = {}

    def install(session) -> None:
        for block_name, module in watched.items():
            session.add(module.register_forward_hook(
                lambda m, a, out, block_name=block_name: outputs.__setitem__(block_name, out)))

    generator = torch.Generator().manual_seed(seed)
    with hooked(model, train=False, install=install):
        model(line)
        names = list(watched)
        for index, block_name in enumerate(names):
            out = outputs[block_name]
            grads = []
            for projection_index in range(config.shatter_projections):
                projection = torch.randn(out.shape[1:], generator=generator)
                last = (index == len(names) - 1
                        and projection_index == config.shatter_projections - 1)
                (grad,) = torch.autograd.grad((out * projection).sum(), line,
                                              retain_graph=not last)
                grads.append(grad.flatten(1))
            yield (block_name, recorded_layer_info(model)[block_name].stage,
                   block_depth(model, block_name), torch.stack(grads))


def _image_batch(batch: Fed) -> torch.Tensor:
    """The image batch shattering moves along (measure_gradients skips it for a model fed
    --input tensors)."""
    if not isinstance(batch, torch.Tensor):
        raise InvalidRequest("shattering moves along a line between two images; this model "
                             "is fed --input tensors")
    return batch


def fix_bn_statistics(model: nn.Module, batch: torch.Tensor) -> None:
    """Set every BN's running statistics to ``batch``'s (a cumulative average over one
    forward, so exactly that batch's), leaving the weights untouched."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        with in_mode(model, training=True), torch.no_grad():
            model(batch)
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def lag_correlation(gradients: torch.Tensor, lag: int) -> float:
    """Mean Pearson correlation between the gradients at grid points ``lag`` apart
    (``gradients``: points x input size)."""
    centered = gradients - gradients.mean(dim=1, keepdim=True)
    unit = centered / centered.norm(dim=1, keepdim=True).clamp_min(1e-30)
    if lag == 0:
        return (unit * unit).sum(dim=1).mean().item()
    return (unit[:-lag] * unit[lag:]).sum(dim=1).mean().item()
