"""What a latency run is asked to do (``LatencyConfig``), what it returns, and how each model and
its input are prepared for timing, after the memory guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resnet_probe.device import CPU_CORES, DEVICES, DTYPES
from resnet_probe.measure.memory import check_fits, check_source_fits, meta_structure
from resnet_probe.settings import INPUT_SIZE, check_settings, setting
from resnet_probe.sources import ModelSource


@dataclass(frozen=True)
class LatencyConfig:
    device: str = setting("auto", "auto picks CUDA when present.", choices=DEVICES)
    engine: str = setting("hooks", "Per-layer times from pre/post-hooks (hooks) or from "
                          "torch.profiler's kernel and operator events (profiler).",
                          choices=("hooks", "profiler"))
    batch_size: int = setting(1, "Images per timed pass.", minimum=1)
    input_size: int | None = setting(None, INPUT_SIZE)
    repeats: int = setting(20, "Timed passes kept as raw samples.", minimum=1)
    warmup: int = setting(5, "Passes run first and discarded.", minimum=0)
    dtype: str = setting("fp32", "Precision of weights and inputs.", choices=tuple(DTYPES))
    threads: int | None = setting(None, "CPU threads, at most the cores available here.",
                                  minimum=1, maximum=CPU_CORES,
                                  none_means="every core, or the cores left free when other "
                                  "work is running")
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


LATENCY_DEFAULTS = LatencyConfig()


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
    passes: list[dict[str, Any]] = field(default_factory=list)  # profiler engine, per pass
    trace_files: list[str] = field(default_factory=list)  # Chrome/Perfetto traces written


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


@dataclass(frozen=True)
class Fed:
    """What a timed pass feeds the model: its positional and keyword tensors (one image
    batch, or the source's ``--input`` tensors), and how that is said in a row."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    batch_size: int
    input_size: int | None  # the image size; None when the forward takes other inputs
    description: str  # e.g. 1x3x224x224, or input_ids=2x16:int64[0,1000) attention_mask=...

    def __call__(self, model: nn.Module) -> Any:
        return model(*self.args, **self.kwargs)


def fed(x: Fed | torch.Tensor) -> Fed:
    """``x`` as a Fed: one image batch given as a tensor is fed by position."""
    if isinstance(x, Fed):
        return x
    return Fed((x,), {}, int(x.shape[0]), int(x.shape[-1]) if x.dim() == 4 else None,
               "x".join(map(str, x.shape)))


def fed_batch(source: ModelSource, batch: int) -> int | None:
    """The batch to feed: ``batch``, except that a source with ``--input`` tensors keeps
    their own batch at the default 1 (None), as counting does."""
    return batch if source.inputs is None or batch != 1 else None


def scalar_loss(output: Any) -> torch.Tensor:
    """The sum of every floating value in a forward's output (a tensor, or a tuple, list or
    dict of them): what a timed backward differentiates."""
    if isinstance(output, torch.Tensor):
        return output.float().sum()
    parts = output.values() if isinstance(output, dict) else output \
        if isinstance(output, (tuple, list)) else ()
    found = [scalar_loss(part) for part in parts
             if isinstance(part, (torch.Tensor, tuple, list, dict))]
    found = [f for f in found if f.requires_grad] or found
    if not found:
        raise ValueError(f"the model's output is a {type(output).__name__} with no tensor "
                         f"in it, so its backward cannot be timed; use --forward-only")
    return torch.stack(found).sum()


def prepared_input(source: ModelSource, config: LatencyConfig, device: torch.device,
                   batch: int | None, training: bool) -> Fed:
    """What the model is fed, after checking that the pass it feeds fits in memory; the
    check runs on a meta build, so call this before building the model. ``batch`` None: the
    ``--input`` tensors' own batch. Floating inputs take the run's dtype; integer ones (token
    ids, masks) keep theirs."""
    dtype = DTYPES[config.dtype]
    element_bytes = torch.finfo(dtype).bits // 8
    if source.inputs is not None:
        spec = source.inputs.with_batch(batch)
        check_fits(meta_structure(source), spec.tensors[0].shape, device, training,
                   f"timing {source.text}", element_bytes, inputs=spec)  # at this batch
        args, kwargs = spec.example(device, random=True)

        def cast(t: torch.Tensor) -> torch.Tensor:
            if not t.is_floating_point():
                return t
            t = t.to(dtype)
            return t.to(memory_format=torch.channels_last) \
                if config.channels_last and t.dim() == 4 else t

        return Fed(tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()},
                   spec.batch_size, None, spec.text())
    batch = batch or 1
    size = config.input_size or source.default_input_size
    if source.spec is not None:  # a zoo net: its stride stack needs enough pixels
        source.spec.check_input_size(size)
    channels = source.in_channels
    check_source_fits(source, (batch, channels, size, size), device, training,
                      f"timing {source.text}", element_bytes=element_bytes)
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    x = x.to(memory_format=torch.channels_last) if config.channels_last else x
    return Fed((x,), {}, batch, size, source.input_description(size, batch))


def prepared_model(source: ModelSource, config: LatencyConfig, device: torch.device,
                    model: nn.Module | None = None):
    model = (model or source.build()).to(device=device, dtype=DTYPES[config.dtype])
    if config.channels_last:
        # torch's stub of Module.to omits memory_format, which the method takes.
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
