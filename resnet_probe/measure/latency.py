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

import contextlib
import gc
import math
import os
import platform
import random
import statistics
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils.benchmark as torch_benchmark
from torch import nn

from resnet_probe.device import DEVICES, resolve_device
from resnet_probe.measure.costs import count_costs
from resnet_probe.measure.hooks import ForwardFailed, HookSession, hooked
from resnet_probe.measure.memory import MemoryGuardError, check_fits
from resnet_probe.progress import Progress
from resnet_probe.settings import INPUT_SIZE, check_settings, setting
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.stats import Difference, difference_row, median_difference, median_interval
from resnet_probe.zoo import build_on_meta

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NOISY_IQR_FRACTION = 0.25
# A whole-model forward whose IQR across rounds exceeds this fraction of its median is far noisier
# than an idle machine gives (about 0.02-0.10 here): something else shared the cores.
BUSY_SPREAD_FRACTION = 0.5


@dataclass(frozen=True)
class LatencyConfig:
    device: str = setting("auto", "auto picks CUDA when present.", choices=DEVICES)
    batch_size: int = setting(1, "Images per timed pass.", minimum=1)
    input_size: int | None = setting(None, INPUT_SIZE)
    repeats: int = setting(20, "Timed passes kept as raw samples.", minimum=1)
    warmup: int = setting(5, "Passes run first and discarded.", minimum=0)
    dtype: str = setting("fp32", "Precision of weights and inputs.", choices=tuple(DTYPES))
    threads: int | None = setting(None, "CPU threads.", minimum=1, none_means="every core")
    channels_last: bool = setting(False, "Use the channels_last memory format.")
    backward: bool = setting(True, "Time backward too, or the forward only.",
                             flag="--backward/--forward-only")
    sweep_batch_sizes: tuple[int, ...] = setting(
        (), "Throughput sweep: comma-separated batch sizes, e.g. 1,8,32.", minimum=1,
        flag="--sweep-batch", metavar="SIZES")
    peak_gflops: float | None = setting(None, "Roofline peak compute in GFLOP/s.", above=0,
                                        none_means="measured with a large matmul")
    peak_gbytes_per_s: float | None = setting(None, "Roofline peak bandwidth in GB/s.", above=0,
                                              none_means="measured with a large copy",
                                              flag="--peak-gbs")

    def __post_init__(self) -> None:
        check_settings(self)

    def work(self, models: int) -> int:
        """Progress units measure_latency reports: one per model and batch size."""
        return models * (1 + len(self.sweep_batch_sizes))


@dataclass
class LatencyResult:
    samples: list[dict[str, Any]] = field(default_factory=list)  # raw, one per pass
    layers: list[dict[str, Any]] = field(default_factory=list)  # stats per leaf & direction
    models: list[dict[str, Any]] = field(default_factory=list)  # one row per model
    rounds: list[dict[str, Any]] = field(default_factory=list)  # interleaved whole passes
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # vs the first model
    sweep: list[dict[str, Any]] = field(default_factory=list)  # images/s per batch size
    environment: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a busy machine


def check_dtype_supported(dtype: str, device: torch.device) -> None:
    """Run a tiny conv forward+backward in ``dtype``; a clear error if the device can't."""
    torch_dtype = DTYPES[dtype]
    if torch_dtype is torch.float32:
        return
    try:
        conv = torch.nn.Conv2d(3, 4, 3).to(device=device, dtype=torch_dtype)
        conv(torch.randn(1, 3, 8, 8, device=device, dtype=torch_dtype)).sum().backward()
    except (RuntimeError, NotImplementedError) as error:
        raise ValueError(f"dtype {dtype} cannot run on this {device.type} device "
                         f"({str(error).splitlines()[0]}); use fp32") from None


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    """Median, IQR and min of the raw samples, and the noisy flag."""
    ordered = sorted(samples_ms)
    q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 \
        else (ordered[0], ordered[0], ordered[0])
    median = statistics.median(ordered)
    iqr = q3 - q1
    return {"median_ms": median, "iqr_ms": iqr, "min_ms": ordered[0], "samples": len(ordered),
            "noisy": bool(median > 0 and iqr > NOISY_IQR_FRACTION * median)}


class _Timers:
    """Start/stop marks per (module, direction) for one pass; CPU clock or CUDA events."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.open: dict[tuple[str, str], Any] = {}
        self.spans: dict[tuple[str, str], list[tuple[Any, Any]]] = defaultdict(list)

    def mark(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start(self, key: tuple[str, str]) -> None:
        self.open[key] = self.mark()

    def stop(self, key: tuple[str, str]) -> None:
        self.spans[key].append((self.open.pop(key), self.mark()))

    def read_ms(self) -> dict[tuple[str, str], float]:
        if self.cuda:
            torch.cuda.synchronize()
            return {key: sum(a.elapsed_time(b) for a, b in spans)
                    for key, spans in self.spans.items()}
        return {key: sum(b - a for a, b in spans) * 1e3 for key, spans in self.spans.items()}

    def reset(self) -> None:
        self.open.clear()
        self.spans.clear()


def _install_timing_hooks(timers: _Timers, shapes: dict[str, Any], direction: str):
    """Hooks for one direction only: backward hooks wrap every module's forward in autograd
    nodes, which would inflate the forward times they sit beside."""
    def install(session: HookSession) -> None:
        for name, module in session.leaves():
            if direction == "forward":
                def pre(module, args, name=name):
                    timers.start((name, "forward"))

                def post(module, args, output, name=name):
                    timers.stop((name, "forward"))
                    if name not in shapes and args and isinstance(args[0], torch.Tensor):
                        shapes[name] = (args[0].numel(), output.numel())

                session.add(module.register_forward_pre_hook(pre))
                session.add(module.register_forward_hook(post))
            else:
                def back_pre(module, grad_output, name=name):
                    timers.start((name, "backward"))

                def back_post(module, grad_input, grad_output, name=name):
                    timers.stop((name, "backward"))

                session.add(module.register_full_backward_pre_hook(back_pre))
                session.add(module.register_full_backward_hook(back_post))
    return install


def measure_latency(models: list[str | nn.Module | ModelSource],
                    config: LatencyConfig = LatencyConfig(),
                    progress: Progress | None = None) -> LatencyResult:
    """Time every leaf of every model (any MODEL source, or an nn.Module). A model that runs
    out of GPU memory is recorded in ``failures`` and the rows already measured are kept."""
    sources = {source.text: source for source in map(resolve, models)}
    device = resolve_device(config.device)
    check_dtype_supported(config.dtype, device)
    threads = config.threads or os.cpu_count() or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    result = LatencyResult()
    try:
        peak = _peaks(device, config)
        result.environment = _environment(device, config, threads, peak)
        busy = busy_warning(result.environment, threads)
        if busy is not None:
            result.warnings.append(busy)
        cores = os.cpu_count() or threads
        if device.type == "cpu" and threads > cores:
            result.warnings.append(f"{threads} threads on {cores} cores: the extra threads "
                                   f"time-share cores, so this is not what a {threads}-core "
                                   f"machine would measure")
        profiled: dict[str, tuple[torch.nn.Module, torch.Tensor, list, dict]] = {}
        for name, source in sources.items():
            if progress is not None:
                progress.set_description(f"latency {name}")
            failure = None
            try:
                profiled[name] = _profile_layers(source, config, device, peak, result)
            except torch.cuda.OutOfMemoryError as error:
                failure = f"out of GPU memory: {str(error).splitlines()[0]}"
            except MemoryGuardError as error:  # the others are still timed
                failure = f"refused before allocating: {error}"
            if failure is not None:  # outside `except`, so the traceback's tensors are freed
                result.failures.append({"model": name, "batch_size": config.batch_size,
                                        "error": failure})
                _free_device_memory()
            if progress is not None:
                progress.update(1)
        if progress is not None:
            progress.set_description("latency: interleaved rounds")
        rounds, lost = _interleaved_rounds(
            {name: entry[:2] for name, entry in profiled.items()}, config, device)
        result.rounds.extend(rounds)
        for name, error in lost.items():
            result.failures.append({"model": name, "batch_size": config.batch_size,
                                    "error": error})
            del profiled[name]
        for name, (_, _, layer_rows, whole) in profiled.items():
            result.models.append(_model_row(sources[name], device, config, threads, whole,
                                            layer_rows,
                                            [r for r in rounds if r["model"] == name]))
            spread = _spread_warning(name, result.models)
            if spread is not None:
                result.warnings.append(spread)
        result.comparisons.extend(latency_differences(result.rounds, list(profiled),
                                                      config.batch_size))
        del profiled
        _free_device_memory()
        for source in sources.values():
            for batch in config.sweep_batch_sizes:
                result.sweep.append(_throughput(source, batch, config, device, threads))
                if progress is not None:
                    progress.update(1)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _input(source: ModelSource, config: LatencyConfig, device: torch.device, batch: int,
           training: bool, model: nn.Module | None = None) -> torch.Tensor:
    """The input batch, after checking that the pass it feeds fits in memory."""
    size = config.input_size or source.default_input_size
    if source.is_zoo:
        source.spec.check_input_size(size)
    structure = build_on_meta(source.spec) if source.is_zoo else model or source.build()
    channels = source.in_channels
    check_fits(structure, (batch, channels, size, size), device, training,
               f"timing {source.text}", element_bytes=torch.finfo(DTYPES[config.dtype]).bits // 8)
    x = torch.randn(batch, channels, size, size, device=device, dtype=DTYPES[config.dtype])
    return x.to(memory_format=torch.channels_last) if config.channels_last else x


def _prepared_model(source: ModelSource, config: LatencyConfig, device: torch.device,
                    model: nn.Module | None = None):
    model = (model or source.build()).to(device=device, dtype=DTYPES[config.dtype])
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _profile_layers(source: ModelSource, config, device, peak, result):
    """Hooked passes: every leaf's forward (and backward) samples. Returns what the
    interleaved rounds and the model row need: (model, input, layer rows, whole-pass ms)."""
    name = source.text
    built = None if source.is_zoo else source.build()
    x = _input(source, config, device, config.batch_size, config.backward, built)
    model = _prepared_model(source, config, device, built)
    timers = _Timers(device)
    shapes: dict[str, Any] = {}
    whole: dict[str, list[float]] = defaultdict(list)
    kept: dict[tuple[str, str], list[float]] = defaultdict(list)
    directions = ("forward", "backward") if config.backward else ("forward",)
    with warnings.catch_warnings():
        # The stem's backward hook fires without input grads by design; that is expected here.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for direction in directions:
            install = _install_timing_hooks(timers, shapes, direction)
            try:
                _hooked_passes(model, x, install, direction, config, timers, whole, kept,
                               result, name)
            except ForwardFailed as error:
                if direction != "backward" or "inplace" not in str(error):
                    raise
                # Full backward hooks wrap each output in a view; code that then adds in
                # place (torchvision's `out += identity`) cannot run under them.
                result.warnings.append(
                    f"{name}: per-layer backward times skipped: its forward modifies a "
                    f"hooked module's output in place ({str(error).split(':')[0]}); the "
                    f"whole-model backward is still timed in the interleaved rounds")
    costs = {row["module"]: row for row in count_costs(
        source, input_size=x.shape[-1], batch_size=config.batch_size).modules}
    element_bytes = torch.finfo(DTYPES[config.dtype]).bits // 8
    layer_rows = _layer_rows(name, model, kept, costs, shapes, element_bytes, peak)
    result.layers.extend(layer_rows)
    return model, x, layer_rows, whole


def _hooked_passes(model, x, install, direction, config, timers, whole, kept, result, name):
    """warmup + repeats hooked passes in one direction; samples go to ``kept`` and
    ``result.samples``, whole-pass times to ``whole``."""
    with hooked(model, install=install):
        for index in range(config.warmup + config.repeats):
            timers.reset()
            start = timers.mark()
            out = model(x)
            end = timers.mark()
            if direction == "backward":
                loss = out.float().sum()
                start = timers.mark()
                loss.backward()
                end = timers.mark()
                model.zero_grad(set_to_none=True)
            spans = timers.read_ms()
            if index < config.warmup:
                continue
            repeat = index - config.warmup
            whole[f"hooked_{direction}"].append(_elapsed_ms(start, end))
            for (module, module_direction), ms in spans.items():
                kept[(module, module_direction)].append(ms)
                result.samples.append({"model": name, "module": module,
                                       "direction": module_direction,
                                       "repeat": repeat, "ms": ms})


def _interleaved_rounds(prepared: dict[str, tuple[torch.nn.Module, torch.Tensor]],
                        config: LatencyConfig, device: torch.device
                        ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Un-hooked whole-model passes in rounds: each round times every model once, in a fresh
    random order (seeded), so drift on a shared machine hits every model alike and round r of
    one model pairs with round r of another. Forward rounds (eval mode, autograd on, output
    dropped) run first, then, if asked, backward rounds: as in the hooked passes, forward and
    backward are timed apart (a forward right after a backward runs ~15% slower on this CPU).
    Returns the rows and the models dropped for running out of GPU memory (with the error)."""
    phases = ("forward", "backward") if config.backward else ("forward",)
    shuffle = random.Random(0)
    times: dict[tuple[str, int], dict[str, Any]] = {}
    lost: dict[str, str] = {}
    for phase in phases:
        order = list(prepared)
        for round_index in range(-config.warmup, config.repeats):
            shuffle.shuffle(order)
            for position, name in enumerate(order):
                if name in lost:
                    continue
                try:
                    ms = _timed_pass(*prepared[name], phase, device)
                except torch.cuda.OutOfMemoryError as error:
                    lost[name] = f"out of GPU memory: {str(error).splitlines()[0]}"
                    continue
                if round_index >= 0:  # warm-up rounds are discarded
                    row = times.setdefault((name, round_index), {
                        "model": name, "round": round_index, "backward_ms": None})
                    row[f"{phase}_ms"] = ms
                    row[f"{phase}_position"] = position
            if lost:
                _free_device_memory()
    rows = [row for (name, _), row in times.items() if name not in lost]
    return rows, lost


def _timed_pass(model: torch.nn.Module, x: torch.Tensor, phase: str,
                device: torch.device) -> float:
    """A forward, or the backward of a fresh forward's output, between synchronizations."""
    model.eval()
    out = model(x) if phase == "backward" else None
    _synchronize(device)
    start = time.perf_counter()
    if out is None:
        out = model(x)
    else:
        out.float().sum().backward()
    _synchronize(device)
    elapsed = (time.perf_counter() - start) * 1e3
    model.zero_grad(set_to_none=True)
    return elapsed


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_differences(rounds: list[dict[str, Any]], models: list[str], batch_size: int = 1
                        ) -> list[dict[str, Any]]:
    """Each model against the first: the change in median forward and backward time and in
    images/s, with a 95% interval from a bootstrap paired by round."""
    if len(models) < 2:
        return []
    by_model = {name: [r for r in rounds if r["model"] == name] for name in models}
    baseline = by_model[models[0]]
    rows = []
    for name in models[1:]:
        for metric in ("forward_ms", "backward_ms"):
            base = [r[metric] for r in baseline]
            other = [r[metric] for r in by_model[name]]
            if None in base or None in other:
                continue
            difference = median_difference(base, other, paired=True)
            base_median, median = statistics.median(base), statistics.median(other)
            rows.append(difference_row(name, models[0], metric, base_median, median,
                                       difference))
            if metric == "forward_ms":  # images/s is batch / forward time: the inverse change
                rows.append(difference_row(
                    name, models[0], "images_per_s", batch_size * 1e3 / base_median,
                    batch_size * 1e3 / median, _inverse(difference)))
    return rows


def _inverse(difference: Difference) -> Difference:
    """The change of 1/x from the change of x (both in percent): an interval's ends swap."""
    def flip(pct: float) -> float:
        return (100.0 / (100.0 + pct) - 1) * 100

    return Difference(flip(difference.pct), flip(difference.high_pct),
                      flip(difference.low_pct), difference.method)


def _elapsed_ms(start: Any, end: Any) -> float:
    if isinstance(start, float):
        return (end - start) * 1e3
    return start.elapsed_time(end)  # CUDA events; the pass has already synchronized


def _layer_rows(name, model, kept, costs, shapes, element_bytes, peak) -> list[dict[str, Any]]:
    info = getattr(model, "layer_info", {})
    modules = dict(model.named_modules())
    rows = []
    for (module, direction), samples in kept.items():
        stats = summarize(samples)
        cost = costs.get(module, {})
        macs = cost.get("macs", 0)
        elementwise = (cost.get("macs_with_elementwise") or macs) - macs
        flops = 2 * macs + elementwise
        if direction == "backward":
            flops = cost.get("backward_flops") or 0
        weights = sum(p.numel() for p in modules[module].parameters(recurse=False))
        activations = sum(shapes.get(module, (0, 0)))
        moved = (weights + activations) * element_bytes
        seconds = stats["median_ms"] / 1e3
        intensity = flops / moved if moved else math.nan
        achieved = flops / seconds / 1e9 if seconds > 0 else math.nan
        layer = info.get(module)
        rows.append({
            "model": name, "module": module, "type": type(modules[module]).__name__,
            "stage": layer.stage if layer else None, "depth": layer.depth if layer else None,
            "block": layer.block_name if layer else None,
            "direction": direction, **stats,
            "flops": flops, "bytes_moved": moved, "arithmetic_intensity": intensity,
            "achieved_gflops_per_s": achieved,
        })
    return rows


def _model_row(source, device, config, threads, whole, layer_rows, rounds) -> dict[str, Any]:
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
    return {
        "model": name, "device": device.type, "dtype": config.dtype, "threads": threads,
        "batch_size": config.batch_size,
        "input_size": config.input_size or source.default_input_size,
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
        "images_per_s": config.batch_size / (unhooked_ms / 1e3),
        "noisy_layers": sum(r["noisy"] for r in layer_rows),
        "repeats": config.repeats, "warmup": config.warmup,
    }


def _throughput(source, batch, config, device, threads) -> dict[str, Any]:
    row = {"model": source.text, "batch_size": batch, "device": device.type,
           "dtype": config.dtype}
    try:
        built = None if source.is_zoo else source.build()
        x = _input(source, config, device, batch, False, built)
        model = _prepared_model(source, config, device, built).eval()
        timer = torch_benchmark.Timer("model(x)", globals={"model": model, "x": x},
                                      num_threads=threads)
        with torch.no_grad():
            timer.timeit(1)
            times = [timer.timeit(1).median for _ in range(max(3, config.repeats // 4))]
        row.update(forward_ms=statistics.median(times) * 1e3,
                   images_per_s=batch / statistics.median(times), error=None)
    except torch.cuda.OutOfMemoryError as error:
        row.update(forward_ms=None, images_per_s=None,
                   error=f"out of GPU memory: {str(error).splitlines()[0]}")
    except MemoryGuardError as error:
        row.update(forward_ms=None, images_per_s=None,
                   error=f"refused before allocating: {error}")
    if row["error"] is not None:
        _free_device_memory()
    return row


def _free_device_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _peaks(device: torch.device, config: LatencyConfig) -> dict[str, Any]:
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


def _spread_warning(name: str, models: list[dict[str, Any]]) -> str | None:
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


def _environment(device, config, threads, peak) -> dict[str, Any]:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    return {"device": device.type, "device_name": name, "threads": threads,
            "torch_version": torch.__version__, "dtype": config.dtype,
            "channels_last": config.channels_last, **peak, **machine_load(),
            "config": asdict(config)}
