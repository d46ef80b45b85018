"""Which device a measurement or a training run uses."""

from __future__ import annotations

import os

import torch

DEVICES = ("auto", "cpu", "cuda")


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (as taskset or a container's
    cpuset narrow it), else every core the machine has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


# The bound of every thread count a command takes: more threads than cores only time-share
# them, and far more crash OpenMP (libgomp aborts at 20,000, a segfault at 100,000).
CPU_CORES = available_cores()


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but this machine has no usable CUDA "
                         "device (torch.cuda.is_available() is False); use cpu or auto")
    return torch.device(device)


def training_device(device: str) -> str:
    """The device string a training run stores: "cpu" or "cuda:N" (the current device)."""
    resolved = resolve_device(device)
    return f"cuda:{torch.cuda.current_device()}" if resolved.type == "cuda" else "cpu"


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU), so a clock reading means it ran."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_device_memory() -> None:
    """Give cached GPU memory back after a model ran out of it, so the next one starts clean."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
