"""Counting without running: the model's own forward over shapes instead of tensors.

``FlopCounterMode`` runs every operator through Python dispatch, which costs a fixed 30-70 ms
per model however small the net (resnet8's forward takes 1 ms). This pass runs the model's
forward code with a stand-in that carries only a shape. Each torch function the layers call
arrives in ``_Shape.__torch_function__`` (the tensor-like protocol), which computes the output
shape and the operator's count with the very formulas ``FlopCounterMode`` is given here
(torch's ``flop_registry``, and ``formulas`` for the rest and for a conv's backward), under the
aten name ``FlopCounterMode`` would record. Nothing is allocated or dispatched.

It knows the functions a ResNet calls, and a squeeze-and-excitation gate's (mean, sigmoid,
broadcast multiply). Anything else raises ``NoFormula``, and so does any operator that runs on a
real tensor during the pass (work the stand-in never saw); the caller then counts by dispatch
(``measure.counting``), so a count is never silently incomplete. Tests check
that both give identical rows for every zoo model.

Counts are charged by the rule of ``measure.attribution`` (each operator once, to the
innermost module running). The pass charges each operator's backward when the forward
runs, which is right only when the output uses every result; a forward that leaves a
result unused (work autograd would never differentiate) raises ``NoFormula`` too, and
dispatch counts the backward autograd really runs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.utils._python_dispatch import TorchDispatchMode

from resnet_probe.measure.attribution import Counts, nested_counts
from resnet_probe.measure.formulas import (
    ELEMENTWISE_FORMULAS,
    FVCORE_FORMULAS,
    conv_backward,
    torch_formula,
)

aten = torch.ops.aten


class ShapeCounts(NamedTuple):
    """Per module, nested (each entry includes the modules below it, "" is the model):
    forward and backward counts per aten operator; the operators' call counts; each conv's
    output shape; whether backward is attributed to the right modules (FlopCounterMode's
    tracker does not); fvcore's default count of the operators it counts beyond conv and
    linear, nested likewise."""

    forward: Counts
    backward: Counts
    calls: Counter
    conv_outputs: dict[str, tuple[int, ...]]
    backward_by_module: bool = True
    called: frozenset[str] = frozenset()  # every module whose forward ran
    fvcore: Counts = {}


class NoFormula(Exception):
    """The forward called something this pass has no formula for."""


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[-1])


def _window_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1,
                ceil_mode: bool = False) -> int:
    """torch's output size of a sliding window (conv, pooling), ceil_mode included."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window must start inside the input or its left padding
    return out


class _Shape:
    """A stand-in tensor: a shape, and whether a gradient would flow back into it."""

    __slots__ = ("shape", "requires_grad", "readers")

    def __init__(self, shape: tuple[int, ...], requires_grad: bool = False) -> None:
        self.shape = tuple(shape)
        self.requires_grad = requires_grad
        self.readers: list[tuple[str, ...]] = []  # the module stack of each operator reading it
        if requires_grad and _ShapePass.active is not None:
            _ShapePass.active.made.append(self)

    def dim(self) -> int:
        return len(self.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return math.prod(self.shape)

    # Tensor methods that only move data (timm's x.flatten(1), fx twins' markers).
    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> _Shape:
        return _active().consumed(_flatten, self, start_dim, end_dim)

    def view(self, *shape: int) -> _Shape:
        return _active().consumed(_reshape, self, *shape)

    reshape = view

    def view_as(self, other: _Shape) -> _Shape:
        return _active().consumed(_reshape, self, *other.shape)

    def contiguous(self, *args: Any, **kwargs: Any) -> _Shape:
        return self

    def mean(self, dim: Any = None, keepdim: bool = False) -> _Shape:
        return _active().consumed(_mean, self, dim, keepdim)

    def sigmoid(self) -> _Shape:
        return _active().consumed(_sigmoid, self)

    def __mul__(self, other: Any) -> _Shape:
        return _active().multiply(self, other)

    __rmul__ = __mul__

    def __add__(self, other: Any) -> _Shape:
        return _active().elementwise("aten.add", self, other)

    __radd__ = __add__

    def __iadd__(self, other: Any) -> _Shape:
        return _active().elementwise("aten.add_", self, other)

    def __getitem__(self, index: Any) -> _Shape:
        _active().consume(self)
        if not isinstance(index, tuple) or not all(isinstance(i, slice) for i in index):
            raise NoFormula(f"indexing with {index!r}")
        shape = list(self.shape)
        for dim, part in enumerate(index):
            shape[dim] = len(range(*part.indices(shape[dim])))
        return _Shape(tuple(shape), self.requires_grad)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        handler = _HANDLERS.get(func)
        if handler is None:
            raise NoFormula(getattr(func, "__name__", repr(func)))
        run = _active()
        for arg in args:
            if isinstance(arg, _Shape):
                run.consume(arg)
        return handler(run, *args, **(kwargs or {}))


def _active() -> _ShapePass:
    """The pass running now; a stand-in read outside one has escaped it."""
    if _ShapePass.active is None:
        raise NoFormula("a stand-in used outside the pass")
    return _ShapePass.active


class _ShapePass:
    """One pass: the module stack for attribution, and the counts it collects."""

    # The pass running now: the stand-in's operators find it here (one pass at a time, as
    # FlopCounterMode is one mode at a time).
    active: _ShapePass | None = None

    def __init__(self, model: nn.Module) -> None:
        self.names = {id(module): name for name, module in model.named_modules()}
        self.stack: list[str] = []
        # Own counts (measure.attribution): the innermost module running gets each operator.
        self.forward: Counts = defaultdict(lambda: defaultdict(int))
        self.backward: Counts = defaultdict(lambda: defaultdict(int))
        self.fvcore: Counts = defaultdict(lambda: defaultdict(int))
        self.calls: Counter[str] = Counter()
        self.forks: list[_Shape] = []
        self.made: list[_Shape] = []  # every result that wants a gradient, to find unused ones
        self.conv_outputs: dict[str, tuple[int, ...]] = {}

    def record(self, op: str, forward: int, backward: int | None = None,
               fvcore: int = 0) -> None:
        self.calls[op] += 1
        self.forward[self.stack[-1]][op] += forward
        if backward:
            self.backward[self.stack[-1]][_BACKWARD_OP[op]] += backward
        if fvcore:
            self.fvcore[self.stack[-1]][op] += fvcore

    def record_backward(self, op: str, count: int) -> None:
        """Backward work with no forward counterpart (a linear bias's gradient sum)."""
        self.backward[self.stack[-1]][op] += count

    def consume(self, x: _Shape) -> None:
        """A read of ``x``. When k operators read it, autograd sums their gradients in
        backward: k - 1 ``aten.add``s of its size."""
        if not x.requires_grad:
            return
        if len(x.readers) == 1:
            self.forks.append(x)
        x.readers.append(tuple(self.stack))

    def consumed(self, handler: Callable, x: _Shape, *args: Any) -> _Shape:
        self.consume(x)
        return handler(self, x, *args)

    def gradient_sums(self) -> None:
        """The sums go to the innermost module holding every reader (for a block's input:
        the block). FlopCounterMode's module tracker instead leaves a shortcut module open
        until its input's gradient is complete, so it files the whole branch's backward
        under ``downsample`` as well; the totals agree."""
        for x in self.forks:
            shared = x.readers[0]
            for stack in x.readers[1:]:
                depth = 0
                while depth < min(len(shared), len(stack)) and shared[depth] == stack[depth]:
                    depth += 1
                shared = shared[:depth]
            self.backward[shared[-1]]["aten.add"] += (len(x.readers) - 1) * x.numel()

    def check_all_used(self, out: _Shape) -> None:
        """Backward was charged as if every result flows into ``out``; one that does not
        (a result the forward drops) would have no backward, so dispatch must count."""
        unused = next((x for x in self.made if not x.readers and x is not out), None)
        if unused is not None:
            raise NoFormula(f"a result of shape {unused.shape} the output does not use")

    def elementwise(self, op: str, first: Any, second: Any) -> _Shape:
        for operand in (first, second):
            if isinstance(operand, _Shape):
                self.consume(operand)
        other = second.shape if isinstance(second, _Shape) else ()
        if other and other != first.shape:
            raise NoFormula(f"{op} of shapes {first.shape} and {other}")
        self.record(op, _elementwise(op, first.shape, out_shape=first.shape))
        return _Shape(first.shape, first.requires_grad or getattr(second, "requires_grad", False))


    def multiply(self, first: _Shape, second: Any) -> _Shape:
        """``first * second``, broadcast (an SE gate scaling its block's channels). Backward,
        as autograd: each operand that wants a gradient gets ``grad * other`` (an
        ``aten.mul`` of the output's size), summed down to its own shape where it was
        broadcast (an ``aten.sum`` over the output's size)."""
        operands = [x for x in (first, second) if isinstance(x, _Shape)]
        for operand in operands:
            self.consume(operand)
        shapes = [x.shape for x in operands]
        try:
            out = tuple(torch.broadcast_shapes(*shapes))
        except RuntimeError:
            raise NoFormula(f"mul of shapes {shapes}") from None
        size = math.prod(out)
        self.record("aten.mul", _elementwise("aten.mul", out_shape=out))
        for operand in operands:
            if operand.requires_grad:
                self.record_backward("aten.mul", size)
                if operand.shape != out:
                    self.record_backward("aten.sum", size)
        return _Shape(out, any(x.requires_grad for x in operands))


def _elementwise(op: str, *args: Any, out_shape: Any) -> int:
    return ELEMENTWISE_FORMULAS[getattr(aten, op.removeprefix("aten."))](*args,
                                                                         out_shape=out_shape)


# Unwrapped: the wrapper turning tensors into shapes walks a pytree per call, which would be
# most of this pass's time.
_CONV = torch_formula(aten.convolution)
_MM = torch_formula(aten.mm)
_ADDMM = torch_formula(aten.addmm)

_BACKWARD_OP = {"aten.convolution": "aten.convolution_backward", "aten.addmm": "aten.mm",
                "aten.mm": "aten.mm"}


def _conv2d(run: _ShapePass, x: _Shape, weight: torch.Tensor, bias=None, stride=1, padding=0,
            dilation=1, groups=1) -> _Shape:
    if isinstance(padding, str) or len(x.shape) != 4:
        raise NoFormula(f"conv2d with padding={padding!r} on a {len(x.shape)}-d input")
    if x.shape[1] != weight.shape[1] * groups:  # torch would refuse it: let dispatch say why
        raise NoFormula(f"conv2d of {weight.shape[1] * groups} channels fed {x.shape[1]}")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    spatial = tuple(_window_out(size, k, s, p, d) for size, k, s, p, d in
                    zip(x.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True))
    out = (x.shape[0], weight.shape[0], *spatial)
    geometry = (list(stride), list(padding), list(dilation), False, [0, 0], groups)
    weight_shape = tuple(weight.shape)
    forward = _CONV(x.shape, weight_shape, bias, *geometry, out_shape=out)
    backward = conv_backward(out, x.shape, weight_shape, None, *geometry,
                             [x.requires_grad, weight.requires_grad, False],
                             out_shape=(x.shape, weight_shape, None))
    run.record("aten.convolution", forward, backward)
    run.conv_outputs[run.stack[-1]] = out
    return _Shape(out, x.requires_grad or weight.requires_grad)


def _linear(run: _ShapePass, x: _Shape, weight: torch.Tensor, bias=None) -> _Shape:
    if len(x.shape) != 2:
        raise NoFormula(f"linear on a {len(x.shape)}-d input")
    batch, features = x.shape
    if features != weight.shape[1]:
        raise NoFormula(f"linear of {weight.shape[1]} features fed {features}")
    out = (batch, weight.shape[0])
    transposed = (features, weight.shape[0])
    forward = _ADDMM(out, x.shape, transposed) if bias is not None else _MM(x.shape, transposed)
    # Backward: grad_input = grad_out @ W (when the input wants one), grad_W = grad_out.T @ x.
    backward = _MM(out, tuple(weight.shape)) if x.requires_grad else 0
    backward += _MM((out[1], batch), x.shape) if weight.requires_grad else 0
    run.record("aten.addmm" if bias is not None else "aten.mm", forward, backward)
    if bias is not None and bias.requires_grad:  # grad_bias = grad_out.sum(0)
        run.record_backward("aten.sum", math.prod(out))
    return _Shape(out, x.requires_grad or weight.requires_grad)


def _batch_norm(run: _ShapePass, x: _Shape, running_mean, running_var, weight=None, bias=None,
                training=False, momentum=0.1, eps=1e-5) -> _Shape:
    if training:
        raise NoFormula("batch norm in training mode")  # counting is at inference
    op = "aten._native_batch_norm_legit_no_training"
    weight_shape = None if weight is None else tuple(weight.shape)
    run.record(op, _elementwise(op, x.shape, out_shape=x.shape),
               fvcore=FVCORE_FORMULAS[aten._native_batch_norm_legit_no_training](
                   x.shape, weight_shape))
    return _Shape(x.shape, x.requires_grad or (weight is not None and weight.requires_grad))


def _relu(run: _ShapePass, x: _Shape, inplace: bool = False) -> _Shape:
    op = "aten.relu_" if inplace else "aten.relu"
    run.record(op, _elementwise(op, out_shape=x.shape))
    return _Shape(x.shape, x.requires_grad)  # in place too: a new version, read afresh


def _max_pool2d(run: _ShapePass, x: _Shape, kernel_size, stride=None, padding=0, dilation=1,
                ceil_mode=False, return_indices=False) -> _Shape:
    if return_indices:
        raise NoFormula("max_pool2d with return_indices")
    kernel, padding, dilation = _pair(kernel_size), _pair(padding), _pair(dilation)
    stride = _pair(stride) if stride else kernel
    spatial = tuple(_window_out(size, k, s, p, d, ceil_mode) for size, k, s, p, d in
                    zip(x.shape[2:], kernel, stride, padding, dilation, strict=True))
    out = (*x.shape[:2], *spatial)
    op = "aten.max_pool2d_with_indices"
    run.record(op, _elementwise(op, x.shape, list(kernel), out_shape=(out, out)))
    return _Shape(out, x.requires_grad)


def _avg_pool2d(run: _ShapePass, x: _Shape, kernel_size, stride=None, padding=0,
                ceil_mode=False, count_include_pad=True, divisor_override=None) -> _Shape:
    kernel, padding = _pair(kernel_size), _pair(padding)
    stride = _pair(stride) if stride else kernel
    spatial = tuple(_window_out(size, k, s, p, 1, ceil_mode) for size, k, s, p in
                    zip(x.shape[2:], kernel, stride, padding, strict=True))
    out = (*x.shape[:2], *spatial)
    run.record("aten.avg_pool2d", _elementwise("aten.avg_pool2d", x.shape, list(kernel),
                                               out_shape=out))
    return _Shape(out, x.requires_grad)


def _adaptive_avg_pool2d(run: _ShapePass, x: _Shape, output_size) -> _Shape:
    if _pair(output_size) != (1, 1):
        raise NoFormula(f"adaptive_avg_pool2d to {output_size!r}")  # only (1, 1) is a mean
    out = (*x.shape[:2], 1, 1)
    run.record("aten.mean", _elementwise("aten.mean", x.shape, out_shape=out),
               fvcore=FVCORE_FORMULAS[aten.mean](x.shape, out_shape=out))
    _mean_backward(run, x)
    return _Shape(out, x.requires_grad)


def _mean_backward(run: _ShapePass, x: _Shape) -> None:
    """Autograd's mean backward expands the gradient and divides it by the count: one
    ``aten.div`` over the input."""
    if x.requires_grad:
        run.record_backward("aten.div", x.numel())


def _mean(run: _ShapePass, x: _Shape, dim: Any = None, keepdim: bool = False) -> _Shape:
    dims = range(len(x.shape)) if dim is None else [dim] if isinstance(dim, int) else dim
    dims = {d % len(x.shape) for d in dims}
    out = tuple(1 if d in dims else size for d, size in enumerate(x.shape)
                if keepdim or d not in dims)
    run.record("aten.mean", _elementwise("aten.mean", x.shape, out_shape=out),
               fvcore=FVCORE_FORMULAS[aten.mean](x.shape, out_shape=out))
    _mean_backward(run, x)
    return _Shape(out, x.requires_grad)


def _sigmoid(run: _ShapePass, x: _Shape) -> _Shape:
    run.record("aten.sigmoid", _elementwise("aten.sigmoid", out_shape=x.shape))
    return _Shape(x.shape, x.requires_grad)


def _flatten(run: _ShapePass, x: _Shape, start_dim: int = 0, end_dim: int = -1) -> _Shape:
    end = end_dim % len(x.shape)
    shape = (*x.shape[:start_dim], math.prod(x.shape[start_dim:end + 1]), *x.shape[end + 1:])
    return _Shape(shape, x.requires_grad)


def _reshape(run: _ShapePass, x: _Shape, *shape: int) -> _Shape:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    known = math.prod(size for size in shape if size != -1)
    resolved = tuple(x.numel() // known if size == -1 else size for size in shape)
    if math.prod(resolved) != x.numel():
        raise NoFormula(f"reshape of {x.shape} to {shape}")
    return _Shape(resolved, x.requires_grad)


def _pad(run: _ShapePass, x: _Shape, pad: Sequence[int], mode: str = "constant",
         value: float | None = None) -> _Shape:
    shape = list(x.shape)
    for index in range(len(pad) // 2):  # pairs run from the last dimension backwards
        shape[-1 - index] += pad[2 * index] + pad[2 * index + 1]
    return _Shape(tuple(shape), x.requires_grad)


_HANDLERS: dict[Callable, Callable] = {
    F.conv2d: _conv2d, torch.conv2d: _conv2d,
    F.linear: _linear,
    F.batch_norm: _batch_norm,
    F.relu: _relu, torch.relu: _relu,
    torch.relu_: lambda run, x: _relu(run, x, inplace=True),
    F.max_pool2d: _max_pool2d,
    F.avg_pool2d: _avg_pool2d,
    F.adaptive_avg_pool2d: _adaptive_avg_pool2d,
    torch.flatten: _flatten, torch.reshape: _reshape,
    torch.mean: _mean, torch.sigmoid: _sigmoid, F.sigmoid: _sigmoid,
    F.pad: _pad,
}


class _NothingDispatched(TorchDispatchMode):
    """Raises NoFormula when any operator runs on real (or meta) tensors during the pass:
    work the stand-in never saw (a class token expanded, a mask built from ``torch.arange``)
    would otherwise go uncounted, so such a forward is counted by dispatch instead."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        raise NoFormula(f"{func.overloadpacket} ran on a tensor, not on the stand-in")


def count_shapes(model: nn.Module, shape: tuple[int, ...], requires_grad: bool = False
                 ) -> ShapeCounts:
    """The counts ``FlopCounterMode`` would give for ``model(x).sum().backward()`` in eval
    mode, ``x`` of ``shape`` (wanting a gradient itself when ``requires_grad``). Raises
    ``NoFormula`` for a forward that calls anything unknown."""
    run = _ShapePass(model)
    # eval() in one loop: Module.train recurses through a Python call per module, which
    # costs as much as this whole pass on a small net.
    training = [module for module in model.modules() if module.training]
    for module in training:
        module.training = False

    def enter(module: nn.Module, args: Any) -> None:
        run.stack.append(run.names[id(module)])
        called.add(run.stack[-1])

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        run.stack.pop()

    called: set[str] = set()
    x = _Shape(shape, requires_grad)
    _ShapePass.active = run
    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        with torch.no_grad(), _NothingDispatched():
            out = model(x)
        if not isinstance(out, _Shape):
            raise NoFormula(f"a forward returning {type(out).__name__}")
        run.check_all_used(out)
    finally:
        _ShapePass.active = None
        for handle in handles:
            handle.remove()
        for module in training:
            module.training = True
    run.gradient_sums()
    return ShapeCounts(nested_counts(run.forward), nested_counts(run.backward), run.calls,
                       run.conv_outputs, called=frozenset(called),
                       fvcore=nested_counts(run.fvcore))
