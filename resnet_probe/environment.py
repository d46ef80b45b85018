"""Where and with what a result was produced: versions, platform, command line."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import sys
from dataclasses import dataclass

import torch

PACKAGES = ("resnet-probe", "torch", "fvcore", "torchinfo", "pandas", "plotly", "click")


@dataclass(frozen=True)
class Environment:
    generated: str  # ISO 8601, UTC, to the second
    command_line: str
    python: str
    versions: tuple[tuple[str, str], ...]  # (package, version or "not installed")
    platform: str
    cpu_threads: int
    cuda_available: bool
    cuda_device: str | None

    def rows(self) -> list[tuple[str, object]]:
        """(key, value) in the order the environment table shows them."""
        return [("generated", self.generated), ("command_line", self.command_line),
                ("python", self.python),
                *((f"version_{package}", version) for package, version in self.versions),
                ("platform", self.platform), ("cpu_threads", self.cpu_threads),
                ("cuda_available", self.cuda_available), ("cuda_device", self.cuda_device)]


def current_environment(command_line: str | None = None) -> Environment:
    versions = []
    for package in PACKAGES:
        try:
            versions.append((package, importlib.metadata.version(package)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((package, "not installed"))
    return Environment(
        generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command_line=command_line or " ".join(sys.argv), python=platform.python_version(),
        versions=tuple(versions), platform=platform.platform(),
        cpu_threads=torch.get_num_threads(), cuda_available=torch.cuda.is_available(),
        cuda_device=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
