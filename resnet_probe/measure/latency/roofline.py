"""The roofline's peaks: given by the user, or measured here with a large matmul and a large
copy."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from resnet_probe.device import DTYPES
from resnet_probe.measure.latency.setup import LatencyConfig


def peaks(device: torch.device, config: LatencyConfig) -> dict[str, Any]:
    """Peak compute and bandwidth for the roofline: the user's, or measured here and now."""
    dtype = DTYPES[config.dtype]
    source = "given by the user"
    gflops, gbytes = config.peak_gflops, config.peak_gbytes_per_s
    if gflops is None:
        n = 4096 if device.type == "cuda" else 1024
        a = torch.randn(n, n, device=device, dtype=dtype)
        seconds = _best_of(lambda: a @ a, device)
        gflops = 2 * n**3 / seconds / 1e9
        source = "measured in this run"
    if gbytes is None:
        megabytes = 1024 if device.type == "cuda" else 64  # long enough to time on each
        big = torch.empty(megabytes * 2**20 // 4, device=device, dtype=torch.float32)
        seconds = _best_of(lambda: big.clone(), device)
        gbytes = 2 * big.numel() * 4 / seconds / 1e9
        source = "measured in this run" if config.peak_gflops is None else "mixed"
    return {"peak_gflops": gflops, "peak_gbytes_per_s": gbytes,
            "peak_source": source + " (matmul for compute, large copy for bandwidth)"}


def _best_of(fn, device: torch.device, tries: int = 5) -> float:
    best = math.inf
    for _ in range(tries):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best
