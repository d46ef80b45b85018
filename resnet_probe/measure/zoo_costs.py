"""A zoo net's count: the columns its spec gives (family, design, widths, stride placement)
beside the totals, and ``macs_v1``, its MACs with the paper's v1 stride placement.

Zoo nets are built on the meta device and counted by the shape pass (tests compare it with
``FlopCounterMode`` on every zoo net); a forward the pass cannot follow is dispatched.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from resnet_probe.measure.cost_result import (
    CostResult,
    add_memory,
    summary_totals,
    uncounted_calls,
)
from resnet_probe.measure.cost_rows import conv_linear_flops, module_rows, operator_rows
from resnet_probe.measure.count_method import (
    FVCORE,
    Counted,
    count_inputs,
    count_with_fvcore,
    device_of,
)
from resnet_probe.zoo import ResNet, ResNetSpec, build_model, build_on_meta
from resnet_probe.zoo.spec import StridePlacement


def count_model_costs(
    model: ResNet,
    input_size: int | None = None,
    batch_size: int = 1,
    name: str | None = None,
    engine: str = "torch",
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
    if engine == "torch":
        counted = count_forward_backward(model, shape)
        v1_macs = _v1_macs(model, shape, counted)
    else:
        counted = count_with_fvcore(build_model(source if source is not None else spec),
                                    (torch.zeros(shape),), {})
        v1_macs = _v1_macs(model, shape, None)
    seconds = time.perf_counter() - started

    modules = module_rows(model, counted, engine)
    totals = summary_totals(modules, counted)
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
        "count_method": counted.method, "count_seconds": seconds,
    }
    for row in modules:
        row["model"] = label
    result = CostResult(summary=summary, modules=modules, operators=operator_rows(label, counted),
                        uncounted=uncounted_calls(counted.calls))
    if memory:
        add_memory(result, model, (torch.empty(shape, device=device_of(model)),), {},
                   real_model=lambda: build_model(spec))
    return result


def count_forward_backward(model: nn.Module, shape: tuple[int, ...]) -> Counted:
    """Forward and backward counts per module, and operator calls, for a zoo net: by the
    shape pass (no dispatch, exact: tests compare it with FlopCounterMode on every zoo
    model), or by dispatch when its forward calls something the pass cannot count."""
    return count_inputs(model, (torch.empty(shape, device=device_of(model)),), {})


def _v1_macs(model: ResNet, shape: tuple[int, ...], counts: Counted | None) -> int | None:
    """MACs with the paper's v1 stride placement. v1 strides a bottleneck's 1x1 conv1
    instead of its 3x3 conv2: conv2's output size is unchanged, and conv1 produces that size
    instead of its input's, so only conv1's MACs shrink, by the ratio of the two sizes. The
    arithmetic uses the conv output shapes the count recorded; without them (an engine that
    records none) the v1 net is built and counted."""
    spec = model.spec
    if spec.stride_placement is StridePlacement.V1 or spec.block.value == "basic":
        return None  # identical network: basic blocks have one place for the stride
    if not counts or counts.method == FVCORE or not counts.conv_outputs:
        v1 = build_on_meta(spec.replace(stride_placement=StridePlacement.V1))
        return conv_linear_flops(count_forward_backward(v1, shape).forward[""]) // 2
    macs = conv_linear_flops(counts.forward[""]) // 2
    for name, block in model.blocks():
        if block.conv2.stride == (1, 1):
            continue
        conv1_size = math.prod(counts.conv_outputs[f"{name}.conv1"][2:])
        conv2_size = math.prod(counts.conv_outputs[f"{name}.conv2"][2:])
        conv1_macs = counts.forward[f"{name}.conv1"]["aten.convolution"] // 2
        macs -= conv1_macs // conv1_size * (conv1_size - conv2_size)
    return macs
