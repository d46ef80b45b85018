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

import math
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from resnet_probe.measure.formulas import (
    BATCH_NORM_OPS,
    DATA_MOVEMENT,
    ELEMENTWISE_OPS,
    FORMULAS,
    MATMUL_CONV_OPS,
)
from resnet_probe.measure.hooks import is_leaf
from resnet_probe.measure.shape_pass import NoFormula, ShapeCounts, count_shapes
from resnet_probe.sources import ModelSource, check_weights, read_weights, resolve
from resnet_probe.sources.surgery import has_shortcuts
from resnet_probe.zoo import ResNet, ResNetSpec, build_model, build_on_meta
from resnet_probe.zoo.spec import StridePlacement

ENGINES = ("torch", "fvcore")
DEFAULT_ENGINE = "torch"


class _OperatorRecorder(TorchDispatchMode):
    """Counts the calls of every operator that runs, so nothing is silently left out."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class CostResult:
    """Plain rows; ``results.costs_frames`` turns them into DataFrames."""

    summary: dict[str, Any]
    modules: list[dict[str, Any]] = field(default_factory=list)
    operators: list[dict[str, Any]] = field(default_factory=list)
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> calls, no formula
    memory: list[dict[str, Any]] = field(default_factory=list)  # bytes, per module and total


def count_costs(
    model: str | ResNetSpec | nn.Module | ModelSource,
    input_size: int | None = None,
    batch_size: int = 1,
    engine: str = DEFAULT_ENGINE,
    name: str | None = None,
    in_channels: int | None = None,
) -> CostResult:
    """Count one model: a zoo name or spec, any MODEL source (sources.py), or an nn.Module.
    ``input_size`` defaults to the model's standard (224, or 32 for CIFAR-style nets)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if isinstance(model, ResNetSpec):
        label = name or "custom"
        return count_model_costs(build_on_meta(model), input_size, batch_size, label, engine,
                                 source=model)
    source = resolve(model, in_channels, name=name)
    if source.is_zoo:
        built = build_on_meta(source.spec)
        if source.weights is not None:  # counts do not depend on them, but they must fit
            check_weights(built, read_weights(source.weights), source.weights, source.text)
        return count_model_costs(built, input_size, batch_size, name or source.text, engine,
                                 source=source.spec)
    return count_module_costs(source.build(), source.example(input_size, batch_size),
                              name or source.text, engine, kind=source.kind)


def count_module_costs(model: nn.Module, example: torch.Tensor, name: str,
                       engine: str = DEFAULT_ENGINE, kind: str = "module") -> CostResult:
    """Count any module on an example input: the whole forward (and backward) under one
    FlopCounterMode, rows per module with the discovered ``layer_info`` where it has one.
    The fvcore engine counts this very module."""
    started = time.perf_counter()
    attributed = None
    if engine == "torch":
        forward, backward, calls = _count_whole(model, example)
        attributed = _backward_by_module(model, tuple(example.shape), forward, backward)
    else:
        forward, calls = _count_with_fvcore(model, tuple(example.shape))
        backward = {}
    seconds = time.perf_counter() - started
    modules = _module_rows(model, forward, attributed or backward, engine,
                           backward_by_module=attributed is not None)
    info = getattr(model, "layer_info", {}) or {}
    depth = max((i.depth for i in info.values() if i.depth is not None), default=None)
    summary = {"model": name, "family": kind, "design": kind, "block": None,
               "depth": depth, "shortcut": has_shortcuts(model),
               "groups": None, "width_per_group": None, "widths": None, "preact": None,
               "shortcut_option": None, "stride_placement": None,
               "input_size": example.shape[-1], "batch_size": example.shape[0],
               "engine": engine,
               **_summary_totals(modules, calls, backward), "count_seconds": seconds}
    summary["macs_v1"] = summary["macs"]
    for row in modules:
        row["model"] = name
    return CostResult(summary, modules, _operator_rows(name, forward, backward),
                      uncounted_calls(calls))


def _backward_by_module(model: nn.Module, shape: tuple[int, ...], forward, backward):
    """The shape pass's per-module backward for a foreign model, used only when the pass
    reproduces FlopCounterMode's count exactly (every module's forward, and backward per
    operator): then its attribution is the only thing it adds. None otherwise."""
    try:
        counts = count_shapes(model, shape)
    except Exception:  # noqa: BLE001 - foreign code may do anything with the stand-in
        return None

    def nonzero(ops: dict[str, int]) -> dict[str, int]:
        return {op: v for op, v in ops.items() if v}

    same_forward = {name: nonzero(ops) for name, ops in forward.items() if nonzero(ops)}
    if counts.forward != same_forward or counts.backward.get("") != nonzero(backward[""]):
        return None
    return counts.backward


def _count_whole(model: nn.Module, example: torch.Tensor):
    was_training = model.training
    model.eval()
    recorder = _OperatorRecorder()
    try:
        with FlopCounterMode(display=False, custom_mapping=FORMULAS) as counter:
            with recorder:
                out = model(example)
            forward = _strip_root(counter.get_flop_counts())
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out.float().sum().backward()
        both = _strip_root(counter.get_flop_counts())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    backward = {name: {op: value - forward.get(name, {}).get(op, 0) for op, value in ops.items()}
                for name, ops in both.items()}
    return forward, backward, recorder.calls


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
) -> CostResult:
    """Count an already built model (on the meta device for speed, or on CPU)."""
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
    else:
        forward, calls = _count_with_fvcore(build_model(source if source is not None else spec)
                                            , shape)
        backward = {}
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
        "input_size": size, "batch_size": batch_size, "engine": engine,
        **totals,
        "macs_v1": v1_macs if v1_macs is not None else totals["macs"],
        "count_seconds": seconds,
    }
    operators = _operator_rows(label, forward, backward)
    for row in modules:
        row["model"] = label
    return CostResult(summary=summary, modules=modules, operators=operators,
                      uncounted=uncounted_calls(calls))


def count_forward_backward(model: nn.Module, shape: tuple[int, ...]) -> ShapeCounts:
    """Forward and backward counts per module, and operator calls, for a zoo net: by the
    shape pass (no dispatch, exact: tests compare it with FlopCounterMode on every zoo
    model), or under FlopCounterMode when its forward calls something the pass cannot count.
    Foreign models always go through FlopCounterMode: their code may do work the pass
    would never see."""
    try:
        return count_shapes(model, shape)
    except NoFormula:
        device = next(model.parameters()).device
        return ShapeCounts(*_count_whole(model, torch.empty(shape, device=device)),
                           conv_outputs={}, backward_by_module=False)


def _column_total(rows: list[dict[str, Any]], key: str) -> int | None:
    """None when the engine does not measure the column, rather than a silent zero."""
    values = [row[key] for row in rows]
    return None if any(v is None for v in values) else sum(values)


def _strip_root(counts: dict[str, dict[Any, int]]) -> dict[str, dict[str, int]]:
    """FlopCounterMode names modules "ResNet.layer1.0.conv1"; use the state_dict-style name."""
    stripped: dict[str, dict[str, int]] = {}
    for key, ops in counts.items():
        if key == "Global":
            continue
        _, _, rest = key.partition(".")
        stripped[rest] = {str(op): count for op, count in ops.items()}
    return stripped


def _count_with_fvcore(model: nn.Module, shape: tuple[int, ...]):
    """fvcore's FlopCountAnalysis on this very module (on CPU, in eval mode)."""
    real = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore traces with TorchScript
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(real, torch.zeros(shape))
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
    return counts, calls


def _v1_macs(model: ResNet, shape: tuple[int, ...], counts: ShapeCounts | None) -> int | None:
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


def _module_rows(model: ResNet, forward, backward, engine: str,
                 backward_by_module: bool = True) -> list[dict[str, Any]]:
    """One row per module that has parameters or counts of its own. Backward FLOPs go per
    module only from the shape pass: FlopCounterMode's module tracker keeps a module open
    until its input's gradient is complete, so a shortcut conv is also charged its block's
    whole branch (and the block a negative remainder); without the pass, rows leave it
    blank."""
    modules = dict(model.named_modules())
    names = list(modules)
    own_forward = _own_counts(names, forward)
    own_backward = _own_counts(names, backward) if backward_by_module else {}
    rows = []
    for name, module in modules.items():
        leaf = is_leaf(module)
        ops = own_forward.get(name, {})
        if not leaf and not ops:
            continue
        info = getattr(model, "layer_info", {}).get(name)
        params = sum(p.numel() for p in module.parameters(recurse=False))
        trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        conv_linear = _conv_linear_flops(ops) // 2
        elementwise = sum(v for op, v in ops.items() if op in ELEMENTWISE_OPS)
        batch_norm = sum(v for op, v in ops.items() if op in BATCH_NORM_OPS)
        avg_pool = ops.get("aten.mean", 0)
        if engine == "torch":
            fvcore_default = conv_linear + 2 * batch_norm + avg_pool
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
            "params": params,
            "trainable_params": trainable,
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
