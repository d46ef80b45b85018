"""Per-module time from torch.profiler (the profiler engine): kernel time on a GPU, operator
time on a CPU, with each pass's busy and idle time.

Timing semantics. The model runs without timing hooks: each module's forward opens a
``record_function`` range ("module::NAME"; no sync, no event) and every pass is one range
("pass::forward", "pass::backward") closed after a device synchronize. An operator belongs to
the innermost module range open when it was dispatched, as the top-level operator there (its
nested aten calls are its own time). A GPU kernel belongs to the operator whose runtime call
launched it (same correlation id). A backward operator belongs to the module whose forward
created the autograd node it evaluates: the node's sequence number is the forward operator's
(the link Holistic Trace Analysis uses). Per module: ``kernel_ms`` (the sum of its kernels'
durations; on a CPU its operators' durations), ``kernels`` (how many), ``dispatch_ms`` (the CPU
time of its operators, launches included). Per pass: ``wall_ms``, ``busy_ms`` (the union of
kernel intervals; on a CPU of top-level operator intervals), ``idle_ms`` and
``launch_bound_fraction`` = idle / wall: the share of the pass the device waited for the
host. A pass is labelled launch-bound when that share exceeds LAUNCH_BOUND_FRACTION.

``attribute`` is a pure function of the events, so the CUDA path is tested on a recorded
(fake) trace; ``events_of`` reads a real profile. With CUDA, each leaf's allocated-memory
high-water mark within its forward is read from the caching allocator's counters (host-side,
no sync).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_probe.device import synchronize
from resnet_probe.measure.hooks import is_leaf
from resnet_probe.measure.latency.hooked import summarize
from resnet_probe.measure.latency.setup import Fed, fed, scalar_loss

MODULE_RANGE = "module::"
PASS_RANGE = "pass::"
BACKWARD_EVENT = "autograd::engine::evaluate_function: "
LAUNCH_BOUND_FRACTION = 0.5  # a pass whose device idles more than half of it
_LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cudaMemcpyAsync",
             "cudaMemsetAsync", "cudaGraphLaunch")


@dataclass(frozen=True)
class TraceEvent:
    """One profiler event, as ``attribute`` reads it (tests build them by hand)."""

    name: str
    start_us: float
    end_us: float
    device: str = "cpu"  # "cuda" for a kernel, a copy or a memset on the GPU
    thread: int = 0
    sequence_nr: int = -1  # autograd's link between a forward op and its backward
    correlation: int = -1  # a CUDA launch and the kernel it launched share one

    @property
    def duration_us(self) -> float:
        return self.end_us - self.start_us


@dataclass
class PassTimes:
    direction: str
    wall_ms: float
    busy_ms: float
    modules: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def idle_ms(self) -> float:
        return max(0.0, self.wall_ms - self.busy_ms)

    @property
    def launch_bound_fraction(self) -> float:
        return self.idle_ms / self.wall_ms if self.wall_ms > 0 else 0.0


def events_of(profile: torch.profiler.profile) -> list[TraceEvent]:
    """The events of a finished profile (kineto's), in the neutral form."""
    found = []
    assert profile.profiler is not None and profile.profiler.kineto_results is not None
    for event in profile.profiler.kineto_results.events():
        kind = str(event.device_type()).split(".")[-1].lower()
        found.append(TraceEvent(event.name(), event.start_ns() / 1e3, event.end_ns() / 1e3,
                                "cuda" if kind == "cuda" else "cpu", event.start_thread_id(),
                                event.sequence_nr(), event.correlation_id()))
    return found


def attribute(events: list[TraceEvent], direction: str) -> PassTimes:
    """Per-module times of the one pass in ``events`` whose range is "pass::DIRECTION" (see
    the module docstring)."""
    cpu = sorted((e for e in events if e.device == "cpu"), key=lambda e: (e.start_us,
                                                                           -e.end_us))
    window = next(e for e in cpu if e.name == PASS_RANGE + direction)
    ranges = [e for e in cpu if e.name.startswith(MODULE_RANGE)]
    operators = [e for e in cpu if not e.name.startswith((MODULE_RANGE, PASS_RANGE))]
    top = _top_level(operators)
    owner_of_forward: dict[int, str] = {}  # sequence number -> module of the forward op
    op_owner: dict[TraceEvent, str] = {}
    for op in top:
        owner = _innermost(ranges, op)
        op_owner[op] = owner
        if op.sequence_nr >= 0 and not op.name.startswith(BACKWARD_EVENT):
            owner_of_forward.setdefault(op.sequence_nr, owner)
    in_pass = [op for op in top if window.start_us <= op.start_us <= window.end_us]
    for op in in_pass:
        if op.name.startswith(BACKWARD_EVENT):
            op_owner[op] = owner_of_forward.get(op.sequence_nr, "(autograd)")
    launches = {e.correlation: e for e in operators
                if e.correlation >= 0 and e.name in _LAUNCHES}
    kernels = [e for e in events if e.device == "cuda" and e.correlation in launches
               and window.start_us <= launches[e.correlation].start_us <= window.end_us]
    modules: dict[str, dict[str, float]] = defaultdict(lambda: {"kernel_ms": 0.0,
                                                                "kernels": 0,
                                                                "dispatch_ms": 0.0})
    for op in in_pass:
        modules[op_owner[op]]["dispatch_ms"] += op.duration_us / 1e3
    if kernels:
        for kernel in kernels:
            launcher = _enclosing(in_pass, launches[kernel.correlation])
            owner = op_owner[launcher] if launcher is not None else "(outside any operator)"
            modules[owner]["kernel_ms"] += kernel.duration_us / 1e3
            modules[owner]["kernels"] += 1
        busy = _union_ms(kernels)
    else:  # a CPU pass: its operators are its kernels
        for op in in_pass:
            modules[op_owner[op]]["kernel_ms"] += op.duration_us / 1e3
            modules[op_owner[op]]["kernels"] += 1
        busy = _union_ms(in_pass)
    return PassTimes(direction, window.duration_us / 1e3, busy, dict(modules))


def _top_level(operators: list[TraceEvent]) -> list[TraceEvent]:
    """Operators not nested in another operator on their thread (sorted by start)."""
    top: list[TraceEvent] = []
    open_until: dict[int, float] = defaultdict(lambda: -1.0)
    for op in operators:
        if op.start_us >= open_until[op.thread]:
            top.append(op)
            open_until[op.thread] = op.end_us
    return top


def _innermost(ranges: list[TraceEvent], op: TraceEvent) -> str:
    holding = [r for r in ranges if r.thread == op.thread
               and r.start_us <= op.start_us and op.end_us <= r.end_us]
    if not holding:
        return "(model)"
    return max(holding, key=lambda r: r.start_us).name[len(MODULE_RANGE):]


def _enclosing(operators: list[TraceEvent], event: TraceEvent) -> TraceEvent | None:
    for op in operators:
        if op.thread == event.thread and op.start_us <= event.start_us <= op.end_us:
            return op
    return None


def _union_ms(events: list[TraceEvent]) -> float:
    """The time covered by at least one of ``events``, in ms."""
    total, start, end = 0.0, math.inf, -math.inf
    for event in sorted(events, key=lambda e: e.start_us):
        if event.start_us > end:
            total += max(0.0, end - start)
            start, end = event.start_us, event.end_us
        else:
            end = max(end, event.end_us)
    return (total + max(0.0, end - start)) / 1e3


# --- running the passes --------------------------------------------------------------------


@contextlib.contextmanager
def module_ranges(model: nn.Module, device: torch.device,
                  memory: dict[str, list[int]] | None = None,
                  shapes: dict[str, tuple[int, int]] | None = None) -> Iterator[None]:
    """A record_function range around every module's forward; with CUDA and ``memory``, each
    leaf's allocated-memory high-water mark within its forward, in bytes above its start;
    with ``shapes``, each leaf's first (input, output) element counts."""
    opened: list[Any] = []
    starts: list[int] = []
    handles = []
    cuda = device.type == "cuda" and memory is not None
    for name, module in model.named_modules():
        if not name:
            continue
        leaf = is_leaf(module)

        def enter(module, args, name=name, leaf=leaf):
            handle = torch.ops.profiler._record_function_enter_new(MODULE_RANGE + name, None)
            opened.append(handle)
            if cuda and leaf:
                starts.append(torch.cuda.memory_allocated(device))
                torch.cuda.reset_peak_memory_stats(device)

        def leave(module, args, output, name=name, leaf=leaf):
            torch.ops.profiler._record_function_exit._RecordFunction(opened.pop())
            if shapes is not None and leaf and name not in shapes and args and \
                    isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (args[0].numel(), output.numel())
            if cuda and leaf and memory is not None:
                memory.setdefault(name, []).append(
                    torch.cuda.max_memory_allocated(device) - starts.pop())

        handles += [module.register_forward_pre_hook(enter),
                    module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def profiled_pass(model: nn.Module, x: Fed | torch.Tensor, direction: str,
                  device: torch.device,
                  memory: dict[str, list[int]] | None = None,
                  shapes: dict[str, tuple[int, int]] | None = None
                  ) -> tuple[list[TraceEvent], torch.profiler.profile]:
    """One pass under the profiler (a backward pass profiles its forward too, for the
    sequence-number links), with module ranges. ``x``: what the model is fed (a tensor is
    one image batch)."""
    x = fed(x)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    profile = torch.profiler.profile(activities=activities)
    with _quiet_native_log():
        profile.__enter__()
    try:
        with module_ranges(model, device, memory if direction == "forward" else None,
                           shapes):
            if direction == "forward":
                with torch.profiler.record_function(PASS_RANGE + "forward"):
                    x(model)
                    synchronize(device)
            else:
                out = x(model)
                synchronize(device)
                with torch.profiler.record_function(PASS_RANGE + "backward"):
                    scalar_loss(out).backward()
                    synchronize(device)
    finally:
        with _quiet_native_log():
            profile.__exit__(None, None, None)
        model.zero_grad(set_to_none=True)
    return events_of(profile), profile


@contextlib.contextmanager
def _quiet_native_log() -> Iterator[None]:
    """Kineto prints a line to the process's stderr when a profile starts and stops."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def profile_modules(name: str, model: nn.Module, x: Fed, config, device: torch.device,
                    result, trace_dir: Path | None = None,
                    shapes: dict[str, tuple[int, int]] | None = None
                    ) -> tuple[list[dict], dict]:
    """warmup + repeats profiled passes per direction: per-module samples (rows as the hook
    engine gives, with kernel counts and dispatch time) and per-pass rows in
    ``result.passes``; with ``trace_dir``, one more pass per direction written as a Chrome
    trace. Returns (rows, whole-pass wall times by direction)."""
    directions = ("forward", "backward") if config.backward else ("forward",)
    samples: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    whole: dict[str, list[float]] = defaultdict(list)
    memory: dict[str, list[int]] = {}
    model.eval()
    for direction in directions:
        for index in range(config.warmup + config.repeats):
            events, _ = profiled_pass(model, x, direction, device, memory, shapes)
            if index < config.warmup:
                continue
            times = attribute(events, direction)
            whole[f"hooked_{direction}"].append(times.wall_ms)
            result.passes.append({"model": name, "direction": direction,
                                  "repeat": index - config.warmup, "engine": "profiler",
                                  "wall_ms": times.wall_ms, "busy_ms": times.busy_ms,
                                  "idle_ms": times.idle_ms,
                                  "launch_bound_fraction": times.launch_bound_fraction,
                                  "launch_bound": times.launch_bound_fraction >
                                  LAUNCH_BOUND_FRACTION})
            for module, measured in times.modules.items():
                samples[(module, direction)].append(measured)
                result.samples.append({"model": name, "module": module,
                                       "direction": direction, "engine": "profiler",
                                       "repeat": index - config.warmup,
                                       "ms": measured["kernel_ms"]})
        if trace_dir is not None:
            _, profile = profiled_pass(model, x, direction, device)
            result.trace_files.append(str(_export(profile, trace_dir, name, direction)))
    rows = []
    for (module, direction), values in samples.items():
        stats = summarize([v["kernel_ms"] for v in values])
        row = {"model": name, "module": module, "direction": direction, "engine": "profiler",
               **stats, "kernels": statistics.median(v["kernels"] for v in values),
               "dispatch_ms": statistics.median(v["dispatch_ms"] for v in values)}
        if module in memory and direction == "forward":
            row["cuda_peak_bytes"] = max(memory[module])
        rows.append(row)
    return rows, whole


def _export(profile: torch.profiler.profile, trace_dir: Path, name: str, direction: str) -> Path:
    """The pass as a Chrome/Perfetto trace, written atomically."""
    trace_dir = Path(trace_dir)
    trace_dir.mkdir(parents=True, exist_ok=True)
    path = trace_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}-{direction}.trace.json"
    handle, temporary = tempfile.mkstemp(dir=trace_dir, suffix=".partial")
    os.close(handle)
    try:
        profile.export_chrome_trace(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def profile_with_profiler(source, config, device: torch.device, peak, result,
                          trace_dir: Path | None = None):
    """The profiler engine for one model: what ``hooked.profile_layers`` returns, with each
    module's row carrying its place, its FLOPs and its kernel count."""
    from resnet_probe.device import DTYPES
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.measure.latency.setup import fed_batch, prepared_input, prepared_model

    x = prepared_input(source, config, device, fed_batch(source, config.batch_size),
                       config.backward)  # guards first
    built = None if source.is_zoo else source.build()
    model = prepared_model(source, config, device, built)
    shapes: dict[str, tuple[int, int]] = {}
    rows, whole = profile_modules(source.text, model, x, config, device, result, trace_dir,
                                  shapes)
    element_bytes = torch.finfo(DTYPES[config.dtype]).bits // 8
    costs = {row["module"]: row for row in count_costs(
        source, input_size=x.input_size, batch_size=x.batch_size).modules}
    info = getattr(model, "layer_info", {}) or {}
    modules = dict(model.named_modules())
    for row in rows:
        module = modules.get(row["module"])
        cost = costs.get(row["module"], {})
        macs = cost.get("macs", 0)
        flops = (2 * macs + (cost.get("macs_with_elementwise") or macs) - macs
                 if row["direction"] == "forward" else cost.get("backward_flops") or 0)
        place = info.get(row["module"])
        seconds = row["median_ms"] / 1e3
        weights = sum(p.numel() for p in module.parameters(recurse=False)) if module else 0
        moved = (weights + sum(shapes.get(row["module"], (0, 0)))) * element_bytes
        row.update({"type": type(module).__name__ if module is not None else "—",
                    "stage": place.stage if place else None,
                    "depth": place.depth if place else None,
                    "block": place.block_name if place else None, "flops": flops,
                    "bytes_moved": moved,
                    "arithmetic_intensity": flops / moved if moved else math.nan,
                    "achieved_gflops_per_s": flops / seconds / 1e9 if seconds > 0
                    else math.nan})
    result.layers.extend(rows)
    return model, x, rows, whole
