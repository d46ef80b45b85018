"""Per-leaf timing between pre- and post-hooks (the hook engine): CPU clock or CUDA events,
forward and backward in separate passes, raw samples kept."""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections import defaultdict
from typing import Any

import torch

from resnet_probe.device import DTYPES
from resnet_probe.measure.costs import count_costs
from resnet_probe.measure.hooks import ForwardFailed, HookSession, hooked
from resnet_probe.measure.latency.setup import (
    fed_batch,
    prepared_input,
    prepared_model,
    scalar_loss,
)
from resnet_probe.sources import ModelSource

NOISY_IQR_FRACTION = 0.25


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
                    if name not in shapes and args and isinstance(args[0], torch.Tensor) \
                            and isinstance(output, torch.Tensor):
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


def profile_layers(source: ModelSource, config, device, peak, result):
    """Hooked passes: every leaf's forward (and backward) samples. Returns what the
    interleaved rounds and the model row need: (model, what it is fed, layer rows, whole-pass
    ms)."""
    name = source.text
    x = prepared_input(source, config, device, fed_batch(source, config.batch_size),
                       config.backward)  # guards first
    built = None if source.is_zoo else source.build()
    model = prepared_model(source, config, device, built)
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
        source, input_size=x.input_size, batch_size=x.batch_size).modules}
    element_bytes = torch.finfo(DTYPES[config.dtype]).bits // 8
    rows = layer_rows(name, model, kept, costs, shapes, element_bytes, peak)
    result.layers.extend(rows)
    return model, x, rows, whole


def _hooked_passes(model, x, install, direction, config, timers, whole, kept, result, name):
    """warmup + repeats hooked passes in one direction; samples go to ``kept`` and
    ``result.samples``, whole-pass times to ``whole``."""
    with hooked(model, install=install):
        for index in range(config.warmup + config.repeats):
            timers.reset()
            start = timers.mark()
            out = x(model)
            end = timers.mark()
            if direction == "backward":
                loss = scalar_loss(out)
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


def _elapsed_ms(start: Any, end: Any) -> float:
    if isinstance(start, float):
        return (end - start) * 1e3
    return start.elapsed_time(end)  # CUDA events; the pass has already synchronized


def layer_rows(name, model, kept, costs, shapes, element_bytes, peak) -> list[dict[str, Any]]:
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
