"""CIFAR-10 (Krizhevsky 2009): the python-pickle release, 50k/10k 32x32 RGB images."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from resnet_probe.data.dataset import ImageDataset, standardize
from resnet_probe.data.download import RemoteFile, fetch

ARCHIVE = RemoteFile("cifar-10-python.tar.gz",
                     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                     "c58f30108f718f92721af3b95e74349a")
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


def _read_batches(archive: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(archive, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        for name in names:
            if name not in members:
                raise ValueError(f"{str(archive)!r} has no {name}; is it the python release?")
            # The archive's checksum was verified before this load, so unpickling is trusted.
            file = tar.extractfile(members[name])
            assert file is not None  # only regular files are members here
            batch = pickle.load(file, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch["labels"])
    return np.concatenate(images), np.asarray(labels, dtype=np.int64)


def load_cifar10(directory: Path, download: bool = True, archive: RemoteFile = ARCHIVE
                 ) -> ImageDataset:
    path = fetch(archive, directory, download)
    train_x, train_y = _read_batches(path, TRAIN_BATCHES)
    test_x, test_y = _read_batches(path, TEST_BATCHES)
    train, test = standardize(torch.from_numpy(train_x).float() / 255.0,
                              torch.from_numpy(test_x).float() / 255.0)
    return ImageDataset("cifar10", train, torch.from_numpy(train_y), test,
                        torch.from_numpy(test_y), 10, f"CIFAR-10 from {directory}")
