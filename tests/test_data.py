"""Datasets: the embedded default, and the real loaders on small files in the original formats."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from resnet_probe.data import ChecksumError, cifar10, download, fashion_mnist, load_dataset
from resnet_probe.data.download import DownloadError, RemoteFile, fetch


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (12, 28, 28)),
        "train_labels": np.arange(12) % 10,
        "test_images": rng.integers(0, 256, (5, 28, 28)),
        "test_labels": np.array([9, 8, 7, 6, 5]),
    }
    files = {}
    for key, remote in fashion_mnist.FILES.items():
        path = tmp_path / remote.filename
        write_idx(path, arrays[key])
        files[key] = RemoteFile(remote.filename, "http://unused.invalid/" + remote.filename,
                                md5(path))
    return tmp_path, files, arrays


def test_digits_default_is_offline_and_real():
    data = load_dataset()
    assert data.name == "digits" and data.num_classes == 10
    assert data.train_x.shape == (1500, 1, 16, 16) and data.test_x.shape == (297, 1, 16, 16)
    assert set(data.train_y.unique().tolist()) == set(range(10))
    assert abs(data.train_x.mean().item()) < 1e-4  # standardized on the training split
    assert data.resized(32).train_x.shape == (1500, 1, 32, 32)


def test_fashion_mnist_reads_idx(fashion_files):
    directory, files, arrays = fashion_files
    data = fashion_mnist.load_fashion_mnist(directory, download=False, files=files)
    assert data.train_x.shape == (12, 1, 28, 28) and data.test_x.shape == (5, 1, 28, 28)
    assert data.test_y.tolist() == [9, 8, 7, 6, 5]
    raw = fashion_mnist.read_idx(directory / files["train_images"].filename)
    assert np.array_equal(raw, arrays["train_images"])


def test_real_checksums_are_the_published_ones():
    assert fashion_mnist.FILES["train_images"].md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert cifar10.ARCHIVE.md5 == "c58f30108f718f92721af3b95e74349a"


def test_corrupt_file_names_the_file(fashion_files):
    directory, files, _ = fashion_files
    path = directory / files["test_labels"].filename
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz.*checksum mismatch|"
                                            r"checksum mismatch.*t10k-labels-idx1-ubyte\.gz"):
        fashion_mnist.load_fashion_mnist(directory, download=False, files=files)


def test_truncated_idx_is_rejected(tmp_path):
    path = tmp_path / "bad-idx3-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated"):
        fashion_mnist.read_idx(path)


def write_cifar_archive(path: Path, per_batch: int = 3) -> None:
    rng = np.random.default_rng(1)
    with tarfile.open(path, "w:gz") as tar:
        for name in (*cifar10.TRAIN_BATCHES, *cifar10.TEST_BATCHES):
            batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                     "labels": list(range(per_batch)), "batch_label": name}
            payload = pickle.dumps(batch)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_cifar10_reads_pickled_batches(tmp_path):
    archive = tmp_path / cifar10.ARCHIVE.filename
    write_cifar_archive(archive)
    remote = RemoteFile(archive.name, "http://unused.invalid/x", md5(archive))
    data = cifar10.load_cifar10(tmp_path, download=False, archive=remote)
    assert data.train_x.shape == (15, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert data.train_y.tolist() == [0, 1, 2] * 5


def test_cifar10_checksum_failure(tmp_path):
    archive = tmp_path / cifar10.ARCHIVE.filename
    write_cifar_archive(archive)
    with pytest.raises(ChecksumError, match="cifar-10-python.tar.gz"):
        cifar10.load_cifar10(tmp_path, download=False)  # the real md5 cannot match


class FakeResponse:
    def __init__(self, payload: bytes, fail_after: int | None = None):
        self.payload, self.fail_after, self.sent = payload, fail_after, 0
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, size):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        chunk = self.payload[self.sent:self.sent + min(size, 1000)]
        self.sent += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_then_renames(tmp_path, monkeypatch):
    payload = b"resnet-probe" * 500
    remote = RemoteFile("blob.bin", "http://example.invalid/blob.bin",
                        hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(payload))
    path = fetch(remote, tmp_path)
    assert path.read_bytes() == payload
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_interrupted_download_leaves_nothing_trusted(tmp_path, monkeypatch):
    payload = b"x" * 5000
    remote = RemoteFile("blob.bin", "http://example.invalid/blob.bin",
                        hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(payload, fail_after=2000))
    with pytest.raises(DownloadError, match="the connection failed during the download"):
        fetch(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half file, no leftover .part


def test_corrupt_download_is_not_kept(tmp_path, monkeypatch):
    remote = RemoteFile("blob.bin", "http://example.invalid/blob.bin", "0" * 32)
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"tampered"))
    with pytest.raises(ChecksumError):
        fetch(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="downloading is off"):
        fetch(RemoteFile("a.gz", "http://x.invalid/a.gz", "0" * 32), tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*digits"):
        load_dataset("imagenet")
