"""The Python API's functions: a MODEL (or a list) in, a tidy DataFrame or a report out.

Names are resolved once, here at the edge; the measurements take resolved sources.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resnet_probe.progress import NO_PROGRESS, Progress


def flops(models, input_size: int | None = None, batch_size: int = 1,
          by: str = "model", engine: str = "torch", inputs=None,
          memory: bool = False) -> pd.DataFrame:
    """Params, MACs and FLOPs in every convention; ``by`` is model, module, block, stage or
    operator (block and stage rows sum the modules, so every view's totals agree).
    ``models``: one MODEL or a list; each a name, a source text or an nn.Module. ``inputs``:
    example inputs as fvcore and torchinfo take them (a tensor, a tuple of positional
    tensors, a dict of keyword tensors), used as given, for a forward that takes more than
    one image.
    ``memory`` adds the memory columns (bytes of parameters, buffers, gradients, saved
    activations and a training step's peak). A model that cannot be built, twinned or
    counted gets a row of its own naming the failure (the ``error`` column) and the others
    are counted; when every one fails, the first failure is raised."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.results import frame
    from resnet_probe.sources import InputSpec, resolve
    from resnet_probe.views import STRUCTURED_VIEWS, cost_view

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


def _models(models) -> list:
    return list(models) if isinstance(models, (list, tuple)) else [models]


def _fed(models, inputs) -> list:
    """The models, each fed ``inputs`` (a tensor, a tuple or a dict: their spec) if given."""
    if inputs is None:
        return _models(models)
    from resnet_probe.sources import InputSpec, resolve

    spec = InputSpec.of(inputs)
    return [resolve(model, inputs=spec) for model in _models(models)]


def latency(models, by: str = "model", inputs=None, **config) -> pd.DataFrame:
    """Latency per model, layer, block, stage, raw sample or sweep batch size; ``config``
    takes LatencyConfig's fields; ``inputs`` as ``flops`` takes them."""
    from resnet_probe.measure.latency import LatencyConfig, measure_latency
    from resnet_probe.views import latency_view

    return latency_view(measure_latency(_fed(models, inputs), LatencyConfig(**config)), by)


def gradients(models, by: str = "model", inputs=None, **config) -> pd.DataFrame:
    """Gradient norms at init per model, block, stage, layer, or the shattering curve by lag;
    ``config`` takes GradientConfig's fields; ``inputs`` as ``flops`` takes them. The
    shattering grid is only computed for ``by="shattering"`` (it costs far more than the
    rest)."""
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.views import gradient_view, measured_for

    config = measured_for(by, GradientConfig(**config))
    return gradient_view(measure_gradients(_fed(models, inputs), config), by)


def compare(models: list, out: str | Path | None = "reports", inline_plotly: bool = False, *,
            options=None, progress: Progress = NO_PROGRESS, command_line: str | None = None,
            in_channels: int | None = None, inputs=None, **fields):
    """Run every measurement on ``models`` (the first is the baseline; names, sources or
    nn.Modules) and return the frozen CompareResult (``resnet_probe.jobs.parts``). With
    ``out``, the HTML report is written there before training starts and again at the end
    (``report.compare_report_path(out, result.models)``). ``options`` is a CompareOptions,
    else ``fields`` are its fields (``train=None`` skips training). ``inputs`` (as ``flops``
    takes them) feed every model, in every section, for a forward that takes more than one
    image."""
    from resnet_probe import report
    from resnet_probe.jobs.compare import CompareOptions, Plan, run_compare
    from resnet_probe.sources import InputSpec

    spec = InputSpec.of(inputs) if inputs is not None else None
    plan = Plan.build(list(models), options or CompareOptions(**fields), in_channels, spec)
    folder = Path(out) if out is not None else None
    write = (lambda snapshot: report.write(snapshot, folder, inline_plotly)) \
        if folder is not None else None
    return run_compare(plan, progress, write, command_line)
