"""BN running statistics recomputed before an evaluation ("precise BN", as in detectron2 and
pycls). After a short run, the exponential average (momentum 0.1) still remembers the first
steps' statistics: an eval-mode net then reads near chance while its train-mode error is low,
and every analysis of the trained net (lesions, landscape, Hessian) inherits that. A train-mode
forward never reads the running statistics, so training itself is unchanged."""

from __future__ import annotations

import torch
from torch import nn

from resnet_probe.modes import in_mode

RECALIBRATION_BATCH = 128


def recalibrate_bn(model: nn.Module, images: torch.Tensor,
                   batch: int = RECALIBRATION_BATCH) -> None:
    """Set every BN's running mean and variance to their average over ``images`` (train-mode
    forwards, no gradient), then restore each BN's momentum and batch counter."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or len(images) == 0:
        return
    momenta = [norm.momentum for norm in norms]
    # the step counter stays the training's: a checkpoint's BN counters must match its step
    counts = [None if norm.num_batches_tracked is None else norm.num_batches_tracked.clone()
              for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
    try:
        with in_mode(model, training=True), torch.no_grad():
            for start in range(0, len(images), batch):
                model(images[start:start + batch])
    finally:
        for norm, momentum, count in zip(norms, momenta, counts, strict=True):
            norm.momentum = momentum
            if norm.num_batches_tracked is not None and count is not None:
                norm.num_batches_tracked.copy_(count)
