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

from resnet_probe._version import __version__
from resnet_probe.api import compare, flops, gradients, latency
from resnet_probe.probes import FlopAnalysis, GradientAnalysis, LatencyAnalysis
from resnet_probe.sources import resolve as resolve_model
from resnet_probe.sources.surgery import plain_twin
from resnet_probe.zoo import (
    ResNet,
    ResNetSpec,
    UnknownModelError,
    build_model,
    get_spec,
    list_models,
    register_model,
)

__all__ = ["FlopAnalysis", "GradientAnalysis", "LatencyAnalysis", "ResNet", "ResNetSpec",
           "UnknownModelError", "__version__", "build_model", "compare", "flops", "get_spec",
           "gradients", "latency", "list_models", "plain_twin", "register_model",
           "resolve_model"]
