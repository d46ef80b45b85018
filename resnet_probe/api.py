"""The Python API's functions: a MODEL (or a list) in, a tidy DataFrame out; ``compare``, the
whole job, lives in ``resnet_probe.comparison``.

Names are resolved once, here at the edge; the measurements take resolved sources. Every
setting is a typed keyword parameter (what ``LatencyConfig`` and ``GradientConfig`` hold, with
their defaults: tests/test_api.py checks that the two agree), so ``help()`` and an IDE show
them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from torch import nn

    from resnet_probe.sources import ModelSource
    from resnet_probe.views import CostView, GradientView, LatencyView

    Model = str | nn.Module | ModelSource


def flops(models: Model | Sequence[Model], input_size: int | None = None,
          batch_size: int = 1, by: CostView = "model", engine: str = "torch",
          inputs: Any = None, memory: bool = False) -> pd.DataFrame:
    """Params, MACs and FLOPs in every convention; ``by`` is model, module, block, stage or
    operator (block and stage rows sum the modules, so every view's totals agree).
    ``models``: one MODEL or a list; each a name, a source text or an nn.Module. ``inputs``:
    example inputs as fvcore and torchinfo take them (a tensor, a tuple of positional
    tensors, a dict of keyword tensors), used as given, for a forward that takes more than
    one image. ``engine``: torch (FlopCounterMode) or fvcore.
    ``memory`` adds the memory columns (bytes of parameters, buffers, gradients, saved
    activations and a training step's peak). A model that cannot be built, twinned or
    counted gets a row of its own naming the failure (the ``error`` column) and the others
    are counted; when every one fails, the first failure is raised."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.results import frame
    from resnet_probe.sources import InputSpec, resolve
    from resnet_probe.views import COST_VIEWS, STRUCTURED_VIEWS, check_view, cost_view

    check_view(by, COST_VIEWS)
    spec = InputSpec.of(inputs) if inputs is not None else None
    results, failed = [], []
    for model in _models(models):
        try:
            source = resolve(model, input_size=input_size, inputs=spec)
            results.append(count_costs(source, None if spec else input_size, batch_size,
                                       engine=engine, structure=by in STRUCTURED_VIEWS,
                                       memory=memory, example=inputs))
        except Exception as error:  # noqa: BLE001 - any failure is this row's; Ctrl-C is not
            failed.append((_label(model), error))
    if failed and not results:
        raise failed[0][1]
    df = cost_view(results, by)
    if not failed:
        return df
    rows = frame([{"model": label, "error": str(error)} for label, error in failed])
    if df.empty:
        return rows
    integers = {c: "Int64" for c in df.columns if pd.api.types.is_integer_dtype(df[c])}
    return pd.concat([df, rows], ignore_index=True).astype(integers)


def _label(model) -> str:
    """A MODEL's name in a row, as resolving it would name it."""
    text = getattr(model, "text", None)  # a ModelSource
    if isinstance(text, str):
        return text
    if hasattr(model, "forward"):  # an nn.Module
        return getattr(model, "name", None) or type(model).__name__
    return str(model)


def _models(models: Any) -> list:
    return list(models) if isinstance(models, (list, tuple)) else [models]


def _fed(models, inputs) -> list:
    """The models, each fed ``inputs`` (a tensor, a tuple or a dict: their spec) if given."""
    if inputs is None:
        return _models(models)
    from resnet_probe.sources import InputSpec, resolve

    spec = InputSpec.of(inputs)
    return [resolve(model, inputs=spec) for model in _models(models)]


def latency(models: Model | Sequence[Model], by: LatencyView = "model", *,
            device: str = "auto", engine: str = "hooks", batch_size: int = 1,
            input_size: int | None = None, repeats: int = 20, warmup: int = 5,
            dtype: str = "fp32", threads: int | None = None, channels_last: bool = False,
            backward: bool = True, sweep_batch_sizes: tuple[int, ...] = (),
            peak_gflops: float | None = None, peak_gbytes_per_s: float | None = None,
            inputs: Any = None) -> pd.DataFrame:
    """Latency per model, layer, block, stage, raw sample, sweep batch size, or each
    model's difference from the first. The settings are ``LatencyConfig``'s fields:
    ``device`` auto, cpu or cuda; ``engine`` hooks or profiler (where per-layer times come
    from); ``repeats`` timed passes kept as raw samples after ``warmup`` discarded ones;
    ``dtype`` fp32, bf16 or fp16; ``threads`` None uses every core; ``backward`` False times
    the forward only; ``sweep_batch_sizes`` the throughput sweep; ``peak_gflops`` and
    ``peak_gbytes_per_s`` the roofline, measured when None. ``inputs``, as ``flops`` takes
    them, feed a forward that does not take one image."""
    from resnet_probe.measure.latency import LatencyConfig, measure_latency
    from resnet_probe.views import LATENCY_VIEWS, check_view, latency_view

    check_view(by, LATENCY_VIEWS)
    config = LatencyConfig(
        device=device, engine=engine, batch_size=batch_size, input_size=input_size,
        repeats=repeats, warmup=warmup, dtype=dtype, threads=threads,
        channels_last=channels_last, backward=backward,
        sweep_batch_sizes=sweep_batch_sizes, peak_gflops=peak_gflops,
        peak_gbytes_per_s=peak_gbytes_per_s)
    return latency_view(measure_latency(_fed(models, inputs), config), by)


def gradients(models: Model | Sequence[Model], by: GradientView = "model", *,
              batch_size: int = 32, seeds: tuple[int, ...] = (0, 1, 2),
              input_size: int | None = None, input: str = "data", shatter_points: int = 256,
              shatter_projections: int = 2, head: str = "trained",
              num_classes: int | None = None, in_channels: int | None = None,
              inputs: Any = None) -> pd.DataFrame:
    """Gradient norms at init per model, block, stage, layer, or the shattering curve by lag.
    The settings are ``GradientConfig``'s fields: ``seeds`` (mean ± std across them);
    ``input`` data (the embedded digits) or random; ``head`` trained (the net as training
    builds it) or imagenet (the model's own head at its standard input); ``num_classes`` and
    ``in_channels`` build the probed net to fit other weights; ``inputs``, as ``flops``
    takes them, feed a forward that does not take one image. The shattering
    grid (``shatter_points``, ``shatter_projections``) is only computed for
    ``by="shattering"``: it costs far more than the rest."""
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.views import GRADIENT_VIEWS, check_view, gradient_view, measured_for

    check_view(by, GRADIENT_VIEWS)
    config = measured_for(by, GradientConfig(
        batch_size=batch_size, seeds=seeds, input_size=input_size, input=input,
        shatter_points=shatter_points, shatter_projections=shatter_projections, head=head,
        num_classes=num_classes, in_channels=in_channels))
    return gradient_view(measure_gradients(_fed(models, inputs), config), by)
