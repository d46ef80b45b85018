"""The formulas every counting path shares: convention (b)'s elementwise units per operator,
and which aten operators are conv/linear, elementwise, or data movement.

Conv and linear formulas are torch's own (``torch.utils.flop_counter.flop_registry``).
``FlopCounterMode`` applies all of them during dispatch; ``shape_pass`` applies the same
functions to shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import conv_flop_count, flop_registry

aten = torch.ops.aten

# Operators that move or allocate data but do no arithmetic.
DATA_MOVEMENT = {
    "aten.view", "aten._unsafe_view", "aten.reshape", "aten.t", "aten.transpose",
    "aten.permute", "aten.detach", "aten.empty", "aten.empty_like", "aten.zeros",
    "aten.zeros_like", "aten.ones_like", "aten.expand", "aten.clone", "aten.copy_",
    "aten.slice", "aten.select", "aten.unsqueeze", "aten.squeeze", "aten.constant_pad_nd",
    "aten.as_strided", "aten.as_strided_", "aten.alias", "aten.lift_fresh", "aten._to_copy",
    "aten.new_empty", "aten.new_zeros", "aten.fill_", "aten.zero_", "aten.flatten",
    "aten.contiguous", "aten.cat", "aten.stack", "aten.split", "aten.split_with_sizes",
    "aten.unbind", "aten.reflection_pad2d", "aten.replication_pad2d",
}


def _numel(shape: Any) -> int:
    return math.prod(shape)


def _batch_norm(input_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(input_shape)


def _per_output(*args, out_shape=None, **kwargs) -> int:
    return _numel(out_shape)


def _max_pool(input_shape, kernel_size, *args, out_shape=None, **kwargs) -> int:
    kernel = kernel_size if isinstance(kernel_size, (list, tuple)) else [kernel_size]
    kernel = list(kernel) * (2 if len(kernel) == 1 else 1)
    return _numel(out_shape[0]) * (_numel(kernel) - 1)


def _avg_pool(input_shape, kernel_size, *args, out_shape=None, **kwargs) -> int:
    kernel = list(kernel_size) * (2 if len(kernel_size) == 1 else 1)
    return _numel(out_shape) * _numel(kernel)


def _per_input(input_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(input_shape)


# Gates and activations of the residual family's attention blocks (SE, ECA, selective
# kernels) and of timm's nets: one unit per output element, as ReLU.
_PER_OUTPUT_OPS = (aten.mul, aten.mul_, aten.sigmoid, aten.sigmoid_, aten.silu, aten.silu_,
                   aten.hardsigmoid, aten.hardsigmoid_, aten.hardswish, aten.hardswish_,
                   aten.gelu, aten._softmax)


# Convention (b): elementwise formulas, in one unit per element (see the module docstring).
ELEMENTWISE_FORMULAS: dict[Any, Callable[..., int]] = {
    aten.native_batch_norm: _batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm,
    aten.relu: _per_output,
    aten.relu_: _per_output,
    aten.add: _per_output,
    aten.add_: _per_output,
    aten.max_pool2d_with_indices: _max_pool,
    aten.avg_pool2d: _avg_pool,
    aten.mean: _per_input,
    aten.sum: _per_input,
    **dict.fromkeys(_PER_OUTPUT_OPS, _per_output),
}


def torch_formula(op: Any) -> Callable[..., int]:
    """torch's formula itself, without the wrapper that turns tensors into shapes."""
    formula = flop_registry[op]
    return getattr(formula, "__wrapped__", formula)


_TORCH_CONV_BACKWARD = torch_formula(aten.convolution_backward)  # looked up once: per conv


def conv_backward(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation,
                  transposed, output_padding, groups, output_mask, out_shape=None,
                  **kwargs) -> int:
    """Convention (d) for a conv's backward: torch's formula for the input gradient, and the
    weight gradient at its true size, the forward's multiply-adds (each weight meets each
    output position once). torch's own weight-gradient formula reads the grouped input as
    if it were ungrouped, ``groups`` times the work: 46% of resnext50_32x4d's backward."""
    input_gradient = _TORCH_CONV_BACKWARD(
        grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
        output_padding, groups, [output_mask[0], False, False], out_shape=out_shape)
    weight_gradient = (conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape),
                                       transposed) if output_mask[1] else 0)
    return input_gradient + weight_gradient


# Everything counted beyond torch's registry: the mapping given to FlopCounterMode too.
FORMULAS: dict[Any, Callable[..., int]] = {**ELEMENTWISE_FORMULAS,
                                           aten.convolution_backward: conv_backward}
BATCH_NORM_OPS = {"aten.native_batch_norm", "aten._native_batch_norm_legit_no_training"}
MATMUL_CONV_OPS = {str(op) for op in flop_registry}
ELEMENTWISE_OPS = {str(op) for op in ELEMENTWISE_FORMULAS}
