"""Measurement objects on a model, in the style of fvcore's ``FlopCountAnalysis(model, inputs)``
and torchinfo's ``summary(model, input_size)``: build one, then ask it for views.

    >>> from resnet_probe import FlopAnalysis
    >>> flops = FlopAnalysis(my_model, torch.zeros(1, 3, 224, 224))
    >>> flops.total()                # MACs, convention (a)
    >>> flops.by_stage()             # DataFrame; stages found from the graph
    >>> flops.uncounted()            # {"aten.gelu": 12}: operators with no formula, per call

A model is anything MODEL names (``"resnet50"``, ``"torchvision:resnext50_32x4d"``,
``"plain:timm:resnet50d"``, ``"my_model.py:build"``) or an ``nn.Module``.

Each object shows itself: ``repr()`` is a small aligned table, a notebook shows it as an HTML
table (``_repr_html_``), and ``.figure()`` returns the plotly figure the report draws for it.
Those come from ``resnet_probe.report.notebook``, imported when first shown.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import torch
from torch import fx, nn

from resnet_probe.measure.costs import DEFAULT_ENGINE, count_costs
from resnet_probe.sources import InputSpec, ModelSource, resolve
from resnet_probe.sources.surgery import plain_twin as _plain_twin
from resnet_probe.views import (
    EmptyViewWarning,
    cost_view,
    gradient_view,
    latency_view,
    missing_structure,
)
from resnet_probe.zoo import ResNet

if TYPE_CHECKING:
    from resnet_probe.report.notebook import Figure, Shown

Model = str | nn.Module | ModelSource


class _Shows:
    """repr(), a notebook's HTML and ``.figure()``, all from one ``_shown()``."""

    def _shown(self) -> Shown:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._shown().text()

    def _repr_html_(self) -> str:
        return self._shown().html()


class FlopAnalysis(_Shows):
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
        """Rows per block; a model with no blocks found warns (EmptyViewWarning)."""
        return self._rolled_up("block")

    def by_stage(self) -> pd.DataFrame:
        """Rows per stage; a model with no stages found warns (EmptyViewWarning)."""
        return self._rolled_up("stage")

    def _rolled_up(self, by: str) -> pd.DataFrame:
        message = missing_structure([self.result], by)
        if message is not None:  # not a silent empty frame: say why, and what works
            warnings.warn(message, EmptyViewWarning, stacklevel=3)
        return cost_view([self.result], by)

    def by_operator(self) -> pd.DataFrame:
        return cost_view([self.result], "operator")

    def figure(self) -> Figure:
        """The report's costs figure: the model's MACs and FLOPs in every convention."""
        from resnet_probe.report.notebook import costs_figure

        return costs_figure(self.result)

    def _shown(self) -> Shown:
        from resnet_probe.report.notebook import costs_shown

        return costs_shown(self.result)


class LatencyAnalysis(_Shows):
    """Per-layer and whole-model latency of one or more models, timed in interleaved rounds.
    The settings are ``LatencyConfig``'s fields, as ``resnet_probe.latency`` takes them.
    ``inputs``: example inputs as FlopAnalysis takes them (a tensor, a tuple of positional
    tensors, a dict of keyword tensors), for a forward that does not take one image; each
    timed pass feeds tensors of their shapes and dtypes (integers from the range they hold)."""

    def __init__(self, models: Model | Sequence[Model], inputs: Any = None, *,
                 device: str = "auto",
                 engine: str = "hooks", batch_size: int = 1, input_size: int | None = None,
                 repeats: int = 20, warmup: int = 5, dtype: str = "fp32",
                 threads: int | None = None, channels_last: bool = False,
                 backward: bool = True, sweep_batch_sizes: tuple[int, ...] = (),
                 peak_gflops: float | None = None, peak_gbytes_per_s: float | None = None
                 ) -> None:
        from resnet_probe.measure.latency import LatencyConfig, measure_latency

        config = LatencyConfig(
            device=device, engine=engine, batch_size=batch_size, input_size=input_size,
            repeats=repeats, warmup=warmup, dtype=dtype, threads=threads,
            channels_last=channels_last, backward=backward,
            sweep_batch_sizes=sweep_batch_sizes, peak_gflops=peak_gflops,
            peak_gbytes_per_s=peak_gbytes_per_s)
        self.result = measure_latency(_with_inputs(models, inputs), config)

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

    def figure(self) -> Figure:
        """The report's time-by-stage figure (per layer where no stage is known)."""
        from resnet_probe.report.notebook import latency_figure

        return latency_figure(self.result)

    def _shown(self) -> Shown:
        from resnet_probe.report.notebook import latency_shown

        return latency_shown(self.result)


class GradientAnalysis(_Shows):
    """Gradient norms at initialisation per model, block, stage and layer. The settings are
    ``GradientConfig``'s fields, as ``resnet_probe.gradients`` takes them, except that the
    shattering grid is off unless ``shatter_points`` is given. ``inputs``: example inputs as
    LatencyAnalysis takes them, drawn at the probe's batch size; a model whose output is not
    class logits takes a stated surrogate loss (``notes``)."""

    def __init__(self, models: Model | Sequence[Model], inputs: Any = None, *,
                 batch_size: int = 32,
                 seeds: tuple[int, ...] = (0, 1, 2), input_size: int | None = None,
                 input: str = "data", shatter_points: int = 0, shatter_projections: int = 2,
                 head: str = "trained", num_classes: int | None = None,
                 in_channels: int | None = None) -> None:
        from resnet_probe.measure.gradients import GradientConfig, measure_gradients

        config = GradientConfig(batch_size=batch_size, seeds=seeds, input_size=input_size,
                                input=input, shatter_points=shatter_points,
                                shatter_projections=shatter_projections, head=head,
                                num_classes=num_classes, in_channels=in_channels)
        self.result = measure_gradients(_with_inputs(models, inputs), config)

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

    def figure(self) -> Figure:
        """The report's gradient-norm-by-depth figure: one line per model."""
        from resnet_probe.report.notebook import gradients_figure

        return gradients_figure(self.result)

    def _shown(self) -> Shown:
        from resnet_probe.report.notebook import gradients_shown

        return gradients_shown(self.result)


def _as_list(models: Model | Sequence[Model]) -> list[Model]:
    return list(models) if isinstance(models, (list, tuple)) else [cast(Model, models)]


def _with_inputs(models: Model | Sequence[Model], inputs: Any) -> list[Model]:
    """The models resolved, each fed ``inputs`` (their spec) when given."""
    if inputs is None:
        return _as_list(models)
    spec = InputSpec.of(inputs)
    return [resolve(model, inputs=spec) for model in _as_list(models)]


class PlainTwin(_Shows, fx.GraphModule):
    """What ``plain_twin`` returns: the twin, an ``fx.GraphModule`` to call, count, time and
    train like any module, that also says what was removed (``repr()``, a notebook's HTML).
    ``residual_blocks`` names the blocks whose shortcuts were removed."""

    original_name: str
    original_params: int
    residual_blocks: list[str]
    kept_adds: list[Any]

    def _shown(self) -> Shown:
        from resnet_probe.report.notebook import twin_shown

        return twin_shown(self.original_name, self.original_params,
                          sum(p.numel() for p in self.parameters()),
                          list(self.residual_blocks), list(self.kept_adds))

    def __repr__(self) -> str:  # the summary, then the module tree a module prints
        return f"{self._shown().text()}\n{nn.Module.__repr__(self)}"

    def __deepcopy__(self, memo: dict[int, Any]) -> PlainTwin:
        # fx copies the graph and its modules only: keep the class name and what was recorded
        copied = cast(PlainTwin, super().__deepcopy__(memo))  # fx makes it of type(self)
        _keep_facts(self, copied, lambda value: copy.deepcopy(value, memo))
        return copied


def _keep_facts(twin: fx.GraphModule, into: fx.GraphModule,
                copied: Callable[[Any], Any] = lambda value: value) -> None:
    """What surgery and ``plain_twin`` recorded on ``twin`` (blocks, layer_info, the
    original's name), set on ``into``, a PlainTwin of the same graph."""
    type(into).__name__ = "PlainTwin"
    for key, value in vars(twin).items():
        if not key.startswith("_") and key not in vars(into):
            setattr(into, key, copied(value))
    into.training = twin.training


def plain_twin(model: nn.Module, example: torch.Tensor | None = None,
               reinit: bool = False, *, name: str | None = None) -> PlainTwin:
    """``model`` without its shortcuts: every residual addition found in its fx graph is
    replaced by its branch (``resnet_probe.sources.surgery``). The twin shares no
    parameters with ``model`` and carries its block structure in ``layer_info`` (given an
    ``example`` input); with ``reinit``, branches that start at zero get a unit init first.
    The twin is a ``PlainTwin``: it shows what was removed, naming the original ``name`` (by
    default a zoo model's name, else its class)."""
    twin = _plain_twin(model, example, reinit)
    shown = PlainTwin(twin, twin.graph)  # the same modules and graph
    _keep_facts(twin, shown)
    shown.original_name = name or (model.name if isinstance(model, ResNet)
                                   else type(model).__name__)
    shown.original_params = sum(p.numel() for p in model.parameters())
    return shown
