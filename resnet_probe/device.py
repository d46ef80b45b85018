"""Which device a measurement or a training run uses."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda")


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
