"""Counting any module in one pass: its forward and the backward of its output's sum, on meta
tensors (shapes without storage) where it can run there.

One ``TorchDispatchMode`` sees every aten operator, and charges each once, by the rule of
``measure.attribution``. A forward operator goes to the innermost module running when it is
dispatched. A backward operator goes to the module whose forward created the autograd node
that runs it: each module's forward post-hook claims the nodes made inside it that no inner
module claimed, and the mode asks autograd which node is executing
(``torch._C._current_autograd_node``), the attribution Holistic Trace Analysis makes with
sequence numbers. So a shortcut's backward is its own, not its block's whole branch, which
``FlopCounterMode``'s module tracker charges it. Only the backward autograd runs is counted:
work whose result the output never uses has none. A backward that fails (a forward that
changed a tensor autograd saved) leaves the forward's count, with the reason.

Alongside, each operator fvcore counts by default gets fvcore's own count for that call
(``formulas.FVCORE_FORMULAS``: a norm with or without affine parameters, with batch or
running statistics), for ``macs_fvcore_default``.

The same pass records the bytes autograd saves for backward (``saved_tensors_hooks``), per
module and in total, each tensor's storage counted once, and the largest single output, for
the memory estimate (``measure.memory``). Attention runs under the math backend, so it
decomposes into the same matmuls on every device.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry

from resnet_probe.measure.attribution import Counts, nested_counts
from resnet_probe.measure.formulas import (
    ATTENTION_FORMULAS,
    FORMULAS,
    FVCORE_FORMULAS,
    torch_formula,
)
from resnet_probe.modes import in_mode

# Every formula takes shapes (torch's registry wraps its own to take tensors).
_FORMULAS = {**{op: torch_formula(op) for op in flop_registry}, **FORMULAS,
             **ATTENTION_FORMULAS}


@dataclass
class PassCounts:
    """What one forward-and-backward pass did: per module, nested (each entry includes the
    modules below it; "" is the model), forward and backward counts per aten operator, the
    forward operators' calls, the bytes saved for backward per module (its own code only)
    and in all, and the largest output of any operator (bytes). ``fvcore``: fvcore's default
    count of the operators it counts beyond conv and linear, nested likewise.
    ``backward_failure``: why the backward could not run (its counts are then empty)."""

    forward: Counts
    backward: Counts
    calls: Counter
    saved_bytes: dict[str, int] = field(default_factory=dict)
    saved_total: int = 0
    largest_output: int = 0
    called: set[str] = field(default_factory=set)  # every module whose forward ran
    fvcore: Counts = field(default_factory=dict)
    backward_failure: str | None = None
    # parameter -> the module running when a forward operator first read it: a parent that
    # calls a child's weights itself (nn.MultiheadAttention's out_proj) shows here
    parameters_read_by: dict[str, str] = field(default_factory=dict)


# Eval-mode batch norm as CPU and CUDA kernels (and FlopCounterMode, and the shape pass) name
# it; meta stand-ins called through functional_call dispatch native_batch_norm instead.
EVAL_BATCH_NORM = "aten._native_batch_norm_legit_no_training"


class _CountingMode(TorchDispatchMode):
    def __init__(self, names: dict[int, str]) -> None:
        super().__init__()
        self.names = names
        self.stack: list[str] = [""]
        self.forward: Counts = defaultdict(lambda: defaultdict(int))  # own counts
        self.backward: Counts = defaultdict(lambda: defaultdict(int))
        self.fvcore: Counts = defaultdict(lambda: defaultdict(int))
        self.calls: Counter[str] = Counter()
        self.node_owner: dict[Any, str] = {}  # autograd node -> module that made it
        self.largest_output = 0
        # Batch norm in eval mode: the meta kernel returns batch statistics that the CPU and
        # CUDA kernels do not compute, and autograd saves them; they are not counted.
        self.not_saved: set[int] = set()
        self.read_by: dict[int, str] = {}  # id of a tensor a forward operator read -> module

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = str(func.overloadpacket)
        if op == "aten.native_batch_norm" and len(args) > 5 and args[5] is False:
            self.not_saved.update(id(t) for t in out[1:])
            op = EVAL_BATCH_NORM  # one name for one operator, whichever kernel runs it
        node = torch._C._current_autograd_node()
        if node is None:  # the forward's operators: what a convention counts or misses
            self.calls[op] += 1
            for leaf in tree_flatten((args, kwargs))[0]:
                if isinstance(leaf, torch.Tensor):
                    self.read_by.setdefault(id(leaf), self.stack[-1])
        # A view or an in-place result aliases memory already held: not a new tensor.
        aliases = any(r.alias_info is not None for r in func._schema.returns)
        for leaf in [] if aliases else tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self.largest_output = max(self.largest_output,
                                          leaf.numel() * leaf.element_size())
        formula = _FORMULAS.get(func.overloadpacket)
        if formula is None:
            return out
        shapes = tree_map(_shape, (args, kwargs))
        out_shape = tree_map(_shape, out)
        count = formula(*shapes[0], **shapes[1], out_shape=out_shape)
        if node is None:  # forward: the innermost module running
            self.forward[self.stack[-1]][op] += count
            fvcore = FVCORE_FORMULAS.get(func.overloadpacket)
            if fvcore is not None:
                self.fvcore[self.stack[-1]][op] += fvcore(*shapes[0], **shapes[1],
                                                          out_shape=out_shape)
        else:
            self.backward[self.node_owner.get(node, "")][op] += count
        return out


def _shape(value: Any) -> Any:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else value


def count_pass(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None,
               backward: bool = True, memory: bool = True,
               tensors: dict[str, torch.Tensor] | None = None,
               training: bool = False) -> PassCounts:
    """Count ``model(*args, **kwargs)`` in eval mode (``training``: train mode, as a training
    step saves its tensors), and with ``backward`` the backward of its outputs' sum (of every
    floating output that wants a gradient). ``tensors`` stand in for the model's parameters
    and buffers (``meta_tensors``). The model is left as it was: its modes, and the
    gradients its parameters held."""
    names = {id(module): name for name, module in model.named_modules()}
    mode = _CountingMode(names)
    saved: dict[str, int] = defaultdict(int)
    seen_storages: set[int] = set()
    stack = mode.stack
    marks: list[int] = []  # each open module's first autograd sequence number
    called: set[str] = set()

    def enter(module: nn.Module, inputs: Any) -> None:
        name = names.get(id(module))
        if name is not None:
            called.add(name)
            marks.append(_sequence_mark())
            if name:
                stack.append(name)

    def leave(module: nn.Module, inputs: Any, output: Any) -> None:
        name = names.get(id(module))
        if name is None:
            return
        _claim(output, name, mode.node_owner, marks.pop() if marks else 0)
        if name and stack and stack[-1] == name:
            stack.pop()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        base = tensor._base if tensor._base is not None else tensor
        if id(base) not in seen_storages and id(base) not in own and \
                id(base) not in mode.not_saved:
            seen_storages.add(id(base))
            saved[stack[-1]] += base.untyped_storage().nbytes()
            _keep.append(base)  # ids stay unique while the pass holds the tensors
        return tensor

    _keep: list[torch.Tensor] = []
    # The model's own parameters and buffers: saving a reference to them costs nothing.
    own = {id(t) for t in (tensors or {}).values()} | {
        id(t) for t in (*model.parameters(), *model.buffers())}
    gradients = [(p, p.grad) for p in model.parameters()]  # the user's, put back after
    backward_failure = None
    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        with in_mode(model, training=training), _math_attention(), mode:
            with _saving(pack if memory else None):
                if tensors is None:
                    outputs = model(*args, **(kwargs or {}))
                else:
                    outputs = torch.func.functional_call(model, tensors, args, kwargs or {},
                                                         tie_weights=True, strict=False)
            _claim(outputs, "", mode.node_owner, 0)
            forward = nested_counts(mode.forward)
            fvcore = nested_counts(mode.fvcore)
            if backward:
                backward_failure = _backward(outputs)
    finally:
        for handle in handles:
            handle.remove()
        for parameter, gradient in gradients:
            parameter.grad = gradient
    parameters = tensors if tensors is not None else dict(model.named_parameters())
    read_by = {name: mode.read_by[id(tensor)] for name, tensor in parameters.items()
               if id(tensor) in mode.read_by}
    return PassCounts(forward, {} if backward_failure else nested_counts(mode.backward),
                      mode.calls, dict(saved), sum(saved.values()), mode.largest_output,
                      called, fvcore, backward_failure, read_by)


def _backward(outputs: Any) -> str | None:
    """Run the backward of the outputs' sum (every floating output that wants a gradient);
    why it failed, or None."""
    wanted = [t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor)
              and t.requires_grad and t.is_floating_point()]
    if not wanted:
        return None
    try:
        total = wanted[0].float().sum()
        for tensor in wanted[1:]:
            total = total + tensor.float().sum()
        total.backward()
    except Exception as error:  # noqa: BLE001 - the user's forward decides what autograd meets
        first = str(error).splitlines()[0] if str(error) else ""
        return f"{type(error).__name__}: {first}"
    return None


def _claim(output: Any, name: str, owner: dict[Any, str], mark: int) -> None:
    """Every autograd node behind ``output`` made since ``mark`` (while the module ran) that
    no inner module claimed is ``name``'s."""
    pending: list[Any] = [t.grad_fn for t in tree_flatten(output)[0]
                          if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    while pending:
        node = pending.pop()
        if node is None or node in owner or _sequence(node) < mark:
            continue
        owner[node] = name
        pending.extend(parent for parent, _ in node.next_functions)


def _sequence(node: Any) -> int:
    try:
        return node._sequence_nr()
    except AttributeError:
        return 0


def _sequence_mark() -> int:
    """The next autograd sequence number (a node is numbered when it is made, per thread)."""
    with torch.enable_grad():
        return _sequence(torch.zeros((), device="meta", requires_grad=True).view(()).grad_fn)


@contextmanager
def _math_attention() -> Iterator[None]:
    """Attention as the math backend runs it: the same matmuls on meta, CPU and CUDA."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # an older torch: whatever backend it picks
        yield
        return
    with sdpa_kernel([SDPBackend.MATH]):
        yield


@contextmanager
def _saving(pack) -> Iterator[None]:
    if pack is None:
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield


# --- a meta stand-in for a built module -------------------------------------------------


def meta_tensors(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Meta stand-ins for a built model's parameters and buffers (shape, dtype, whether a
    gradient is wanted), for ``count_pass(tensors=...)``: counting it without copying its
    weights or computing with them. None when it is on the meta device already."""
    named = [*model.named_parameters(remove_duplicate=False),
             *model.named_buffers(remove_duplicate=False)]
    if all(t.is_meta for _, t in named):
        return None
    stand_ins: dict[str, torch.Tensor] = {}
    for name, tensor in named:
        meta = torch.empty_like(tensor, device="meta")
        stand_ins[name] = meta.requires_grad_(tensor.requires_grad) if \
            tensor.is_floating_point() else meta
    return stand_ins
