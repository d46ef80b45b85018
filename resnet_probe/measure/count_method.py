"""How one count is made, from a module and its inputs: the fastest path that sees all of its
work.

1. The shape pass (``measure.shape_pass``): the forward over a stand-in that carries only a
   shape, for a forward that takes one floating tensor and calls only what the pass knows.
2. Dispatch on meta stand-ins of the module's tensors and of the inputs
   (``measure.counting``): every aten operator seen, nothing allocated.
3. Dispatch on the real tensors, for a forward that reads values (``.item()``, a branch on a
   tensor, lengths that must be sorted): the inputs exactly as given, on copies, so the
   caller's tensors and module stay as they were.

fvcore's engine is the fourth way: ``FlopCountAnalysis`` itself, on the module as it is.
Inputs are taken as given; a count never redraws them.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.attribution import Counts
from resnet_probe.measure.counting import PassCounts, count_pass, meta_tensors
from resnet_probe.measure.shape_pass import count_shapes
from resnet_probe.modes import in_mode

# How a count was made, in the summary's ``count_method``.
SHAPE_PASS = "shape pass"  # the model's forward over shapes: nothing allocated or dispatched
META_DISPATCH = "meta dispatch"  # every aten operator seen, on meta tensors (no storage)
CPU_DISPATCH = "cpu dispatch"  # the same on real tensors, when the forward cannot run on meta
FVCORE = "fvcore"


@dataclass(frozen=True)
class Counted:
    """One forward-and-backward count: per module, nested (each entry includes the modules
    below it, "" is the model; ``measure.attribution``), per aten operator, the operators'
    calls, and how it was made. ``fvcore``: fvcore's default count of the operators it
    counts beyond conv and linear (None for fvcore's engine, whose forward holds it).
    ``backward_failure``: why the backward could not be counted."""

    forward: Counts
    backward: Counts
    calls: Counter
    method: str
    backward_by_module: bool = True
    conv_outputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    note: str | None = None
    called: frozenset[str] | None = None  # every module whose forward ran (None: unknown)
    fvcore: Counts | None = None
    backward_failure: str | None = None
    parameters_read_by: dict[str, str] | None = None  # parameter -> module (None: unknown)

    @property
    def backward_counted(self) -> bool:
        return self.method != FVCORE and self.backward_failure is None


class NeedsRealTensors(Exception):
    """The forward cannot run on meta tensors (a meta model cannot fall back by itself)."""


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


def describe_inputs(args: tuple, kwargs: dict) -> str:
    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            dtype = "" if value.dtype == torch.float32 else f":{str(value.dtype)[6:]}"
            return "x".join(map(str, value.shape)) + dtype
        return type(value).__name__
    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return " ".join(parts)


def device_of(model: nn.Module) -> str:
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
                shapes = count_shapes(model, tuple(args[0].shape), args[0].requires_grad)
            return Counted(shapes.forward, shapes.backward, shapes.calls, SHAPE_PASS,
                           shapes.backward_by_module, shapes.conv_outputs,
                           called=shapes.called, fvcore=shapes.fvcore)
        except Exception:  # noqa: BLE001 - NoFormula, or foreign code meeting the stand-in
            pass
    on_meta = device_of(model) == "meta"
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
        return dispatch_on_cpu(model, args, kwargs, reason)
    return _counted(counts, META_DISPATCH)


def dispatch_on_cpu(model: nn.Module, args: tuple, kwargs: dict, reason: str) -> Counted:
    """The count on real tensors: copies of the inputs, with their values (a forward that
    changes its input in place changes the copy)."""
    counts = count_pass(model, tree_map(_copy, args), tree_map(_copy, kwargs), memory=False)
    return _counted(counts, CPU_DISPATCH,
                    note=f"counted on real tensors at full size: its forward does not run on "
                         f"meta tensors ({reason})")


def _counted(counts: PassCounts, method: str, note: str | None = None) -> Counted:
    if counts.backward_failure:
        failure = (f"backward not counted: autograd cannot run this forward's backward "
                   f"({counts.backward_failure})")
        note = f"{note}; {failure}" if note else failure
    return Counted(counts.forward, counts.backward, counts.calls, method,
                   called=frozenset(counts.called), note=note, fvcore=counts.fvcore,
                   backward_failure=counts.backward_failure,
                   parameters_read_by=counts.parameters_read_by)


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not value.is_meta:
        return torch.empty_like(value, device="meta").requires_grad_(value.requires_grad)
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def count_with_fvcore(model: nn.Module, args: tuple, kwargs: dict) -> Counted:
    """fvcore's FlopCountAnalysis on this very module (on CPU, in eval mode; its modes are
    restored after)."""
    if kwargs:
        raise InvalidRequest("the fvcore engine feeds positional inputs only (fvcore traces "
                             "with TorchScript); use the torch engine for keyword inputs")
    with warnings.catch_warnings(), in_mode(model, training=False):
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore traces with TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, args if len(args) != 1 else args[0])
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
