"""Measurement objects on a model, in the style of fvcore's ``FlopCountAnalysis(model, inputs)``
and torchinfo's ``summary(model, input_size)``: build one, then ask it for views.

    >>> from resnet_probe import FlopAnalysis
    >>> flops = FlopAnalysis(my_model, torch.zeros(1, 3, 224, 224))
    >>> flops.total()                # MACs, convention (a)
    >>> flops.by_stage()             # DataFrame; stages found from the graph
    >>> flops.uncounted()            # {"aten.gelu": 12}: operators with no formula, per call

A model is anything MODEL names (``"resnet50"``, ``"torchvision:resnext50_32x4d"``,
``"plain:timm:resnet50d"``, ``"my_model.py:build"``) or an ``nn.Module``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from resnet_probe.measure.costs import DEFAULT_ENGINE, count_costs, count_module_costs
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.views import cost_view, gradient_view, latency_view

Model = str | nn.Module | ModelSource


class FlopAnalysis:
    """Params, MACs and FLOPs of one model on one input, in every convention."""

    def __init__(self, model: Model, inputs: torch.Tensor | tuple[int, ...] | None = None, *,
                 input_size: int | None = None, in_channels: int | None = None,
                 engine: str = DEFAULT_ENGINE, name: str | None = None) -> None:
        if inputs is None:
            self.result = count_costs(resolve(model, in_channels, input_size, name),
                                      input_size, engine=engine)
            return
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else tuple(inputs)
        image = len(shape) == 4  # what the structure discovery feeds: this input's shape
        source = resolve(model, in_channels or (shape[1] if image else None),
                         input_size or (shape[-1] if image else None), name)
        self.result = count_module_costs(source.build(), torch.zeros(shape), source.text,
                                         engine, kind=source.kind)

    def total(self, convention: str = "macs") -> int | None:
        """A model total; None (never a silent zero) where the engine does not measure it."""
        if convention not in self.result.summary:
            raise ValueError(f"unknown convention {convention!r}; choose one of: macs, flops, "
                             f"macs_with_elementwise, macs_fvcore_default, backward_flops, "
                             f"params")
        return self.result.summary[convention]

    @property
    def partial(self) -> bool:
        """True when an operator ran that no formula counts (see ``uncounted``)."""
        return bool(self.result.summary["partial"])

    def uncounted(self) -> dict[str, int]:
        return dict(self.result.uncounted)

    def summary(self) -> dict[str, Any]:
        return dict(self.result.summary)

    def by_module(self) -> pd.DataFrame:
        return cost_view([self.result], "module")

    def by_block(self) -> pd.DataFrame:
        return cost_view([self.result], "block")

    def by_stage(self) -> pd.DataFrame:
        return cost_view([self.result], "stage")

    def by_operator(self) -> pd.DataFrame:
        return cost_view([self.result], "operator")


class LatencyAnalysis:
    """Per-layer and whole-model latency of one or more models, timed in interleaved rounds;
    ``config`` takes LatencyConfig's fields."""

    def __init__(self, models: Model | list[Model], **config: Any) -> None:
        from resnet_probe.measure.latency import LatencyConfig, measure_latency

        self.result = measure_latency(_as_list(models), LatencyConfig(**config))

    def by_model(self) -> pd.DataFrame:
        return latency_view(self.result, "model")

    def differences(self) -> pd.DataFrame:
        return latency_view(self.result, "difference")

    def by_layer(self) -> pd.DataFrame:
        return latency_view(self.result, "layer")

    def by_block(self) -> pd.DataFrame:
        return latency_view(self.result, "block")

    def by_stage(self) -> pd.DataFrame:
        return latency_view(self.result, "stage")


class GradientAnalysis:
    """Gradient norms at initialisation per model, block, stage and layer; ``config`` takes
    GradientConfig's fields (shattering off unless ``shatter_points`` is given)."""

    def __init__(self, models: Model | list[Model], **config: Any) -> None:
        from resnet_probe.measure.gradients import GradientConfig, measure_gradients

        config.setdefault("shatter_points", 0)
        self.result = measure_gradients(_as_list(models), GradientConfig(**config))

    def by_model(self) -> pd.DataFrame:
        return gradient_view(self.result, "model")

    def by_block(self) -> pd.DataFrame:
        return gradient_view(self.result, "block")

    def by_stage(self) -> pd.DataFrame:
        return gradient_view(self.result, "stage")

    def by_layer(self) -> pd.DataFrame:
        return gradient_view(self.result, "layer")


def _as_list(models: Model | list[Model]) -> list[Model]:
    return list(models) if isinstance(models, (list, tuple)) else [models]
