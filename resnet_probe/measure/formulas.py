"""The formulas every counting path shares: convention (b)'s elementwise units per operator,
which aten operators are conv/linear (matmul), elementwise, or data movement, and the units
fvcore's default count gives each.

Conv, linear and matmul formulas are torch's own (``torch.utils.flop_counter.flop_registry``),
attention included (the CPU flash kernel's, which torch's registry lacks, are added here from
torch's own SDPA formulas). The counter (``measure.counting``) applies all of them during
dispatch; ``shape_pass`` applies the same functions to shapes.

Convention (b) per operator: batch norm at inference 1 per element (a fused scale-and-shift);
layer and group norm 5 per element (mean, variance, normalise, scale, shift; fvcore's
estimate); activations (ReLU, ReLU6, leaky ReLU, SiLU, GELU, hard-swish, tanh, ...) and gates
1 per output element; adds, multiplies and comparisons 1 per output element; a vector norm 2
per input element (square, accumulate); max-pool k*k-1 comparisons per
output; average pool k*k per output; a mean or adaptive average pool 1 per input element;
softmax 1 per output; bilinear upsampling 4 per output, nearest 1 per output; PReLU 1 per
output, as leaky ReLU. Data movement (views, copies, padding, concatenation, splits, rolls,
gathers by index, masked fills, max-unpooling's scatter by index) costs nothing.

fvcore's default count (``FVCORE_FORMULAS``) follows fvcore's own handles
(fvcore/nn/jit_handles.py): batch norm with running statistics 2 per element with affine
parameters, 1 without; a norm over batch statistics (batch norm in training or without
running statistics, instance norm), layer norm and group norm 5 per element with affine
parameters, 4 without; adaptive average pooling 1 per input element; bilinear upsampling and
grid sampling 4 per output element, nearest 1. fvcore sees ``adaptive_avg_pool2d`` where
dispatch sees the ``mean`` it lowers to, so every ``mean`` is counted as one (fvcore itself
skips a ``mean`` written as such).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import (
    conv_flop_count,
    flop_registry,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

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
    # Rearranging or selecting elements is data movement too: a roll shifts them, an index
    # gathers them, a masked fill writes a constant where a mask says.
    "aten.roll", "aten.index", "aten.index_select", "aten.masked_fill", "aten.masked_fill_",
    "aten.gather", "aten.new_empty_strided", "aten.empty_strided", "aten.slice_scatter",
    "aten.select_scatter", "aten.unfold", "aten.chunk", "aten.repeat", "aten.lift_fresh_copy",
    "aten.new_ones", "aten.ones", "aten.full", "aten.arange", "aten.scalar_tensor",
    "aten.detach_", "aten._reshape_alias", "aten.narrow", "aten.squeeze_", "aten.unsqueeze_",
    "aten.view_as", "aten.t_", "aten.transpose_", "aten.pixel_shuffle", "aten.index_put",
    "aten.index_put_", "aten.embedding",  # an embedding looks rows up: a gather
    "aten.unsafe_split", "aten.unsafe_split_with_sizes", "aten.unsafe_chunk",
    # max-unpooling writes each value where its index says, into zeros: a scatter
    "aten.max_unpool2d", "aten.max_unpool3d",
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


def _layer_norm(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 5 * _numel(input_shape)


def _bilinear(*args, out_shape=None, **kwargs) -> int:
    return 4 * _numel(out_shape)


# Gates and activations of the residual family's attention blocks (SE, ECA, selective
# kernels) and of timm's nets: one unit per output element, as ReLU.
_PER_OUTPUT_OPS = (aten.mul, aten.mul_, aten.sigmoid, aten.sigmoid_, aten.silu, aten.silu_,
                   aten.hardsigmoid, aten.hardsigmoid_, aten.hardswish, aten.hardswish_,
                   aten.gelu, aten.gelu_, aten._softmax, aten._safe_softmax, aten.hardtanh,
                   aten.hardtanh_, aten.leaky_relu, aten.leaky_relu_, aten.elu, aten.elu_,
                   aten.tanh, aten.tanh_, aten.mish, aten.mish_, aten.softplus,
                   aten._log_softmax, aten.sub, aten.sub_, aten.rsub, aten.div, aten.div_,
                   aten.neg, aten.exp, aten.pow, aten.sqrt, aten.rsqrt, aten.clamp,
                   aten.clamp_, aten.clamp_min, aten.clamp_min_, aten.upsample_nearest2d,
                   aten.prelu, aten._prelu_kernel,  # max(0, x) + a * min(0, x), as leaky ReLU
                   # comparisons (a mask built from window ids, a threshold)
                   aten.eq, aten.ne, aten.lt, aten.le, aten.gt, aten.ge)


def _vector_norm(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _numel(input_shape)  # a square and an add per element


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
    aten._adaptive_avg_pool2d: _per_input,
    aten.native_layer_norm: _layer_norm,
    aten.native_group_norm: _layer_norm,
    aten.upsample_bilinear2d: _bilinear,
    aten.grid_sampler_2d: _bilinear,
    aten.linalg_vector_norm: _vector_norm,
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


def _flash_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """The CPU flash-attention kernel: torch's SDPA formula (two batched matmuls)."""
    return sdpa_flop_count(query, key, value)


def _flash_cpu_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# Attention kernels torch's registry has no formula for, counted like its other SDPA kernels.
ATTENTION_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _flash_cpu,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _flash_cpu_backward,
}

# Everything counted beyond torch's registry: the mapping given to FlopCounterMode too.
FORMULAS: dict[Any, Callable[..., int]] = {**ELEMENTWISE_FORMULAS,
                                           aten.convolution_backward: conv_backward}


def _fvcore_norm(input_shape, weight) -> int:
    """A norm over statistics it computes: 5 per element with affine parameters, else 4."""
    return _numel(input_shape) * (5 if weight is not None else 4)


def _fvcore_batch_norm(input_shape, weight=None, bias=None, running_mean=None,
                       running_var=None, training=False, *args, out_shape=None,
                       **kwargs) -> int:
    if training:  # batch statistics (training, no running statistics, instance norm)
        return _fvcore_norm(input_shape, weight)
    return _fvcore_eval_batch_norm(input_shape, weight)


def _fvcore_eval_batch_norm(input_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
    return _numel(input_shape) * (2 if weight is not None else 1)


def _fvcore_layer_norm(input_shape, normalized_shape, weight=None, *args, out_shape=None,
                       **kwargs) -> int:
    return _fvcore_norm(input_shape, weight)


def _fvcore_group_norm(input_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
    return _fvcore_norm(input_shape, weight)


# fvcore's default FlopCountAnalysis beyond conv, linear and matmul (counted as MACs there and
# here): fvcore's count of each call, from the call's own arguments (see the module docstring).
FVCORE_FORMULAS: dict[Any, Callable[..., int]] = {
    aten.native_batch_norm: _fvcore_batch_norm,
    aten._native_batch_norm_legit_no_training: _fvcore_eval_batch_norm,
    aten.native_layer_norm: _fvcore_layer_norm,
    aten.native_group_norm: _fvcore_group_norm,
    aten.mean: _per_input,
    aten._adaptive_avg_pool2d: _per_input,
    aten.upsample_bilinear2d: _bilinear,
    aten.grid_sampler_2d: _bilinear,
    aten.upsample_nearest2d: _per_output,
}
BATCH_NORM_OPS = {"aten.native_batch_norm", "aten._native_batch_norm_legit_no_training"}
MATMUL_CONV_OPS = {str(op) for op in flop_registry} | {str(op) for op in ATTENTION_FORMULAS}
ELEMENTWISE_OPS = {str(op) for op in ELEMENTWISE_FORMULAS}
