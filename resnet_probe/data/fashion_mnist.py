"""FashionMNIST (Xiao et al. 2017): 60k/10k 28x28 grayscale images in IDX files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from resnet_probe.data.dataset import ImageDataset, standardize
from resnet_probe.data.download import RemoteFile, fetch

MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", MIRROR + "train-images-idx3-ubyte.gz",
                               "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", MIRROR + "train-labels-idx1-ubyte.gz",
                               "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", MIRROR + "t10k-images-idx3-ubyte.gz",
                              "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", MIRROR + "t10k-labels-idx1-ubyte.gz",
                              "bb300cfdad3c16e7a12a480ee83cd310"),
}
_IDX_DTYPE = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: magic 0x0000 <dtype> <ndim>, big-endian dims, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPE:
        raise ValueError(f"{str(path)!r} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{str(path)!r} is truncated: header says {dims}, found {body.size} bytes")
    return body.reshape(dims)


def load_fashion_mnist(directory: Path, download: bool = True, files=None) -> ImageDataset:
    files = files or FILES
    paths = {key: fetch(remote, directory, download) for key, remote in files.items()}
    train_x = torch.from_numpy(read_idx(paths["train_images"]).astype(np.float32) / 255.0)
    test_x = torch.from_numpy(read_idx(paths["test_images"]).astype(np.float32) / 255.0)
    train_x, test_x = standardize(train_x.unsqueeze(1), test_x.unsqueeze(1))
    return ImageDataset(
        name="fashion-mnist", train_x=train_x,
        train_y=torch.from_numpy(read_idx(paths["train_labels"]).astype(np.int64)),
        test_x=test_x, test_y=torch.from_numpy(read_idx(paths["test_labels"]).astype(np.int64)),
        num_classes=10, description=f"FashionMNIST from {directory}")
