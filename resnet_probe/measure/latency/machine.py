"""What else the machine was doing: load average, CPU frequency, and the warnings they give, by
stated rules; the environment table of a latency run."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

BUSY_SPREAD_FRACTION = 0.5


def machine_load() -> dict[str, Any]:
    """Load average and CPU frequency now, where the platform tells them."""
    load = {"load_average_1min": None, "cpu_mhz": None, "cores": os.cpu_count()}
    with contextlib.suppress(OSError, AttributeError):
        load["load_average_1min"] = os.getloadavg()[0]
    with contextlib.suppress(OSError, ValueError):
        mhz = [float(line.split(":")[1]) for line in
               Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("cpu MHz")]
        load["cpu_mhz"] = statistics.fmean(mhz) if mhz else None
    return load


def spread_warning(name: str, models: list[dict[str, Any]]) -> str | None:
    """Rule: rounds are far noisier than normal when the whole-model forward's IQR exceeds
    BUSY_SPREAD_FRACTION of its median."""
    row = next((r for r in models if r["model"] == name), None)
    if row is None or not row["forward_ms_iqr"]:
        return None
    relative = row["forward_ms_iqr"] / row["forward_ms"]
    if relative > BUSY_SPREAD_FRACTION:
        return (f"{name}'s forward varied by {relative:.0%} of its median across rounds (IQR), "
                f"far above an idle machine's spread; its times are unreliable")
    return None


def busy_warning(load: dict[str, Any], threads: int) -> str | None:
    """Rule: the machine is busy when the 1-minute load average, taken before timing, exceeds
    the number of threads timing uses; other work then shares the cores being measured."""
    average = load.get("load_average_1min")
    if average is not None and average > threads:
        return (f"the machine was busy before timing (1-minute load average {average:.1f} "
                f"with {threads} thread(s) timing on {load.get('cores')} cores); other work "
                f"shared the cores, so these times are inflated and unreliable")
    return None


def environment(device, config, threads, peak) -> dict[str, Any]:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    return {"device": device.type, "device_name": name, "threads": threads,
            "torch_version": torch.__version__, "dtype": config.dtype,
            "channels_last": config.channels_last, "engine": config.engine, **peak,
            **machine_load(),
            "config": asdict(config)}
