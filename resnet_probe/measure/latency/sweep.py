"""Throughput against batch size: un-hooked forwards at each batch of the sweep."""

from __future__ import annotations

import statistics
from typing import Any

import torch
import torch.utils.benchmark as torch_benchmark

from resnet_probe.device import free_device_memory
from resnet_probe.measure.latency.setup import prepared_input, prepared_model
from resnet_probe.measure.memory import MemoryGuardError


def throughput(source, batch, config, device, threads) -> dict[str, Any]:
    row = {"model": source.text, "batch_size": batch, "device": device.type,
           "dtype": config.dtype}
    try:
        x = prepared_input(source, config, device, batch, False)  # guards first
        built = None if source.is_zoo else source.build()
        model = prepared_model(source, config, device, built).eval()
        timer = torch_benchmark.Timer("x(model)", globals={"model": model, "x": x},
                                      num_threads=threads)
        with torch.no_grad():
            timer.timeit(1)
            times = [timer.timeit(1).median for _ in range(max(3, config.repeats // 4))]
        row.update(forward_ms=statistics.median(times) * 1e3,
                   images_per_s=x.batch_size / statistics.median(times), error=None)
    except torch.cuda.OutOfMemoryError as error:
        row.update(forward_ms=None, images_per_s=None,
                   error=f"out of GPU memory: {str(error).splitlines()[0]}")
    except MemoryGuardError as error:
        row.update(forward_ms=None, images_per_s=None,
                   error=f"refused before allocating: {error}")
    if row["error"] is not None:
        free_device_memory()
    return row
