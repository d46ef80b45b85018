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


def flops(models: list[str], input_size: int | None = None, batch_size: int = 1,
          by: str = "model", engine: str = "torch") -> pd.DataFrame:
    """Params, MACs and FLOPs in every convention; ``by`` is "model", "module" or "operator"."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.results import frame

    results = [count_costs(m, input_size, batch_size, engine=engine) for m in models]
    if by == "model":
        return frame([r.summary for r in results])
    if by == "module":
        return frame([row for r in results for row in r.modules])
    if by == "operator":
        return frame([row for r in results for row in r.operators])
    raise ValueError(f"unknown by={by!r}; choose model, module or operator")


def latency(models: list[str], by: str = "model", **config) -> pd.DataFrame:
    """Per-model (or ``by="layer"``) latency; ``config`` takes LatencyConfig's fields."""
    from resnet_probe.measure.latency import LatencyConfig, measure_latency

    result = measure_latency(list(models), LatencyConfig(**config))
    return _pick({"model": result.models, "layer": result.layers, "sample": result.samples,
                  "sweep": result.sweep}, by)


def gradients(models: list[str], by: str = "model", **config) -> pd.DataFrame:
    """Gradient norms at init (``by`` = model, block, layer or shattering)."""
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients

    result = measure_gradients(list(models), GradientConfig(**config))
    return _pick({"model": result.models, "block": result.blocks, "layer": result.layers,
                  "shattering": result.shattering}, by)


def _pick(tables: dict[str, list[dict]], by: str) -> pd.DataFrame:
    from resnet_probe.results import frame

    if by not in tables:
        raise ValueError(f"unknown by={by!r}; choose one of: {', '.join(tables)}")
    return frame(tables[by])


def compare(models: list[str], out: str | Path = "reports", inline_plotly: bool = False,
            **options):
    """Run every measurement on ``models`` (the first is the baseline), write the HTML report
    under ``out`` and return a CompareResult whose ``tables`` are DataFrames and whose
    ``report_path`` is the page. ``options`` take CompareOptions' fields (``train=None``
    skips training)."""
    from resnet_probe.comparison import CompareOptions, run_compare
    from resnet_probe.report import write_compare_report

    result = run_compare(list(models), CompareOptions(**options), out_dir=Path(out))
    result.report_path = write_compare_report(result, Path(out), inline_plotly)
    return result


__all__ = ["ResNet", "ResNetSpec", "UnknownModelError", "__version__", "build_model", "compare",
           "flops", "get_spec", "gradients", "latency", "list_models", "register_model"]
