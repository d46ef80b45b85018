"""Checksummed, atomic downloads into a cache directory.

A file is trusted only after its MD5 matches the published checksum. Downloads go to a
temporary sibling and are renamed into place after verification, so an interrupted download
never leaves a half file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import NO_PROGRESS, Progress

DEFAULT_CACHE = Path(os.environ.get("RESNET_PROBE_DATA", Path.home() / ".cache" / "resnet-probe"))


class ChecksumError(ValueError):
    """A dataset file on disk does not match its published checksum."""


class DownloadError(InvalidRequest):
    """A dataset could not be downloaded: the message says why in words (offline, or what
    the server answered) and what works without a download."""


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    url: str
    md5: str


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected_md5: str) -> None:
    actual = md5sum(path)
    if actual != expected_md5:
        raise ChecksumError(
            f"checksum mismatch for {str(path)!r}: md5 {actual}, expected {expected_md5}; "
            f"the file is corrupt or incomplete: delete it and run again to re-download")


def fetch(remote: RemoteFile, directory: Path, download: bool = True,
          progress: Progress = NO_PROGRESS) -> Path:
    """Return a verified local copy of ``remote`` in ``directory``, downloading if allowed."""
    path = Path(directory) / remote.filename
    if path.exists():
        verify(path, remote.md5)
        return path
    if not download:
        raise FileNotFoundError(f"{str(path)!r} is missing and downloading is off; "
                                f"put the file there or allow the download")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{remote.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0)
            if progress is not None and total:
                progress.reset(total=total)
            while block := response.read(1 << 16):
                out.write(block)
                progress.update(len(block))
        verify(tmp, remote.md5)
        os.replace(tmp, path)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DownloadError(_not_downloaded(remote, path, error)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _not_downloaded(remote: RemoteFile, path: Path, error: OSError) -> str:
    if isinstance(error, urllib.error.HTTPError):
        why = f"the server answered HTTP {error.code} {error.reason}"
    elif not isinstance(error, urllib.error.URLError):  # the transfer started, then broke
        why = (f"the connection failed during the download "
               f"({type(error).__name__}: {error.strerror or error})")
    else:
        reason = getattr(error, "reason", error)
        why = (f"this machine seems to be offline, or the server cannot be reached "
               f"({getattr(reason, 'strerror', None) or reason})")
    return (f"the dataset file {remote.filename} could not be downloaded from {remote.url}: "
            f"{why}; put the file at {str(path)!r} by hand, or use the digits dataset "
            f"(--dataset digits), which ships with the package and works offline")
