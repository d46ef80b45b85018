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

In a notebook each result shows itself as a table (``FlopAnalysis(model, inputs)``, a
``LatencyAnalysis``, a ``GradientAnalysis``, a ``plain_twin``, what ``compare`` returns), and
``.figure()`` gives the plotly figure the report draws for it.

Counting conventions, timing method and gradient semantics are spelled out in the
docstrings of ``resnet_probe.measure.costs``, ``.latency`` and ``.gradients``.

The names below are imported on first use (PEP 562), so ``import resnet_probe`` and the
command line's ``--help`` do not pay for torch, pandas and scipy until a name needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from resnet_probe._version import __version__

# name -> the module that defines it
_EXPORTS = {
    "flops": "resnet_probe.api", "gradients": "resnet_probe.api", "latency": "resnet_probe.api",
    "compare": "resnet_probe.comparison", "Comparison": "resnet_probe.comparison",
    "FlopAnalysis": "resnet_probe.probes", "GradientAnalysis": "resnet_probe.probes",
    "LatencyAnalysis": "resnet_probe.probes", "PlainTwin": "resnet_probe.probes",
    "plain_twin": "resnet_probe.probes",
    # the settings the measurements and compare take, and compare's result
    "LatencyConfig": "resnet_probe.measure.latency",
    "GradientConfig": "resnet_probe.measure.gradients",
    "TrainConfig": "resnet_probe.train.config", "AnalysisOptions": "resnet_probe.analysis",
    "CompareOptions": "resnet_probe.jobs.compare", "CompareResult": "resnet_probe.jobs.parts",
    "ResNet": "resnet_probe.zoo", "ResNetSpec": "resnet_probe.zoo",
    "UnknownModelError": "resnet_probe.zoo", "build_model": "resnet_probe.zoo",
    "get_spec": "resnet_probe.zoo", "list_models": "resnet_probe.zoo",
    "register_model": "resnet_probe.zoo",
}
_RENAMED = {"resolve_model": ("resnet_probe.sources", "resolve")}

if TYPE_CHECKING:
    from resnet_probe.analysis import AnalysisOptions
    from resnet_probe.api import flops, gradients, latency
    from resnet_probe.comparison import Comparison, compare
    from resnet_probe.jobs.compare import CompareOptions
    from resnet_probe.jobs.parts import CompareResult
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.measure.latency import LatencyConfig
    from resnet_probe.probes import (
        FlopAnalysis,
        GradientAnalysis,
        LatencyAnalysis,
        PlainTwin,
        plain_twin,
    )
    from resnet_probe.sources import resolve as resolve_model
    from resnet_probe.train.config import TrainConfig
    from resnet_probe.zoo import (
        ResNet,
        ResNetSpec,
        UnknownModelError,
        build_model,
        get_spec,
        list_models,
        register_model,
    )

__all__ = ["AnalysisOptions", "CompareOptions", "CompareResult", "Comparison", "FlopAnalysis",
           "GradientAnalysis", "GradientConfig", "LatencyAnalysis", "LatencyConfig",
           "PlainTwin", "ResNet", "ResNetSpec", "TrainConfig", "UnknownModelError",
           "__version__", "build_model", "compare", "flops", "get_spec", "gradients",
           "latency", "list_models", "plain_twin", "register_model", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _RENAMED:
        module, attribute = _RENAMED[name]
        value = getattr(importlib.import_module(module), attribute)
    else:
        raise AttributeError(f"module 'resnet_probe' has no attribute {name!r}")
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return __all__
