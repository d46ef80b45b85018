"""Parameters, MACs and FLOPs per module, in every convention side by side.

Counting semantics. One multiply-accumulate (MAC) is one multiply plus one add. The columns:

* ``macs`` -- convention (a): MACs of convolutions and linear layers only (k*k*Cin*Cout*Hout*Wout
  per conv; in*out per linear; biases not counted). This is what the ResNet paper calls
  "FLOPs" and what torchvision's docs call "GFLOPS".
* ``macs_with_elementwise`` -- convention (b): (a) plus the elementwise work, one unit per
  element: batch norm at inference 1 per output element (a fused scale-and-shift), ReLU 1 per
  element, residual add 1 per output element, max-pool k*k-1 comparisons per output element,
  adaptive average pool 1 add per input element, average pool (ResNet-D's shortcut) k*k per
  output element (each input element once when stride = kernel, as there); in attention
  blocks (SE, ECA, selective kernels), a sum or mean 1 per input element, and a sigmoid,
  softmax, gating multiply or other activation 1 per output element (``measure.formulas``
  lists every operator).
* ``flops`` -- convention (c): 2 x ``macs``. This is what torch's FlopCounterMode reports.
* ``backward_flops`` -- convention (d): FLOPs of the conv and linear backward operators
  (gradient of input and of weight) that autograd runs for the output's sum, op by op, not
  assumed to be 2x forward. The first conv computes no input gradient, so the ratio is below
  2; work whose result the output never uses has no backward. Where autograd cannot run the
  backward (a forward that changed a tensor it saved), the column is None and a note says
  why; the forward's counts stand.
* ``macs_fvcore_default`` -- what fvcore's FlopCountAnalysis reports by default, by fvcore's
  own rules (fvcore/nn/jit_handles.py): (a) plus batch norm at inference 2 per element (1
  without affine parameters), a norm over batch statistics (instance norm, batch norm
  without running statistics), layer and group norm 5 per element (4 without affine), 1 per
  adaptive-avg-pool input element, bilinear upsampling 4 and nearest 1 per output element.

Everything is counted at inference (BN in eval mode). ``stride_placement`` comes from the spec:
"3x3" (torchvision v1.5, the default) or "1x1" (the paper's v1); ``macs_v1`` gives the v1 count
next to it. An operator that executes and has no formula is listed in ``uncounted_operators``
and marks the row ``partial`` for convention (b); operators that only move data (views, pads,
slices) cost nothing by definition and are not listed.

Attribution (``measure.attribution``): each operator is counted once, on the row of the
innermost module running it (a module that calls itself is one module), so per-module rows
are never negative and sum to the total; a child that also runs outside its parent has all
its calls on its own row.

How (``measure.count_method``): zoo nets by ``shape_pass`` (torch's formulas on shapes, no
dispatch); any other model, or a forward the pass cannot follow, under dispatch on meta
stand-ins, or on the real tensors where the forward reads values. Inputs given as tensors are
used as given (copies where the forward runs on them), and the module is counted as it is:
no copy, its modes and gradients left as they were. Both paths give the same counts (tested
on every zoo net).

Files: this one chooses the path for a MODEL; ``count_method`` makes one count;
``cost_rows`` turns it into rows; ``cost_result`` holds the result and its totals;
``zoo_costs`` adds a zoo net's spec columns and ``macs_v1``.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from resnet_probe.errors import InvalidRequest, UserCodeError
from resnet_probe.measure.cost_result import (
    CostResult,
    add_memory,
    idle_parameters,
    summary_totals,
    uncounted_calls,
)
from resnet_probe.measure.cost_rows import module_rows, operator_rows
from resnet_probe.measure.count_method import (
    Counted,
    NeedsRealTensors,
    count_inputs,
    count_with_fvcore,
    describe_inputs,
    device_of,
    dispatch_on_cpu,
    example_arguments,
)
from resnet_probe.measure.zoo_costs import count_model_costs
from resnet_probe.modes import in_mode
from resnet_probe.sources import (
    ModelSource,
    SourceKind,
    check_weights,
    forward_step,
    read_weights,
    resolve,
)
from resnet_probe.sources.surgery import has_shortcuts
from resnet_probe.zoo import ResNetSpec, build_on_meta

__all__ = ["DEFAULT_ENGINE", "ENGINES", "CostResult", "count_costs", "count_model_costs",
           "count_module_costs", "count_source", "example_arguments", "resolution_sweep",
           "stage_costs", "uncounted_calls"]

ENGINES = ("torch", "fvcore")
DEFAULT_ENGINE = "torch"


def count_costs(
    model: str | ResNetSpec | nn.Module | ModelSource,
    input_size: int | None = None,
    batch_size: int = 1,
    engine: str = DEFAULT_ENGINE,
    name: str | None = None,
    in_channels: int | None = None,
    structure: bool = True,
    memory: bool = False,
    example: Any = None,
) -> CostResult:
    """Count one model: a zoo name or spec, any MODEL (resnet_probe.sources), or an nn.Module.
    ``input_size`` defaults to the model's standard (224, or 32 for CIFAR-style nets); a
    source with an ``inputs`` spec is fed those tensors. ``example``: inputs as fvcore and
    torchinfo take them (a tensor, a tuple of positional tensors, a dict of keyword
    tensors), used as given. ``structure=False`` skips a foreign model's block and stage
    discovery (totals and per-module rows need none). ``memory`` adds the memory columns
    (``measure.memory.MEMORY_METHOD``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer: batch_size={batch_size!r}")
    if isinstance(model, ResNetSpec):
        if example is not None:
            return count_module_costs(build_on_meta(model), example, name or "custom", engine,
                                      kind=SourceKind.ZOO)
        return count_model_costs(build_on_meta(model), input_size, batch_size, name or "custom",
                                 engine, source=model, memory=memory)
    image = _image_shape(example)  # blocks and stages are found at its size
    source = resolve(model, in_channels if in_channels is not None or image is None
                     else image[1], image[-1] if image else None, name=name)
    if source.spec is not None and source.inputs is None and example is None:
        built = build_on_meta(source.spec)
        if source.weights is not None:  # counts do not depend on them, but they must fit
            check_weights(built, read_weights(source.weights, built, "meta"), source.weights,
                          source.text)
        return count_model_costs(built, input_size, batch_size, name or source.text, engine,
                                 source=source.spec, memory=memory)
    return count_source(source, input_size, batch_size, engine, name, structure, memory,
                        example)


def count_source(source: ModelSource, input_size: int | None = None, batch_size: int = 1,
                 engine: str = DEFAULT_ENGINE, name: str | None = None,
                 structure: bool = True, memory: bool = False,
                 example: Any = None) -> CostResult:
    """A foreign model, built on the meta device where its constructor allows (else on the
    CPU, with a note) and counted by the fastest path that sees all of its work; the user's
    own module is counted as it is. ``example``: inputs used as given (see count_costs)."""
    if source.inputs is not None and input_size is not None:
        raise InvalidRequest(f"{source.text}: give its inputs (--input) or --input-size, not "
                             f"both; --input-size is the shorthand for one image")
    given = example_arguments(example) if example is not None else None
    if given is not None and batch_size != 1:
        raise InvalidRequest(f"{source.text}: inputs given as tensors are counted at their own "
                             f"batch, so batch_size={batch_size} cannot apply; give the "
                             f"tensors at the batch size to count")
    # Blocks and stages are found from one image of the source's size; inputs of another
    # kind are never redrawn for it.
    image = _image_shape(example)
    fits = image is not None and image[1:] == (source.in_channels, source.default_input_size,
                                               source.default_input_size)
    structure = structure and (given is None or source.inputs is None and fits)
    batch = batch_size if source.inputs is None or batch_size != 1 else None

    def inputs(device: str = "cpu") -> tuple[tuple[Any, ...], dict[str, Any]]:
        return given if given is not None else source.example_inputs(input_size, batch, device)

    notes = []
    if source.kind is SourceKind.MODULE:  # the user's own module, as it is: no copy
        module = source.module
        assert module is not None
        model = module
        with in_mode(model, training=False):  # discovery runs it; its modes come back
            layer_info = source.structure() if structure else {}
        args, kwargs = inputs()
        started = time.perf_counter()
        counted = count_with_fvcore(model, args, kwargs) if engine == "fvcore" else \
            forward_step(source, "counting its operators",
                         lambda: count_inputs(module, args, kwargs), grad=True)
    elif engine == "fvcore":
        model = source.build(structure=structure)
        args, kwargs = inputs()
        started = time.perf_counter()
        counted = count_with_fvcore(model, args, kwargs)
    else:
        try:
            model = source.build(structure=structure, device="meta")
        except UserCodeError as error:
            notes.append(f"built on the CPU: its constructor does not run on the meta device "
                         f"({error.reason})")
            model = source.build(structure=structure)
        started = time.perf_counter()
        model, args, kwargs, counted = forward_step(
            source, "counting its operators",
            lambda: _count_built(source, model, inputs, structure), grad=True)
    seconds = time.perf_counter() - started
    if counted.note:
        notes.append(counted.note)
    if source.kind is not SourceKind.MODULE:
        layer_info = getattr(model, "layer_info", {}) or {}
    if given is not None:
        description, input_size, batch_size = _example_facts(*given)
    else:
        description = source.input_description(input_size, batch or 1)
        if source.inputs is not None:
            input_size, batch_size = None, batch or source.inputs.batch_size
        else:
            input_size, batch_size = input_size or source.default_input_size, batch_size
    result = _foreign_result(model, counted, name or source.text, engine, seconds, layer_info,
                             kind=source.kind, inputs=description, input_size=input_size,
                             batch_size=batch_size, structure=structure)
    result.notes = notes + result.notes
    result.summary["count_notes"] = "; ".join(result.notes)
    if memory:
        add_memory(result, model, args, kwargs, real_model=lambda: source.build(
            structure=False))
    return result


def _count_built(source: ModelSource, model: nn.Module, inputs: Any, structure: bool):
    """(model, args, kwargs, counts): a meta build that cannot run its forward on meta
    tensors is built again on the CPU and counted there."""
    args, kwargs = inputs(device_of(model))
    try:
        return model, args, kwargs, count_inputs(model, args, kwargs)
    except NeedsRealTensors as error:
        model = source.build(structure=structure)
        args, kwargs = inputs()
        return model, args, kwargs, dispatch_on_cpu(model, args, kwargs, str(error))


def count_module_costs(model: nn.Module, example: Any, name: str,
                       engine: str = DEFAULT_ENGINE,
                       kind: SourceKind = SourceKind.MODULE) -> CostResult:
    """Count a built module on example inputs as fvcore and torchinfo take them (a tensor, a
    tuple of positional tensors, or a dict of keyword tensors). The module is not changed:
    the count runs on meta stand-ins of its tensors where it can."""
    args, kwargs = example_arguments(example)
    started = time.perf_counter()
    if engine == "fvcore":
        counted = count_with_fvcore(model, args, kwargs)
    else:
        try:
            counted = count_inputs(model, args, kwargs)
        except NeedsRealTensors as error:
            raise InvalidRequest(f"{name}: its forward does not run on meta tensors and the "
                                 f"model is on the meta device, so it cannot be counted "
                                 f"({error})") from None
    description, input_size, batch_size = _example_facts(args, kwargs)
    result = _foreign_result(model, counted, name, engine, time.perf_counter() - started,
                             getattr(model, "layer_info", {}) or {}, kind=kind,
                             inputs=description, input_size=input_size,
                             batch_size=batch_size, structure=True)
    if counted.note:
        result.notes.append(counted.note)
    return result


def _image_shape(example: Any) -> tuple[int, ...] | None:
    """The shape of ``example`` when it is one square image batch (N, C, H, H), else None."""
    if isinstance(example, torch.Tensor) and example.dim() == 4 and \
            example.is_floating_point() and example.shape[-1] == example.shape[-2]:
        return tuple(example.shape)
    return None


def _example_facts(args: tuple, kwargs: dict) -> tuple[str, int | None, int]:
    """(description, image size or None, batch size) of inputs given as tensors."""
    first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
    if first is None:
        return describe_inputs(args, kwargs), None, 1
    image = first.dim() == 4 and len(args) + len(kwargs) == 1
    return (describe_inputs(args, kwargs), first.shape[-1] if image else None,
            first.shape[0] if first.dim() else 1)


def _foreign_result(model: nn.Module, counted: Counted, label: str, engine: str,
                    seconds: float, layer_info: dict, *, kind: SourceKind, inputs: str,
                    input_size: int | None, batch_size: int, structure: bool) -> CostResult:
    """The rows and the summary of a foreign model's count (``layer_info``: its discovered
    structure, empty when none was asked for or found)."""
    modules = module_rows(model, counted, engine, layer_info=layer_info)
    depth = max((i.depth for i in layer_info.values() if i.depth is not None), default=None)
    summary = {"model": label, "family": kind.value, "design": kind.value, "block": None,
               "depth": depth,
               "shortcut": has_shortcuts(model, layer_info) if structure else None,
               "groups": None, "width_per_group": None, "widths": None, "preact": None,
               "shortcut_option": None, "stride_placement": None,
               "input_size": input_size, "batch_size": batch_size, "inputs": inputs,
               "engine": engine, **summary_totals(modules, counted),
               "count_method": counted.method, "count_seconds": seconds}
    summary["macs_v1"] = summary["macs"]
    for row in modules:
        row["model"] = label
    result = CostResult(summary, modules, operator_rows(label, counted),
                        uncounted_calls(counted.calls))
    result.notes.extend(idle_parameters(model, counted.called, counted.parameters_read_by))
    return result


def resolution_sweep(model: str | ModelSource, sizes: list[int], batch_size: int = 1
                     ) -> list[dict[str, Any]]:
    """Cost against input size: one summary row per size."""
    return [count_costs(model, input_size=size, batch_size=batch_size).summary for size in sizes]


def stage_costs(result: CostResult) -> list[dict[str, Any]]:
    """Params and MACs per stage, the unit the regression baseline pins."""
    stages: dict[str, dict[str, int]] = {}
    for row in result.modules:
        stage = row["stage"] or "model"
        totals = stages.setdefault(stage, {"params": 0, "macs": 0})
        totals["params"] += row["params"]
        totals["macs"] += row["macs"]
    return [{"model": result.summary["model"], "stage": s, **v} for s, v in stages.items()]
