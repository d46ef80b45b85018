"""resnet-probe: numbers you can trust about residual networks.

Build any ResNet or its plain twin, and measure it; every measurement returns a tidy pandas
DataFrame and says what it counted.

    >>> import resnet_probe as rp
    >>> rp.list_models(include="resnet*")[:3]
    ['resnet18', 'resnet34', 'resnet50']
    >>> model = rp.build_model("plain34")                      # no shortcuts at all
    >>> rp.flops(["resnet50", "resnet50[stride_placement=1x1]"])[["model", "macs"]]
    >>> rp.latency(["resnet18"], repeats=10)                   # per-model rows
    >>> rp.gradients(["plain56", "resnet56"])                  # grad_ratio_first_last
    >>> rp.compare(["resnet34", "plain34"], out="reports")     # the full HTML report

Counting conventions, timing method and gradient semantics are spelled out in the
docstrings of ``resnet_probe.measure.costs``, ``.latency`` and ``.gradients``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__version__ = "0.1.0"

from resnet_probe.zoo import (  # noqa: E402
    ResNet,
    ResNetSpec,
    UnknownModelError,
    build_model,
    get_spec,
    list_models,
    register_model,
)


def flops(models, input_size: int | None = None, batch_size: int = 1,
          by: str = "model", engine: str = "torch") -> pd.DataFrame:
    """Params, MACs and FLOPs in every convention; ``by`` is model, module, block, stage or
    operator (block and stage rows sum the modules, so every view's totals agree).
    ``models``: one MODEL or a list; each a name, a source text or an nn.Module."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.views import cost_view

    return cost_view([count_costs(m, input_size, batch_size, engine=engine)
                      for m in _models(models)], by)


def _models(models) -> list:
    return list(models) if isinstance(models, (list, tuple)) else [models]


def latency(models, by: str = "model", **config) -> pd.DataFrame:
    """Latency per model, layer, block, stage, raw sample or sweep batch size; ``config``
    takes LatencyConfig's fields."""
    from resnet_probe.measure.latency import LatencyConfig, measure_latency
    from resnet_probe.views import latency_view

    return latency_view(measure_latency(_models(models), LatencyConfig(**config)), by)


def gradients(models, by: str = "model", **config) -> pd.DataFrame:
    """Gradient norms at init per model, block, stage, layer, or the shattering curve by lag;
    ``config`` takes GradientConfig's fields. The shattering grid is only computed for
    ``by="shattering"`` (it costs far more than the rest)."""
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.views import gradient_view, measured_for

    config = measured_for(by, GradientConfig(**config))
    return gradient_view(measure_gradients(_models(models), config), by)


def compare(models: list, out: str | Path = "reports", inline_plotly: bool = False, *,
            options=None, progress=None, command_line: str | None = None,
            on_early_report=None, **fields):
    """Run every measurement on ``models`` (the first is the baseline), write the HTML report
    under ``out`` and return a CompareResult whose ``tables`` are DataFrames and whose
    ``report_path`` is the page. ``options`` is a CompareOptions, else ``fields`` are its
    fields (``train=None`` skips training). The report is first written before training
    starts; ``on_early_report`` is then called with no arguments."""
    from resnet_probe.comparison import CompareOptions, run_compare
    from resnet_probe.report import write_compare_report
    from resnet_probe.sources import given

    def early_report(partial) -> None:  # on screen while training runs
        write_compare_report(partial, Path(out), inline_plotly)
        if on_early_report is not None:
            on_early_report()

    # An nn.Module is compared under its label (its .name, else its class name).
    with given(list(models)) as labels:
        result = run_compare(labels, options or CompareOptions(**fields), progress,
                             out_dir=Path(out), command_line=command_line,
                             before_training=early_report)
        if progress is not None:
            progress.set_description("writing report")
        result.report_path = write_compare_report(result, Path(out), inline_plotly)
    return result


from resnet_probe.probes import FlopAnalysis, GradientAnalysis, LatencyAnalysis  # noqa: E402
from resnet_probe.sources import resolve as resolve_model  # noqa: E402
from resnet_probe.surgery import plain_twin  # noqa: E402

__all__ = ["FlopAnalysis", "GradientAnalysis", "LatencyAnalysis", "ResNet", "ResNetSpec",
           "UnknownModelError", "__version__", "build_model", "compare", "flops", "get_spec",
           "gradients", "latency", "list_models", "plain_twin", "register_model",
           "resolve_model"]
