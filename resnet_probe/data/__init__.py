"""Datasets: the embedded offline default and real downloadable ones."""

from __future__ import annotations

from pathlib import Path

from resnet_probe.data.dataset import ImageDataset, fit_channels
from resnet_probe.data.download import DEFAULT_CACHE, ChecksumError

DATASETS = ("digits", "fashion-mnist", "cifar10")
DEFAULT_DATASET = "digits"


def load_dataset(name: str = DEFAULT_DATASET, data_dir: str | Path | None = None,
                 download: bool = True) -> ImageDataset:
    """Load by name; real datasets are cached under ``data_dir`` (default ~/.cache/resnet-probe)."""
    directory = Path(data_dir) if data_dir else DEFAULT_CACHE / name
    if name == "digits":
        from resnet_probe.data.digits import load_digits
        return load_digits()
    if name == "fashion-mnist":
        from resnet_probe.data.fashion_mnist import load_fashion_mnist
        return load_fashion_mnist(directory, download)
    if name == "cifar10":
        from resnet_probe.data.cifar10 import load_cifar10
        return load_cifar10(directory, download)
    raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


__all__ = ["DATASETS", "DEFAULT_DATASET", "ChecksumError", "ImageDataset", "fit_channels",
           "load_dataset"]
