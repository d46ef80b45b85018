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
  softmax, gating multiply or other activation 1 per output element.
* ``flops`` -- convention (c): 2 x ``macs``. This is what torch's FlopCounterMode reports.
* ``backward_flops`` -- convention (d): FLOPs of the conv and linear backward operators
  (gradient of input and of weight), measured op by op with FlopCounterMode, not assumed to be
  2x forward. The first conv computes no input gradient, so the ratio is below 2.
* ``macs_fvcore_default`` -- what fvcore's FlopCountAnalysis reports by default: (a) plus
  2 per batch-norm element (eval, affine) plus 1 per adaptive-avg-pool input element.

Everything is counted at inference (BN in eval mode). ``stride_placement`` comes from the spec:
"3x3" (torchvision v1.5, the default) or "1x1" (the paper's v1); ``macs_v1`` gives the v1 count
next to it. An operator that executes and has no formula is listed in ``uncounted_operators``
and marks the row ``partial`` for convention (b); operators that only move data (views, pads,
slices) cost nothing by definition and are not listed.

How: zoo nets by ``shape_pass`` (torch's formulas on shapes, no dispatch); any other model, or
a zoo net whose forward the pass cannot follow, under ``FlopCounterMode``. Both give the same
counts (tested on every zoo net); only the shape pass attributes backward to the right module.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from resnet_probe.errors import InvalidRequest, UserCodeError
from resnet_probe.measure.counting import count_pass, meta_tensors
from resnet_probe.measure.formulas import (
    DATA_MOVEMENT,
    ELEMENTWISE_OPS,
    FVCORE_UNITS,
    MATMUL_CONV_OPS,
)
from resnet_probe.measure.hooks import is_leaf
from resnet_probe.measure.memory import MEMORY_COLUMNS, memory_rows
from resnet_probe.measure.shape_pass import count_shapes
from resnet_probe.sources import ModelSource, check_weights, forward_step, read_weights, resolve
from resnet_probe.sources.surgery import has_shortcuts
from resnet_probe.zoo import ResNet, ResNetSpec, build_model, build_on_meta
from resnet_probe.zoo.spec import StridePlacement

Counts = dict[str, dict[str, int]]
ENGINES = ("torch", "fvcore")
DEFAULT_ENGINE = "torch"

# How a count was made, in the summary's ``count_method``.
SHAPE_PASS = "shape pass"  # the model's forward over shapes: nothing allocated or dispatched
META_DISPATCH = "meta dispatch"  # every aten operator seen, on meta tensors (no storage)
CPU_DISPATCH = "cpu dispatch"  # the same on real tensors, when the forward cannot run on meta
FVCORE = "fvcore"


@dataclass
class CostResult:
    """Plain rows; ``results.costs_frames`` turns them into DataFrames. ``notes`` say how the
    count was made where it was not the fast path (a CPU build, a count at full size)."""

    summary: dict[str, Any]
    modules: list[dict[str, Any]] = field(default_factory=list)
    operators: list[dict[str, Any]] = field(default_factory=list)
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> calls, no formula
    memory: list[dict[str, Any]] = field(default_factory=list)  # bytes, per module and total
    notes: list[str] = field(default_factory=list)


@dataclass
class Counted:
    """One forward-and-backward count: per module (each entry includes its children's, ""
    is the model) per aten operator, the operators' calls, and how it was made."""

    forward: Counts
    backward: Counts
    calls: Counter
    method: str
    backward_by_module: bool = True
    conv_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    note: str | None = None
    called: frozenset[str] | None = None  # every module whose forward ran (None: unknown)


class NeedsRealTensors(Exception):
    """The forward cannot run on meta tensors (a meta model cannot fall back by itself)."""


def count_costs(
    model: str | ResNetSpec | nn.Module | ModelSource,
    input_size: int | None = None,
    batch_size: int = 1,
    engine: str = DEFAULT_ENGINE,
    name: str | None = None,
    in_channels: int | None = None,
    structure: bool = True,
    memory: bool = False,
) -> CostResult:
    """Count one model: a zoo name or spec, any MODEL source (sources.py), or an nn.Module.
    ``input_size`` defaults to the model's standard (224, or 32 for CIFAR-style nets); a
    source with an ``inputs`` spec is fed those tensors. ``structure=False`` skips a foreign
    model's block and stage discovery (totals and per-module rows need none). ``memory``
    adds the memory columns (``measure.memory.MEMORY_METHOD``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer: batch_size={batch_size!r}")
    if isinstance(model, ResNetSpec):
        return count_model_costs(build_on_meta(model), input_size, batch_size, name or "custom",
                                 engine, source=model, memory=memory)
    source = resolve(model, in_channels, name=name)
    if source.is_zoo and source.inputs is None:
        built = build_on_meta(source.spec)
        if source.weights is not None:  # counts do not depend on them, but they must fit
            check_weights(built, read_weights(source.weights, built, "meta"), source.weights,
                          source.text)
        return count_model_costs(built, input_size, batch_size, name or source.text, engine,
                                 source=source.spec, memory=memory)
    return count_source(source, input_size, batch_size, engine, name, structure, memory)


def count_source(source: ModelSource, input_size: int | None = None, batch_size: int = 1,
                 engine: str = DEFAULT_ENGINE, name: str | None = None,
                 structure: bool = True, memory: bool = False) -> CostResult:
    """A foreign model, built on the meta device where its constructor allows (else on the
    CPU, with a note) and counted by the fastest path that sees all of its work."""
    if source.inputs is not None and input_size is not None:
        raise InvalidRequest(f"{source.text}: give its inputs (--input) or --input-size, not "
                             f"both; --input-size is the shorthand for one image")
    notes = []
    batch = batch_size if source.inputs is None or batch_size != 1 else None
    if engine == "fvcore":
        model = source.build(structure=structure)
        args, kwargs = source.example_inputs(input_size, batch)
        started = time.perf_counter()
        counted = _count_with_fvcore(model, args, kwargs)
    elif source.kind == "module":  # the user's own module, counted on meta stand-ins
        model = source.module
        layer_info = source.structure() if structure else {}
        started = time.perf_counter()
        args, kwargs = source.example_inputs(input_size, batch)
        counted = forward_step(source, "counting its operators",
                               lambda: count_inputs(model, args, kwargs), grad=True)
    else:
        try:
            model = source.build(structure=structure, device="meta")
        except UserCodeError as error:
            notes.append(f"built on the CPU: its constructor does not run on the meta device "
                         f"({error.reason})")
            model = source.build(structure=structure)
        started = time.perf_counter()
        model, args, kwargs, counted = forward_step(
            source, "counting its operators", lambda: _count_built(
                source, model, input_size, batch, structure), grad=True)
    seconds = time.perf_counter() - started
    if counted.note:
        notes.append(counted.note)
    if source.kind != "module" or engine != "torch":
        layer_info = getattr(model, "layer_info", {}) or {}
    label = name or source.text
    result = _result(model, counted, label, engine, seconds, layer_info, kind=source.kind,
                     inputs=source.input_description(input_size, batch or 1),
                     input_size=None if source.inputs is not None else
                     (input_size or source.default_input_size),
                     batch_size=batch or source.inputs.batch_size, structure=structure)
    result.notes = notes + result.notes
    result.summary["count_notes"] = "; ".join(result.notes)
    if memory:
        _add_memory(result, model, args, kwargs, real_model=lambda: source.build(
            structure=False))
    return result


def _count_built(source: ModelSource, model: nn.Module, input_size: int | None,
                 batch: int | None, structure: bool):
    """(model, args, kwargs, counts): a meta build that cannot run its forward on meta
    tensors is built again on the CPU and counted there."""
    args, kwargs = source.example_inputs(input_size, batch, device=_device_of(model))
    try:
        return model, args, kwargs, count_inputs(model, args, kwargs)
    except NeedsRealTensors as error:
        model = source.build(structure=structure)
        args, kwargs = source.example_inputs(input_size, batch)
        return model, args, kwargs, _dispatch_on_cpu(model, args, kwargs, str(error))


def count_module_costs(model: nn.Module, example: Any, name: str,
                       engine: str = DEFAULT_ENGINE, kind: str = "module") -> CostResult:
    """Count a built module on example inputs as fvcore and torchinfo take them (a tensor, a
    tuple of positional tensors, or a dict of keyword tensors). The module is not changed:
    the count runs on meta stand-ins of its tensors where it can."""
    args, kwargs = example_arguments(example)
    started = time.perf_counter()
    if engine == "fvcore":
        counted = _count_with_fvcore(model, args, kwargs)
    else:
        try:
            counted = count_inputs(model, args, kwargs)
        except NeedsRealTensors as error:
            raise InvalidRequest(f"{name}: its forward does not run on meta tensors and the "
                                 f"model is on the meta device, so it cannot be counted "
                                 f"({error})") from None
    first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
    image = first is not None and first.dim() == 4 and len(args) + len(kwargs) == 1
    result = _result(model, counted, name, engine, time.perf_counter() - started,
                     getattr(model, "layer_info", {}) or {}, kind=kind,
                     inputs=_describe_inputs(args, kwargs),
                     input_size=first.shape[-1] if image else None,
                     batch_size=first.shape[0] if first is not None and first.dim() else 1,
                     structure=True)
    if counted.note:
        result.notes.append(counted.note)
    return result


def example_arguments(example: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) from example inputs: a tensor, a tuple or list, or a dict."""
    if isinstance(example, torch.Tensor):
        return (example,), {}
    if isinstance(example, (tuple, list)):
        return tuple(example), {}
    if isinstance(example, dict):
        return (), dict(example)
    raise InvalidRequest(f"example inputs are a tensor, a tuple of positional inputs or a "
                         f"dict of keyword inputs, not {type(example).__name__}")


def _describe_inputs(args: tuple, kwargs: dict) -> str:
    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            dtype = "" if value.dtype == torch.float32 else f":{str(value.dtype)[6:]}"
            return "x".join(map(str, value.shape)) + dtype
        return type(value).__name__
    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return " ".join(parts)


def _device_of(model: nn.Module) -> str:
    tensor = next(iter([*model.parameters(), *model.buffers()]), None)
    return "meta" if tensor is not None and tensor.is_meta else "cpu"


def count_inputs(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Counted:
    """Forward and backward counts of ``model(*args, **kwargs)``: by the shape pass when the
    forward takes one image and the pass follows all of it (nothing else ran), else by
    dispatch on meta stand-ins of the model's tensors and inputs, else (a forward that cannot
    run on meta tensors) by dispatch on the real ones, with a note. Raises NeedsRealTensors
    when that last step is needed but the model is on the meta device."""
    single = not kwargs and len(args) == 1 and isinstance(args[0], torch.Tensor) \
        and args[0].is_floating_point()
    if single:
        try:
            # fx prints the generated code of a GraphModule whose forward raises: the pass
            # may fail by design, so that print is not shown
            quiet = contextlib.redirect_stderr(io.StringIO()) if isinstance(
                model, torch.fx.GraphModule) else contextlib.nullcontext()
            with quiet:
                counts = count_shapes(model, tuple(args[0].shape), args[0].requires_grad)
            return Counted(counts.forward, counts.backward, counts.calls, SHAPE_PASS,
                           counts.backward_by_module, counts.conv_outputs,
                           called=counts.called)
        except Exception:  # noqa: BLE001 - NoFormula, or foreign code meeting the stand-in
            pass
    on_meta = _device_of(model) == "meta"
    meta_args = tree_map(_as_meta, args)
    meta_kwargs = tree_map(_as_meta, kwargs)
    try:
        counts = count_pass(model, meta_args, meta_kwargs, memory=False,
                            tensors=None if on_meta else meta_tensors(model))
    except (KeyboardInterrupt, InvalidRequest):
        raise
    except Exception as error:  # noqa: BLE001 - an operator with no meta kernel, .item(), ...
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if on_meta:
            raise NeedsRealTensors(reason) from None
        return _dispatch_on_cpu(model, args, kwargs, reason)
    return Counted(counts.forward, counts.backward, counts.calls, META_DISPATCH,
                   called=frozenset(counts.called))


def _dispatch_on_cpu(model: nn.Module, args: tuple, kwargs: dict, reason: str) -> Counted:
    counts = count_pass(model, args, kwargs, memory=False)
    return Counted(counts.forward, counts.backward, counts.calls, CPU_DISPATCH,
                   called=frozenset(counts.called),
                   note=f"counted on real tensors at full size: its forward does not run on "
                        f"meta tensors ({reason})")


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not value.is_meta:
        return torch.empty_like(value, device="meta").requires_grad_(value.requires_grad)
    return value


def _result(model: nn.Module, counted: Counted, label: str, engine: str, seconds: float,
            layer_info: dict, *, kind: str, inputs: str, input_size: int | None,
            batch_size: int, structure: bool) -> CostResult:
    """The rows and the summary of a foreign model's count (``layer_info``: its discovered
    structure, empty when none was asked for or found)."""
    modules = _module_rows(model, counted.forward, counted.backward, engine,
                           backward_by_module=counted.backward_by_module,
                           layer_info=layer_info)
    depth = max((i.depth for i in layer_info.values() if i.depth is not None), default=None)
    summary = {"model": label, "family": kind, "design": kind, "block": None,
               "depth": depth,
               "shortcut": has_shortcuts(model, layer_info) if structure else None,
               "groups": None, "width_per_group": None, "widths": None, "preact": None,
               "shortcut_option": None, "stride_placement": None,
               "input_size": input_size, "batch_size": batch_size, "inputs": inputs,
               "engine": engine,
               **_summary_totals(modules, counted.calls, counted.backward),
               "count_method": counted.method, "count_seconds": seconds}
    summary["macs_v1"] = summary["macs"]
    for row in modules:
        row["model"] = label
    result = CostResult(summary, modules, _operator_rows(label, counted.forward,
                                                         counted.backward),
                        uncounted_calls(counted.calls))
    idle = _idle_parameters(model, counted.called)
    if idle:
        result.notes.append(idle)
    return result


def _idle_parameters(model: nn.Module, called: frozenset[str] | None) -> str | None:
    """Modules holding parameters whose forward never ran in the counted pass (googlenet's
    auxiliary classifiers in eval mode): their params are in the total, their work is not."""
    if called is None:
        return None
    idle = [(name, sum(p.numel() for p in module.parameters()))
            for name, module in model.named_modules()
            if name and name not in called  # nor any module inside it (a ModuleList)
            and not any(c.startswith(f"{name}.") for c in called)
            and any(True for _ in module.parameters())]
    top = [(n, c) for n, c in idle if not any(n.startswith(f"{o}.") for o, _ in idle)]
    if not top:
        return None
    return (f"{sum(c for _, c in top):,} params are in modules that did not run in this "
            f"forward ({', '.join(n for n, _ in top[:6])}{', ...' if len(top) > 6 else ''}): "
            f"they are counted in params and do no work here")


def _add_memory(result: CostResult, model: nn.Module, args: tuple, kwargs: dict,
                real_model: Any = None) -> None:
    try:
        rows = memory_rows(model, args, kwargs, real_model=real_model)
        result.summary["memory_batch_size"] = result.summary.get("batch_size")
    except ValueError as error:
        if "more than 1 value per channel" not in str(error):
            raise
        # BatchNorm refuses a training step on one value per channel: a batch of 1 cannot
        # train this model, so its training memory is taken at batch 2 and said so.
        args, kwargs = _doubled_batch(args), _doubled_batch(kwargs)
        rows = memory_rows(model, args, kwargs, real_model=real_model)
        result.summary["memory_batch_size"] = 2
        result.notes.append("memory columns at batch 2: a training step at batch 1 fails "
                            "here (BatchNorm needs more than one value per channel)")
        result.summary["count_notes"] = "; ".join(result.notes)
    for row in rows:
        row["model"] = result.summary["model"]
    result.memory = rows
    total = rows[-1]
    result.summary.update({column: total.get(column) for column in MEMORY_COLUMNS})


def _doubled_batch(inputs: Any) -> Any:
    """Every tensor of batch 1 in ``inputs`` (a tuple or dict), repeated to batch 2."""
    def double(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == 1:
            return value.expand(2, *value.shape[1:])
        return value
    if isinstance(inputs, dict):
        return {key: double(value) for key, value in inputs.items()}
    return tuple(double(value) for value in inputs)


def uncounted_calls(calls: Counter) -> dict[str, int]:
    """The operators that ran with no formula in any convention, with their call counts."""
    return {op: n for op, n in sorted(calls.items())
            if op not in MATMUL_CONV_OPS | ELEMENTWISE_OPS | DATA_MOVEMENT}


def _conv_linear_flops(ops: dict[str, int]) -> int:
    """FLOPs of the conv and linear operators among ``ops`` (2 per MAC)."""
    return sum(value for op, value in ops.items() if op in MATMUL_CONV_OPS)


def _summary_totals(modules: list[dict[str, Any]], calls: Counter,
                    backward: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Model totals from the rows (backward from the model's own entry: rows may not carry
    it), and what was not counted: each operator with no formula, with how often it ran,
    marking convention (b) partial."""
    uncounted = uncounted_calls(calls)
    totals = {key: _column_total(modules, key)
              for key in ("params", "trainable_params", "macs", "flops",
                          "macs_with_elementwise", "macs_fvcore_default")}
    backward_total = _conv_linear_flops(backward[""]) if "" in backward else None
    return {**totals, "backward_flops": backward_total,
            "backward_to_forward": (backward_total / totals["flops"]
                                    if backward_total and totals["flops"] else None),
            "partial": bool(uncounted),
            "uncounted_operators": ";".join(f"{op} x{n}" for op, n in uncounted.items())}


def count_model_costs(
    model: ResNet,
    input_size: int | None = None,
    batch_size: int = 1,
    name: str | None = None,
    engine: str = DEFAULT_ENGINE,
    source: str | ResNetSpec | None = None,
    memory: bool = False,
) -> CostResult:
    """Count an already built zoo model (on the meta device for speed, or on CPU)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch size must be a positive integer: batch_size={batch_size!r}")
    label = name or model.name
    spec = model.spec
    size = spec.default_input_size if input_size is None else input_size
    spec.check_input_size(size)
    shape = (batch_size, spec.in_channels, size, size)

    started = time.perf_counter()
    counts = None
    if engine == "torch":
        counts = count_forward_backward(model, shape)
        forward, backward, calls = counts.forward, counts.backward, counts.calls
        method = counts.method
    else:
        counted = _count_with_fvcore(build_model(source if source is not None else spec),
                                     (torch.zeros(shape),), {})
        forward, backward, calls, method = counted.forward, {}, counted.calls, FVCORE
    v1_macs = _v1_macs(model, shape, counts)
    seconds = time.perf_counter() - started

    modules = _module_rows(model, forward, backward, engine,
                           backward_by_module=bool(counts and counts.backward_by_module))
    totals = _summary_totals(modules, calls, backward)
    summary = {
        "model": label, "family": spec.family, "design": spec.design.value,
        "block": spec.block.value, "depth": spec.depth, "shortcut": spec.shortcut,
        "groups": spec.groups, "width_per_group": spec.width_per_group,
        "widths": "-".join(map(str, spec.widths)), "preact": spec.preact,
        "shortcut_option": spec.shortcut_option.value if spec.shortcut else None,
        "stride_placement": spec.stride_placement.value,
        "input_size": size, "batch_size": batch_size,
        "inputs": "x".join(map(str, shape)), "engine": engine,
        **totals,
        "macs_v1": v1_macs if v1_macs is not None else totals["macs"],
        "count_method": method, "count_seconds": seconds,
    }
    operators = _operator_rows(label, forward, backward)
    for row in modules:
        row["model"] = label
    result = CostResult(summary=summary, modules=modules, operators=operators,
                        uncounted=uncounted_calls(calls))
    if memory:
        _add_memory(result, model, (torch.empty(shape, device=_device_of(model)),), {},
                    real_model=lambda: build_model(spec))
    return result


def count_forward_backward(model: nn.Module, shape: tuple[int, ...]) -> Counted:
    """Forward and backward counts per module, and operator calls, for a zoo net: by the
    shape pass (no dispatch, exact: tests compare it with FlopCounterMode on every zoo
    model), or by dispatch when its forward calls something the pass cannot count."""
    device = _device_of(model)
    counted = count_inputs(model, (torch.empty(shape, device=device),), {})
    return counted


def _column_total(rows: list[dict[str, Any]], key: str) -> int | None:
    """None when the engine does not measure the column, rather than a silent zero."""
    values = [row[key] for row in rows]
    return None if any(v is None for v in values) else sum(values)


def _count_with_fvcore(model: nn.Module, args: tuple, kwargs: dict) -> Counted:
    """fvcore's FlopCountAnalysis on this very module (on CPU, in eval mode)."""
    if kwargs:
        raise InvalidRequest("the fvcore engine feeds positional inputs only (fvcore traces "
                             "with TorchScript); use the torch engine for keyword inputs")
    real = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore traces with TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(real, args if len(args) != 1 else args[0])
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = analysis.by_module_and_operator()
    # fvcore counts conv/linear in MACs; record them as torch does (2 per MAC) so rows agree.
    fvcore_to_aten = {"conv": "aten.convolution", "linear": "aten.addmm", "addmm": "aten.addmm",
                      "batch_norm": "fvcore.batch_norm",
                      "adaptive_avg_pool2d": "fvcore.adaptive_avg_pool2d"}
    counts: dict[str, dict[str, int]] = {}
    for module, ops in by_module.items():
        converted: dict[str, int] = {}
        for op, value in ops.items():
            key = fvcore_to_aten.get(op, f"fvcore.{op}")
            per_mac = 2 if key.startswith("aten") else 1
            converted[key] = converted.get(key, 0) + per_mac * value
        counts[module] = converted
    calls = Counter({f"fvcore.{op}": n for op, n in analysis.unsupported_ops().items()})
    return Counted(counts, {}, calls, FVCORE, backward_by_module=False)


def _v1_macs(model: ResNet, shape: tuple[int, ...], counts: Counted | None) -> int | None:
    """MACs with the paper's v1 stride placement. v1 strides a bottleneck's 1x1 conv1
    instead of its 3x3 conv2: conv2's output size is unchanged, and conv1 produces that size
    instead of its input's, so only conv1's MACs shrink, by the ratio of the two sizes. The
    arithmetic uses the conv output shapes the count recorded; without them (an engine that
    records none) the v1 net is built and counted."""
    spec = model.spec
    if spec.stride_placement is StridePlacement.V1 or spec.block.value == "basic":
        return None  # identical network: basic blocks have one place for the stride
    if not counts or not counts.conv_outputs:
        v1 = build_on_meta(spec.replace(stride_placement=StridePlacement.V1))
        return _conv_linear_flops(count_forward_backward(v1, shape).forward[""]) // 2
    macs = _conv_linear_flops(counts.forward[""]) // 2
    for name, block in model.blocks():
        if block.conv2.stride == (1, 1):
            continue
        conv1_size = math.prod(counts.conv_outputs[f"{name}.conv1"][2:])
        conv2_size = math.prod(counts.conv_outputs[f"{name}.conv2"][2:])
        conv1_macs = counts.forward[f"{name}.conv1"]["aten.convolution"] // 2
        macs -= conv1_macs // conv1_size * (conv1_size - conv2_size)
    return macs


def _own_counts(names: list[str], nested: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """A module's counts minus its direct children's: work done in its own forward code. A
    container that never ran (a traced graph calls its leaves directly) counts as the sum of
    its children."""
    parents = {name: name.rpartition(".")[0] for name in names if name}
    children: dict[str, list[str]] = defaultdict(list)
    for name, parent in parents.items():
        children[parent].append(name)
    nested = dict(nested)
    for name in sorted(names, key=lambda n: -n.count(".") if n else 1):  # deepest first
        if name in nested or not name:
            continue
        ran = [child for child in children[name] if child in nested]
        if ran:
            total: dict[str, int] = defaultdict(int)
            for child in ran:
                for op, value in nested[child].items():
                    total[op] += value
            nested[name] = dict(total)
    own = {name: defaultdict(int, nested.get(name, {})) for name in names}
    for name, parent in parents.items():
        for op, value in nested.get(name, {}).items():
            own[parent][op] -= value
    return {name: {op: v for op, v in ops.items() if v} for name, ops in own.items()}


def _module_rows(model: nn.Module, forward, backward, engine: str,
                 backward_by_module: bool = True, layer_info: dict | None = None
                 ) -> list[dict[str, Any]]:
    """One row per module that has parameters or buffers of its own, or counts of its own
    (a leaf, or a container whose forward code does work: a ViT's class token lives on the
    root). A parameter shared by several modules is counted once, on the first. Backward
    FLOPs are per module where the count attributed them (the shape pass, and dispatch by
    autograd node); fvcore's rows leave them blank."""
    modules = dict(model.named_modules())
    names = list(modules)
    own_forward = _own_counts(names, forward)
    own_backward = _own_counts(names, backward) if backward_by_module else {}
    where = layer_info if layer_info is not None else getattr(model, "layer_info", {}) or {}
    seen: set[int] = set()
    rows = []
    for name, module in modules.items():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        ops = own_forward.get(name, {})
        holds = bool(own) or any(True for _ in module.buffers(recurse=False))
        leaf = is_leaf(module)
        if not leaf and not ops and not holds:
            continue
        info = where.get(name)
        conv_linear = _conv_linear_flops(ops) // 2
        elementwise = sum(v for op, v in ops.items() if op in ELEMENTWISE_OPS)
        if engine == "torch":
            fvcore_default = conv_linear + sum(FVCORE_UNITS.get(op, 0) * v
                                               for op, v in ops.items())
            with_elementwise = conv_linear + elementwise
            backward_flops = (_conv_linear_flops(own_backward.get(name, {}))
                              if backward_by_module else None)
        else:
            fvcore_default = conv_linear + sum(v for op, v in ops.items()
                                               if op.startswith("fvcore."))
            with_elementwise = backward_flops = None
        rows.append({
            "module": name or "(model)",
            "type": type(module).__name__ + ("" if leaf else " (own forward code)"),
            "stage": info.stage if info else None,
            "block": info.block_name if info else None,
            "depth": info.depth if info else None,
            "role": info.role if info else None,
            "params": sum(p.numel() for p in own),
            "trainable_params": sum(p.numel() for p in own if p.requires_grad),
            "macs": conv_linear,
            "flops": 2 * conv_linear,
            "macs_with_elementwise": with_elementwise,
            "macs_fvcore_default": fvcore_default,
            "backward_flops": backward_flops,
        })
    return rows


def _operator_rows(label: str, forward, backward) -> list[dict[str, Any]]:
    rows = []
    for direction, counts in (("forward", forward), ("backward", backward)):
        totals: dict[str, int] = defaultdict(int)
        for name, ops in counts.items():
            if name == "":
                for op, value in ops.items():
                    totals[op] += value
        for op, value in sorted(totals.items()):
            if not value:
                continue
            if op in MATMUL_CONV_OPS:
                kind, macs, flops = "conv/linear", value // 2, value
            else:
                kind, macs, flops = "elementwise", value, None
            rows.append({"model": label, "direction": direction, "operator": op,
                         "kind": kind, "macs": macs, "flops": flops})
    return rows


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
