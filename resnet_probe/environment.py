"""Where and with what a result was produced: versions, platform, command line."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import sys
from typing import Any

import torch

PACKAGES = ("resnet-probe", "torch", "fvcore", "torchinfo", "pandas", "plotly", "click")


def environment_info(command_line: str | None = None) -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command_line": command_line or " ".join(sys.argv),
        "python": platform.python_version(),
        **{f"version_{k}": v for k, v in versions.items()},
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
