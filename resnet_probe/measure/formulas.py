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
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten

# Operators that move or allocate data but do no arithmetic.
DATA_MOVEMENT = {
    "aten.view", "aten._unsafe_view", "aten.reshape", "aten.t", "aten.transpose",
    "aten.permute", "aten.detach", "aten.empty", "aten.empty_like", "aten.zeros",
    "aten.zeros_like", "aten.ones_like", "aten.expand", "aten.clone", "aten.copy_",
    "aten.slice", "aten.select", "aten.unsqueeze", "aten.squeeze", "aten.constant_pad_nd",
    "aten.as_strided", "aten.alias", "aten.lift_fresh", "aten._to_copy", "aten.new_empty",
    "aten.new_zeros", "aten.fill_", "aten.zero_", "aten.flatten", "aten.contiguous",
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


def _mean(input_shape, *args, out_shape=None, **kwargs) -> int:
    return _numel(input_shape)


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
    aten.mean: _mean,
}
BATCH_NORM_OPS = {"aten.native_batch_norm", "aten._native_batch_norm_legit_no_training"}
MATMUL_CONV_OPS = {str(op) for op in flop_registry}
ELEMENTWISE_OPS = {str(op) for op in ELEMENTWISE_FORMULAS}
