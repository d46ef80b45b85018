"""Tracing any model with torch.fx, with the modules that must run their own forward kept whole.

The model is traced twice: once with every module open to find the residual adds, then again
with every module that neither owns nor contains one as a leaf, so such modules run their own
forward at run time. Functional batch norm, dropout and stochastic depth inside them then
follow ``.train()`` and ``.eval()`` instead of being frozen into the graph in the mode the model
was traced in.

timm marks some modules and functions as not traceable (``register_notrace_module``), and
they stay leaves, except a marked module that holds an add (timm's NF blocks, marked for an
in-place multiply that an fx dead-code pass would drop, which the twin's own pass keeps): such
a module is traced through when it traces on its own, so its residual add can be seen.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch.fx as fx
from torch import nn

from resnet_probe.errors import InvalidRequest


class SurgeryError(InvalidRequest):
    """The model cannot be traced, holds no residual addition, or a twin cannot be made."""


class _Tracer(fx.Tracer):
    """fx's tracer with ``open_modules`` the only modules traced through (None: torch's
    default leaves) and timm's untraceable modules and functions kept whole, except those
    named in ``through``."""

    def __init__(self, open_modules: set[str] | None = None,
                 through: frozenset[str] = frozenset()) -> None:
        notrace_modules, notrace_functions = _timm_notrace()
        super().__init__(autowrap_functions=tuple(notrace_functions))
        self.open_modules = open_modules
        self.notrace_modules = tuple(notrace_modules)
        self.through = through

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if self.notrace_modules and isinstance(module, self.notrace_modules) \
                and qualified_name not in self.through:
            return True
        if self.open_modules is not None:
            return qualified_name not in self.open_modules
        return super().is_leaf_module(module, qualified_name)


def _timm_notrace() -> tuple[list[type[nn.Module]], list[Callable]]:
    try:
        from timm.layers import _fx
    except Exception:  # noqa: BLE001 - timm is optional, and may be broken
        return [], []
    return list(_fx.get_notrace_modules()), list(_fx.get_notrace_functions())


def _through_notrace(model: nn.Module) -> frozenset[str]:
    """The modules timm marks as not traceable that hold an add of two tensors and trace on
    their own: traced through, so their residual add can be found."""
    notrace = tuple(_timm_notrace()[0])
    if not notrace:
        return frozenset()
    from resnet_probe.sources.surgery.adds import is_tensor_add

    through = set()
    for name, module in model.named_modules():
        if not name or not isinstance(module, notrace):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = _Tracer().trace(module)
        except Exception:  # noqa: BLE001 - fx raises many types for untraceable code
            continue
        if any(is_tensor_add(node) for node in graph.nodes):
            through.add(name)
    return frozenset(through)


def trace(model: nn.Module, open_modules: set[str] | None = None) -> fx.GraphModule:
    tracer = _Tracer(open_modules, _through_notrace(model))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fx warns about attributes it copies
            graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as error:  # noqa: BLE001 - fx raises many types for untraceable code
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SurgeryError(f"torch.fx cannot trace {type(model).__name__} ({first}); a plain "
                           f"twin and foreign block boundaries need a traceable forward "
                           f"(no data-dependent Python control flow)") from None


def trace_with_blocks(model: nn.Module) -> fx.GraphModule:
    """The model traced with every module that owns no residual add (or a join that looks
    like one), and contains none, as a leaf (see the module docstring); the plain trace when
    there are no adds."""
    from resnet_probe.sources.surgery.adds import residual_adds

    full = trace(model)
    adds, kept = residual_adds(full)
    # The owners of joins the twin cannot take apart are opened too, so that they are seen.
    owners = {add.block for add in adds if add.block} | {k.block for k in kept
                                                         if k.residual and k.block}
    if not owners:
        return full
    open_modules = {""} | {prefix for owner in owners for prefix in _prefixes(owner)}
    return trace(model, open_modules)


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traced(model: nn.Module) -> fx.GraphModule:
    """``model`` traced once with its blocks open (kept while the model lives): a
    GraphModule sharing its modules."""
    if isinstance(model, fx.GraphModule):
        return model
    if model not in _TRACES:
        _TRACES[model] = trace_with_blocks(model)
    return _TRACES[model]
