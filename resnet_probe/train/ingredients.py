"""What a training run is made of, apart from its loop: the model built for the dataset
(``build_for_dataset``) and the check that a batch fits it, the recipe's SGD, the CIFAR
augmentation of a batch, and the eval-mode error the run is evaluated by.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.data import ImageDataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.modes import in_mode
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train.config import TrainConfig


def check_batch_fits_dataset(batch_size: int, dataset: ImageDataset) -> None:
    """A batch larger than the training set would train on the whole set while the records
    say otherwise: refused, naming both numbers."""
    images = len(dataset.train_y)
    if batch_size > images:
        raise InvalidRequest(f"batch size {batch_size} is larger than the {images:,} training "
                             f"images of {dataset.name}; give a batch size of at most "
                             f"{images}")


def build_for_dataset(source: ModelSource | str, dataset: ImageDataset) -> nn.Module:
    """MODEL built for the dataset's classes and channels (a torchvision model keeps its 3
    channels: fit_dataset_to gives the data 3)."""
    return resolve(source).build(num_classes=dataset.num_classes,
                                 in_channels=dataset.in_channels)


def sgd(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None
        ) -> torch.optim.SGD:
    """The recipe's SGD, fused where torch has the kernel for the device: one pass over each
    parameter instead of four, 3x faster on resnet34's 21.8M parameters on a 2-core CPU
    (about 15% of a training step at 32 px; benchmarks/train_throughput.py). Its results
    differ from the unfused update only in rounding. ``groups``: parameter groups instead of
    one (the learning-rate intervention sets each intervened conv's lr)."""
    params = groups if groups is not None else model.parameters()
    try:
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or torch
        return torch.optim.SGD(groups if groups is not None else model.parameters(),
                               lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad 4 with zeros, random crop back to size, random horizontal flip (He et al. 2016)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=generator)
    dy = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def error_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500
               ) -> tuple[float, float]:
    """Eval-mode error and mean loss over (x, y)."""
    wrong, loss_sum = 0, 0.0
    with in_mode(model, training=False), torch.no_grad():
        for start in range(0, len(y), batch):
            logits = model(x[start:start + batch])
            target = y[start:start + batch]
            wrong += (logits.argmax(1) != target).sum().item()
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
    return wrong / len(y), loss_sum / len(y)
