"""Per-module forward and backward latency on CPU and GPU, with the raw samples kept.

Timing semantics. Each leaf module is timed between a pre-hook and a post-hook: on CPU with
``time.perf_counter``; on CUDA with events recorded in the hooks and read after one synchronize
at the end of the pass, so no module forces a device sync (DeepSpeed's profiler does, which
distorts what it measures). Backward times use full backward pre-/post-hooks on the same leaves.
A module called twice in a pass (torchvision's shared ReLU) is the sum of its calls.
Forward and backward are timed in separate passes, each with only its own hooks (backward hooks
wrap every module in extra autograd nodes, which would inflate forward times). Passes run in
eval mode (batch norm uses running statistics) with in-place ReLUs made out-of-place.
``warmup`` passes run first and are discarded; ``repeats`` passes are kept as raw samples, from
which median, IQR and min are derived. A layer is flagged noisy when its IQR exceeds
``NOISY_IQR_FRACTION`` of its median.

Whole-model times, the ones models are compared by, come from separate un-hooked passes run in
interleaved rounds: every round times each model once in a fresh random order, so drift on a
shared machine hits all models alike. Each model's median gets a bootstrap 95% interval, and each
difference against the first model one paired by round (``resnet_probe.stats``); a difference
whose interval spans zero is reported as no measurable difference.

Overhead is reported, not hidden: the hooked whole-model time sits next to the un-hooked one,
and the sum of per-layer times next to the model total. Per-layer throughput counts FLOPs as
2 x conv/linear MACs plus one per element for elementwise layers, and bytes as weights + input +
output at the run's dtype.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_probe.device import CPU_CORES, free_device_memory, resolve_device
from resnet_probe.measure.latency.hooked import profile_layers, summarize
from resnet_probe.measure.latency.machine import (
    START_INTERVAL_S,
    START_READINGS,
    ThreadGuard,
    busy_warning,
    environment,
    others_running,
    spread_warning,
    timing_threads,
)
from resnet_probe.measure.latency.profiled import profile_with_profiler
from resnet_probe.measure.latency.roofline import peaks
from resnet_probe.measure.latency.rounds import interleaved_rounds, latency_differences
from resnet_probe.measure.latency.setup import (
    LATENCY_DEFAULTS,
    Fed,
    LatencyConfig,
    LatencyResult,
    check_dtype_supported,
)
from resnet_probe.measure.latency.sweep import throughput
from resnet_probe.measure.memory import MemoryGuardError
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.stats import median_interval

__all__ = ["LatencyConfig", "LatencyResult", "check_dtype_supported", "measure_latency",
           "summarize"]


def measure_latency(models: list[str | nn.Module | ModelSource],
                    config: LatencyConfig = LATENCY_DEFAULTS,
                    progress: Progress = NO_PROGRESS,
                    trace_dir: Path | None = None) -> LatencyResult:
    """Time every module of every model (any MODEL source, or an nn.Module) with the
    config's engine: hooks around each leaf, or torch.profiler's events (``profiled``; with
    ``trace_dir``, a Chrome trace per model and direction). A model that runs out of GPU
    memory is recorded in ``failures`` and the rows already measured are kept."""
    sources = {source.text: source for source in map(resolve, models)}
    device = resolve_device(config.device)
    check_dtype_supported(config.dtype, device)
    # On a CPU, other work on the machine decides the default thread count (machine.py).
    others = (others_running(START_READINGS, START_INTERVAL_S) if device.type == "cpu"
              else None)
    choice = timing_threads(config.threads, CPU_CORES, others)
    threads = choice.threads
    guard = ThreadGuard(config.threads, CPU_CORES, threads) if others is not None else None
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    result = LatencyResult()
    try:
        peak = peaks(device, config)
        result.environment = {**environment(device, config, threads, peak),
                              "threads_requested": config.threads, "others_running": others}
        busy = (choice.warning if others is not None
                else busy_warning(result.environment, threads))
        if busy is not None:
            result.warnings.append(busy)
        profiled: dict[str, tuple[torch.nn.Module, Fed, list, dict]] = {}
        for name, source in sources.items():
            progress.set_description(f"latency {name}")
            failure = None
            try:
                if config.engine == "profiler":
                    profiled[name] = profile_with_profiler(source, config, device, peak,
                                                           result, trace_dir)
                else:
                    profiled[name] = profile_layers(source, config, device, peak, result)
            except torch.cuda.OutOfMemoryError as error:
                failure = f"out of GPU memory: {str(error).splitlines()[0]}"
            except MemoryGuardError as error:  # the others are still timed
                failure = f"refused before allocating: {error}"
            if failure is not None:  # outside `except`, so the traceback's tensors are freed
                result.failures.append({"model": name, "batch_size": config.batch_size,
                                        "error": failure})
                free_device_memory()
            progress.update(1)
        progress.set_description("latency: interleaved rounds")
        rounds, lost = interleaved_rounds(
            {name: entry[:2] for name, entry in profiled.items()}, config, device, guard)
        result.rounds.extend(rounds)
        if guard is not None and guard.notes:
            result.warnings.extend(guard.notes)
            threads = guard.threads  # what the last rounds and the sweep run at
        for name, lost_because in lost.items():
            result.failures.append({"model": name, "batch_size": config.batch_size,
                                    "error": lost_because})
            del profiled[name]
        for name, (_, fed, layer_rows, whole) in profiled.items():
            result.models.append(_model_row(sources[name], device, config, threads, whole,
                                            layer_rows, fed,
                                            [r for r in rounds if r["model"] == name],
                                            [p for p in result.passes if p["model"] == name]))
            spread = spread_warning(name, result.models)
            if spread is not None:
                result.warnings.append(spread)
        batch = next((fed.batch_size for _, fed, _, _ in profiled.values()),
                     config.batch_size)
        result.comparisons.extend(latency_differences(result.rounds, list(profiled), batch))
        del profiled
        free_device_memory()
        for source in sources.values():
            for batch in config.sweep_batch_sizes:
                result.sweep.append(throughput(source, batch, config, device, threads))
                progress.update(1)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _model_row(source, device, config, threads, whole, layer_rows, fed: Fed, rounds,
               passes_of: list[dict[str, Any]]) -> dict[str, Any]:
    name = source.text
    forward = [r for r in layer_rows if r["direction"] == "forward"]
    backward = [r for r in layer_rows if r["direction"] == "backward"]
    hooked_ms = statistics.median(whole["hooked_forward"])
    unhooked = [r["forward_ms"] for r in rounds]
    unhooked_ms = statistics.median(unhooked)
    forward_interval = median_interval(unhooked)
    backward_interval = (median_interval([r["backward_ms"] for r in rounds])
                         if config.backward else None)
    layer_sum = sum(r["median_ms"] for r in forward)
    passes = {direction: [p for p in passes_of if p["direction"] == direction]
              for direction in ("forward", "backward")}
    launch_bound = {key: value for direction, rows in passes.items() if rows
                    for key, value in (
                        (f"{direction}_launch_bound_fraction",
                         statistics.median(p["launch_bound_fraction"] for p in rows)),
                        (f"{direction}_busy_ms", statistics.median(p["busy_ms"] for p in rows)))}
    return {
        "model": name, "engine": config.engine, "device": device.type, "dtype": config.dtype,
        "threads": threads,
        "batch_size": fed.batch_size,
        "input_size": fed.input_size,
        "inputs": fed.description,
        "channels_last": config.channels_last,
        "forward_ms": unhooked_ms,
        "forward_ms_ci95_low": forward_interval.low,
        "forward_ms_ci95_high": forward_interval.high,
        "forward_ms_iqr": summarize(unhooked)["iqr_ms"],
        "backward_ms": backward_interval.estimate if backward_interval else None,
        "backward_ms_ci95_low": backward_interval.low if backward_interval else None,
        "backward_ms_ci95_high": backward_interval.high if backward_interval else None,
        "hooked_backward_ms": (statistics.median(whole["hooked_backward"]) if backward
                               else None),
        "hooked_forward_ms": hooked_ms,
        "layer_sum_backward_ms": sum(r["median_ms"] for r in backward) if backward else None,
        "hook_overhead_ratio": hooked_ms / unhooked_ms,
        "layer_sum_forward_ms": layer_sum,
        "layer_sum_to_total": layer_sum / hooked_ms,
        "images_per_s": fed.batch_size / (unhooked_ms / 1e3),
        "noisy_layers": sum(r["noisy"] for r in layer_rows),
        "repeats": config.repeats, "warmup": config.warmup, **launch_bound,
    }
