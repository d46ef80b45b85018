"""The in-memory dataset every experiment uses: tensors plus what they are."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ImageDataset:
    name: str
    train_x: torch.Tensor  # float32, N x C x H x W, standardized
    train_y: torch.Tensor  # int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    description: str

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    def resized(self, size: int) -> ImageDataset:
        """Bilinear resize of both splits, for models whose stem needs a larger input."""
        if size == self.image_size:
            return self
        return ImageDataset(self.name, _resize(self.train_x, size), self.train_y,
                            _resize(self.test_x, size), self.test_y, self.num_classes,
                            f"{self.description}, resized to {size}x{size}")

    def with_channels(self, channels: int) -> ImageDataset:
        """Grayscale repeated to RGB (or RGB averaged), for models with fixed channels."""
        return _with_channels_impl(self, channels)


def _with_channels_impl(dataset: ImageDataset, channels: int) -> ImageDataset:
    if channels == dataset.in_channels:
        return dataset
    return ImageDataset(dataset.name, fit_channels(dataset.train_x, channels), dataset.train_y,
                        fit_channels(dataset.test_x, channels), dataset.test_y,
                        dataset.num_classes, f"{dataset.description}, as {channels} channels")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def standardize(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std from the training split only, applied to both."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def fit_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale to RGB by repetition, RGB to grayscale by averaging."""
    if x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    if channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise ValueError(f"cannot map {x.shape[1]} input channels to {channels}")
