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

from resnet_probe.measure.costs import DEFAULT_ENGINE, count_costs
from resnet_probe.sources import InputSpec, ModelSource, resolve
from resnet_probe.views import cost_view, gradient_view, latency_view

Model = str | nn.Module | ModelSource


class FlopAnalysis:
    """Params, MACs and FLOPs of one model on one input, in every convention.

    ``inputs`` are taken as fvcore and torchinfo take them: a tensor, a tuple of positional
    tensors or a dict of keyword tensors, each used as given (its values too, where the
    forward reads them); a tuple of ints is the shape of one zero image. A module is counted
    as it is, never copied, and left as it was (modes, gradients, hooks)."""

    def __init__(self, model: Model, inputs: Any = None, *,
                 input_size: int | None = None, in_channels: int | None = None,
                 engine: str = DEFAULT_ENGINE, name: str | None = None) -> None:
        if inputs is None:
            self.result = count_costs(resolve(model, in_channels, input_size, name),
                                      input_size, engine=engine)
            return
        if isinstance(inputs, (tuple, list)) and inputs and all(
                isinstance(d, int) and not isinstance(d, bool) for d in inputs):
            inputs = torch.zeros(tuple(inputs))
        image = isinstance(inputs, torch.Tensor) and inputs.dim() == 4
        shape = tuple(inputs.shape) if image else None
        # One image: blocks and stages are found at its size. Other inputs: their spec.
        source = resolve(model, in_channels if in_channels is not None or not shape
                         else shape[1],
                         input_size if input_size is not None or not shape else shape[-1],
                         name,
                         inputs=None if image else InputSpec.of(inputs))
        self.result = count_costs(source, engine=engine, example=inputs)

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
    ``config`` takes LatencyConfig's fields. ``inputs``: example inputs as FlopAnalysis takes
    them (a tensor, a tuple of positional tensors, a dict of keyword tensors), for a forward
    that does not take one image; each timed pass feeds tensors of their shapes and dtypes
    (integers from the range they hold)."""

    def __init__(self, models: Model | list[Model], inputs: Any = None, **config: Any) -> None:
        from resnet_probe.measure.latency import LatencyConfig, measure_latency

        self.result = measure_latency(_with_inputs(models, inputs), LatencyConfig(**config))

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
    GradientConfig's fields (shattering off unless ``shatter_points`` is given). ``inputs``:
    example inputs as LatencyAnalysis takes them, drawn at the probe's batch size. A model
    whose output is not class logits takes a stated surrogate loss (``notes``)."""

    def __init__(self, models: Model | list[Model], inputs: Any = None, **config: Any
                 ) -> None:
        from resnet_probe.measure.gradients import GradientConfig, measure_gradients

        config.setdefault("shatter_points", 0)
        self.result = measure_gradients(_with_inputs(models, inputs), GradientConfig(**config))

    @property
    def notes(self) -> list[str]:
        """What the measurement did differently, and why (a surrogate loss, ...)."""
        return list(self.result.notes)

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


def _with_inputs(models: Model | list[Model], inputs: Any) -> list[Model]:
    """The models resolved, each fed ``inputs`` (their spec) when given."""
    if inputs is None:
        return _as_list(models)
    spec = InputSpec.of(inputs)
    return [resolve(model, inputs=spec) for model in _as_list(models)]
