"""Residual structure of any traceable network, and its plain twin by graph surgery (torch.fx).

**A residual addition** (a block shortcut) is an add of two tensors (``+``, ``+=``,
``torch.add``, ``Tensor.add``/``add_``, a scaled add such as ``out * alpha + shortcut``, or
``torch.add(a, b, alpha=)``) where one operand, the shortcut, is the *stream* of the module that
owns the add (that module's input, or the output of an earlier residual add in it, as in a
transformer block's second residual), either itself or through a projection (nodes inside the
module), and the other operand, the branch, reaches the same stream through more weighted
operations (a conv, linear or attention layer, or a function applied to such a layer's
weights), at least one. In the root module's own code the stream is the operands' nearest
shared ancestor. Other adds are kept and named in ``kept_adds`` with the reason: Res2Net's adds
between splits, HRNet's fuse adds between resolutions, a bias added to a branch.

**Tracing.** The model is traced twice: once to find the adds, then again with every module
that neither owns nor contains one as a leaf, so such modules run their own forward at run time.
Functional batch norm, dropout and stochastic depth inside them then follow ``.train()`` and
``.eval()`` instead of being frozen into the graph in the mode the model was traced in. timm's
own untraceable modules and functions are leaves too.

**The plain twin** keeps each branch: the add is replaced by its branch operand; an in-place
add's later readers of the tensor it mutated read the branch; ops that mutate a live tensor in
place keep their place; everything left computing only for removed shortcuts (projections, and
the asserts on them) is removed from the graph and the module tree. A twin whose graph fails
``graph.lint()`` or a forward on the example input is refused with the reason.

**Blocks and stages** of a foreign model: a block is the module that owns a residual addition,
a new stage starts where a block's output size changes, modules between two blocks belong to
the next block's stage (ConvNeXt's downsample layers), and depth counts weighted layers in
execution order.
"""

from __future__ import annotations

import copy
import inspect
import operator
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from resnet_probe.errors import InvalidRequest
from resnet_probe.modes import in_mode
from resnet_probe.zoo.resnet import HEAD_STAGE, STEM_STAGE, LayerInfo, Role

ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_"}
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
INPLACE_FUNCTIONS = {torch.relu_, operator.iadd, operator.imul, operator.isub}
ASSERTS = {torch._assert}


class SurgeryError(InvalidRequest):
    """The model cannot be traced, holds no residual addition, or a twin cannot be made."""


class DeadTwinWarning(UserWarning):
    """A plain twin whose output does not depend on its input: its branches start at zero."""


@dataclass(frozen=True)
class ResidualAdd:
    node: str  # the add's fx node name
    block: str  # the module owning the add ("" when it is the root's own code)
    branch: str  # fx node names of the two operands
    shortcut: str
    shortcut_modules: tuple[str, ...]  # modules on the shortcut (projection, zero-pad)
    identity: bool  # the shortcut is the stream itself
    stream: str  # the node the shortcut starts from


@dataclass(frozen=True)
class KeptAdd:
    node: str
    block: str
    reason: str


# --- tracing ------------------------------------------------------------------------------


class _Tracer(fx.Tracer):
    """fx's tracer with ``open`` the only modules traced through (None: torch's default
    leaves) and timm's untraceable modules and functions kept whole."""

    def __init__(self, open_modules: set[str] | None = None) -> None:
        notrace_modules, notrace_functions = _timm_notrace()
        super().__init__(autowrap_functions=tuple(notrace_functions))
        self.open_modules = open_modules
        self.notrace_modules = tuple(notrace_modules)

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if self.notrace_modules and isinstance(module, self.notrace_modules):
            return True
        if self.open_modules is not None:
            return qualified_name not in self.open_modules
        return super().is_leaf_module(module, qualified_name)


def _timm_notrace() -> tuple[list[type], list[Callable]]:
    try:
        from timm.layers import _fx
    except Exception:  # noqa: BLE001 - timm is optional, and may be broken
        return [], []
    return list(_fx.get_notrace_modules()), list(_fx.get_notrace_functions())


def trace(model: nn.Module, open_modules: set[str] | None = None) -> fx.GraphModule:
    tracer = _Tracer(open_modules)
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
    """The model traced with every module that owns no residual add, and contains none, as
    a leaf (see the module docstring); the plain trace when there are no adds."""
    full = trace(model)
    owners = {add.block for add in residual_adds(full)[0] if add.block}
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


# --- finding the residual adds ------------------------------------------------------------


def residual_adds(graph_module: fx.GraphModule) -> tuple[list[ResidualAdd], list[KeptAdd]]:
    """The block shortcuts, and the other adds with why they are not one."""
    modules = dict(graph_module.named_modules())
    parameters = dict(graph_module.named_parameters())
    nodes = list(graph_module.graph.nodes)
    ancestors: dict[fx.Node, set[fx.Node]] = {}
    for node in nodes:
        found: set[fx.Node] = set()
        for parent in node.all_input_nodes:
            found |= ancestors[parent] | {parent}
        ancestors[node] = found
    owners = {node: _owner(node) for node in nodes}
    streams: dict[str, set[fx.Node]] = {}
    adds, kept = [], []
    for node in nodes:
        if not _is_add(node):
            continue
        operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
        owner = owners[node]
        if len(operands) != 2:
            kept.append(KeptAdd(node.name, owner, "adds a constant, not a tensor"))
            continue
        stream = streams.setdefault(owner, _module_inputs(owner, nodes, owners))
        found = _shortcut_of(node, operands, owner, stream, ancestors, owners, modules,
                             parameters)
        if isinstance(found, str):
            kept.append(KeptAdd(node.name, owner, found))
            continue
        adds.append(found)
        stream.add(node)  # a later add in this module may take this one as its stream
    return adds, kept


def _shortcut_of(node, operands, owner, stream, ancestors, owners, modules, parameters
                 ) -> ResidualAdd | str:
    a, b = operands
    if owner == "":  # the root's own code: the operands' nearest shared ancestor
        common = (ancestors[a] | {a}) & (ancestors[b] | {b})
        candidates = {max(common, key=lambda n: len(ancestors[n]))} if common else set()
    else:
        candidates = stream
    best = None
    shared_weights = False
    for shortcut, branch in ((a, b), (b, a)):
        for start in candidates:
            if not (start is shortcut or start in ancestors[shortcut]):
                continue
            if start is not branch and start not in ancestors[branch]:
                continue
            between = {o: (ancestors[o] | {o}) - ancestors[start] - {start}
                       for o in (shortcut, branch)}
            # What both operands compute from the stream (a pre-activation block's shared
            # norm) is neither path's; it must hold no weighted layer, or the "shortcut"
            # starts inside the branch (Res2Net's adds between splits).
            shared = between[shortcut] & between[branch]
            if _weighted(shared, modules, parameters):
                shared_weights = True
                continue
            fork = max(shared, key=lambda n: len(ancestors[n])) if shared else start
            paths = {o: between[o] - shared for o in (shortcut, branch)}
            if owner and not all(_inside(owners[n], owner) for n in paths[shortcut]):
                continue  # the shortcut must stay inside the block
            weights = {o: _weighted(paths[o], modules, parameters) for o in (a, b)}
            if weights[branch] < 1 or weights[branch] <= weights[shortcut]:
                continue
            key = (weights[shortcut], len(paths[shortcut]))
            if best is None or key < best[0]:
                best = (key, shortcut, branch, fork, paths[shortcut])
    if best is None:
        if not candidates:
            return "its operands share no input"
        if shared_weights:
            return ("both operands pass through the same weighted layer after the module's "
                    "stream: an add inside the branch, not a shortcut")
        return ("neither operand is the module's stream (its input or an earlier residual "
                "sum) with the other reaching it through more weighted layers")
    _, shortcut, branch, start, on_shortcut = best
    return ResidualAdd(node.name, owner, branch.name, shortcut.name,
                       tuple(sorted(n.target for n in on_shortcut if n.op == "call_module")),
                       identity=shortcut is start, stream=start.name)


def _module_inputs(owner: str, nodes: list[fx.Node], owners: dict[fx.Node, str]
                   ) -> set[fx.Node]:
    """The nodes a module's code reads from outside it (the root: its placeholders)."""
    if owner == "":
        return {n for n in nodes if n.op == "placeholder"}
    inside = [n for n in nodes if _inside(owners[n], owner)]
    return {parent for n in inside for parent in n.all_input_nodes
            if not _inside(owners[parent], owner) and parent.op != "get_attr"}


def _inside(path: str, owner: str) -> bool:
    return owner == "" or path == owner or path.startswith(f"{owner}.")


def _owner(node: fx.Node) -> str:
    """The innermost module whose code made ``node`` (fx's nn_module_stack); a leaf module's
    own call is inside its parent."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    value = list(stack.values())[-1]
    path = str(value[0] if isinstance(value, tuple) else value)
    if node.op == "call_module" and path == node.target:
        path = path.rpartition(".")[0]
    return path


def _weighted(between: Iterable[fx.Node], modules, parameters) -> int:
    """Weighted operations among ``between``: calls of modules holding a weight matrix (a
    leaf may hold several layers: they count as one), and functions applied to one."""
    count = 0
    for n in between:
        if n.op == "call_module":
            module = modules[n.target]
            count += any(p.dim() >= 2 for p in module.parameters())
        elif n.op in ("call_function", "call_method"):
            count += any(a.op == "get_attr" and isinstance(parameters.get(a.target),
                                                           torch.Tensor)
                         and parameters[a.target].dim() >= 2
                         for a in n.all_input_nodes)
    return count


def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in ADD_FUNCTIONS
    return node.op == "call_method" and node.target in ADD_METHODS


def _mutated(node: fx.Node) -> fx.Node | None:
    """The tensor an in-place op writes into, or None for an op that makes a new one."""
    if "out" in node.kwargs and isinstance(node.kwargs["out"], fx.Node):
        return node.kwargs["out"]
    in_place = (node.op == "call_method" and str(node.target).endswith("_")) or (
        node.op == "call_function" and (node.target in INPLACE_FUNCTIONS
                                        or node.kwargs.get("inplace") is True))
    first = node.args[0] if node.args else None
    return first if in_place and isinstance(first, fx.Node) else None


def has_residual_adds(model: nn.Module) -> bool:
    return bool(residual_adds(traced(model))[0])


# --- the plain twin ---------------------------------------------------------------------


def plain_twin(model: nn.Module, example: torch.Tensor | None = None,
               reinit: bool = False) -> fx.GraphModule:
    """``model`` without its shortcuts (see the module docstring). The twin shares no
    parameters with ``model`` (it is traced from a copy) and carries the original's block
    structure in ``layer_info``. With ``reinit``, branches that start at zero get a unit
    init first (``unit_branches``); a twin whose output does not depend on its input
    otherwise warns (DeadTwinWarning)."""
    source = copy.deepcopy(model)
    if reinit:
        unit_branches(source)
    with in_mode(source, training=False):  # Python branches on self.training: inference's
        graph_module = trace_with_blocks(source)
    adds, kept = residual_adds(graph_module)
    if not adds:
        found = (f"; the {len(kept)} adds it has are not shortcuts: "
                 f"{_kept_words(kept)}" if kept else "")
        raise SurgeryError(f"{type(model).__name__} has no residual addition (no add of a "
                           f"block's stream, or its projection, to a branch with a weighted "
                           f"layer){found}")
    structure = None
    if example is not None:
        structure = discover_structure(source, example, graph_module, adds)
    nodes = {node.name: node for node in graph_module.graph.nodes}
    order = {node: index for index, node in enumerate(graph_module.graph.nodes)}
    for add in adds:
        node = nodes[add.node]
        branch = _scaled_branch(graph_module, node, nodes[add.branch])
        mutated = _mutated(node)
        node.replace_all_uses_with(branch)
        if mutated is not None and mutated is not branch:
            for user in list(mutated.users):  # readers of the mutated tensor after the add
                if user is not node and order.get(user, -1) > order[node]:
                    user.replace_input_with(mutated, branch)
        graph_module.graph.erase_node(node)
    _remove_dead_code(graph_module.graph)
    graph_module.delete_all_unused_submodules()
    blocks = list(dict.fromkeys(add.block for add in adds))
    # An identity block's stream survives (the branch reads it): the lesion study replaces
    # such a block by the identity. A projection block has no such input.
    graph_module.block_inputs = {add.block: add.shortcut if add.identity else None
                                 for add in adds}
    graph_module.block_outputs = _mark_block_outputs(graph_module, blocks)
    _follow_the_mode(graph_module.graph)
    graph_module.recompile()
    graph_module.residual_blocks = blocks  # what the twin's original had
    graph_module.kept_adds = kept
    if structure is not None:
        kept_modules = dict(graph_module.named_modules())
        graph_module.layer_info = {name: info for name, info in structure.items()
                                   if name in kept_modules}
        for block in blocks:
            deepest = max((i.depth for k, i in structure.items()
                           if k.startswith(f"{block}.") and i.depth is not None), default=None)
            graph_module.layer_info[f"{block}.{BLOCK_OUTPUT}"] = LayerInfo(
                structure[block].stage, Role.MAIN, structure[block].block, block, deepest)
    _check_twin(graph_module, model, example)
    return graph_module


def _follow_the_mode(graph: fx.Graph) -> None:
    """A traced call of a function that takes ``training`` (F.dropout, F.batch_norm,
    timm's drop_path, torchvision's stochastic_depth) got the flag's value at trace time;
    read the twin's own ``self.training`` at run time instead, so ``.train()`` and
    ``.eval()`` act on it as on the original."""
    mode = None
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        try:
            parameters = list(inspect.signature(node.target).parameters)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        if "training" not in parameters:
            continue
        if mode is None:
            first = next(n for n in graph.nodes if n.op != "placeholder")
            with graph.inserting_before(first), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # fx: "training" is not a parameter or buffer
                mode = graph.get_attr("training")
        position = parameters.index("training")
        if position < len(node.args):
            node.args = (*node.args[:position], mode, *node.args[position + 1:])
        else:
            node.kwargs = {**node.kwargs, "training": mode}


def _kept_words(kept: list[KeptAdd]) -> str:
    shown = "; ".join(f"{k.node} in {k.block or 'the root'} ({k.reason})" for k in kept[:3])
    return shown + (f"; and {len(kept) - 3} more" if len(kept) > 3 else "")


def _scaled_branch(graph_module: fx.GraphModule, add: fx.Node, branch: fx.Node) -> fx.Node:
    """The branch as the add used it: ``torch.add(a, b, alpha=s)`` scales its second
    operand."""
    alpha = add.kwargs.get("alpha")
    if alpha is None or alpha == 1 or add.args[1] is not branch:
        return branch
    with graph_module.graph.inserting_before(add):
        return graph_module.graph.call_function(operator.mul, (branch, alpha))


def _remove_dead_code(graph: fx.Graph) -> None:
    """Remove what no output needs, keeping an in-place op whose target stays live, and an
    assert only where its inputs are kept for another reason (it keeps nothing alive)."""
    live: set[fx.Node] = set()
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.nodes):
            if node in live or node.target in ASSERTS:
                continue
            target = _mutated(node)
            keep = (node.op in ("placeholder", "output") or any(u in live for u in node.users)
                    or (target is not None and target in live)
                    or (target is None and node.is_impure() and node.op != "call_module"))
            if keep:
                live.add(node)
                changed = True
    for node in reversed(graph.nodes):
        if node in live:
            continue
        if node.target in ASSERTS and all(i in live for i in node.all_input_nodes):
            continue
        if not node.users:
            graph.erase_node(node)


def _check_twin(twin: fx.GraphModule, model: nn.Module, example: torch.Tensor | None) -> None:
    """Refuse a twin whose graph is invalid or whose forward fails, with the reason; warn
    when its output does not depend on its input."""
    try:
        twin.graph.lint()
    except Exception as error:  # noqa: BLE001 - lint raises plain errors
        raise SurgeryError(f"the plain twin of {type(model).__name__} would be an invalid "
                           f"graph ({str(error).splitlines()[0]}): removing its shortcuts "
                           f"breaks the computation, so no twin is made") from None
    if example is None:
        return
    if example.is_meta:  # shapes only: the forward is checked, a dead twin cannot be seen
        probes = torch.empty((2, *example.shape[1:]), dtype=example.dtype, device="meta")
    else:
        probes = torch.stack([torch.randn(example.shape[1:], generator=torch.Generator(
            ).manual_seed(seed)) for seed in (0, 1)]).to(example.dtype)
    try:
        with in_mode(twin, training=False), torch.no_grad():
            outputs = twin(probes)
    except Exception as error:  # noqa: BLE001 - the model's own code can raise anything
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SurgeryError(f"the plain twin of {type(model).__name__} fails a forward once its "
                           f"shortcuts are removed ({first}); no twin is made") from None
    if isinstance(outputs, torch.Tensor) and not outputs.is_meta and outputs.shape[0] == 2 \
            and torch.allclose(
            outputs[0], outputs[1], rtol=0, atol=1e-12 * float(outputs.abs().max() + 1)):
        warnings.warn(DeadTwinWarning(
            f"the plain twin of {type(model).__name__} gives the same output for different "
            f"inputs: its branches start at zero (a zero-initialised last BN or a tiny layer "
            f"scale), which only the shortcuts made harmless. Gradients, timings and training "
            f"of this twin compare nothing; use plain[reinit]:MODEL for a unit init of those "
            f"layers"), stacklevel=3)


LAYER_SCALE_BELOW = 1e-5  # a per-channel scale this small starts a branch at (nearly) zero


def unit_branches(model: nn.Module) -> list[str]:
    """Give branches that start at zero a unit start, keeping the architecture: every
    normalisation weight that is zero everywhere, and every per-channel scale parameter whose
    entries are all at most LAYER_SCALE_BELOW in magnitude, is set to 1 (the init the zoo's
    plain twins have). Returns what was changed."""
    changed = []
    with torch.no_grad():
        for name, module in model.named_modules():
            norm = isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm,
                                       nn.LayerNorm)) or "norm" in type(module).__name__.lower()
            weight = getattr(module, "weight", None)
            if norm and isinstance(weight, torch.Tensor) and weight.numel() \
                    and not weight.detach().any():
                weight.fill_(1.0)
                changed.append(f"{name}.weight")
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1 and parameter.numel() and name not in changed and \
                    float(parameter.detach().abs().max()) <= LAYER_SCALE_BELOW and \
                    any(word in name for word in ("gamma", "scale", "ls", "alpha")):
                parameter.fill_(1.0)
                changed.append(name)
    return changed


BLOCK_OUTPUT = "block_output"


class BlockOutput(nn.Module):
    """Marks a block's output in a traced graph. A view, not the input itself: a module that
    returns its input unchanged confuses torch's backward module tracking (every later
    backward op would be attributed to it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)


def _mark_block_outputs(graph_module: fx.GraphModule, blocks: list[str]
                        ) -> dict[str, nn.Module]:
    """A traced graph runs no block module's forward, so hooks on blocks never fire: put a
    BlockOutput named BLOCK.block_output after each block's last node, for the measurements
    that watch block outputs."""
    last: dict[str, fx.Node] = {}
    for node in graph_module.graph.nodes:
        for value in (node.meta.get("nn_module_stack") or {}).values():
            path = value[0] if isinstance(value, tuple) else value
            if path in blocks:
                last[path] = node
    markers = {}
    for block, node in last.items():
        if not block:
            continue  # the root's own adds: its output is the model's
        target = f"{block}.{BLOCK_OUTPUT}"
        graph_module.add_submodule(target, BlockOutput())
        with graph_module.graph.inserting_after(node):
            marker = graph_module.graph.call_module(target, (node,))
        node.replace_all_uses_with(marker, delete_user_cb=lambda user, m=marker: user is not m)
        markers[block] = graph_module.get_submodule(target)
    return markers


# --- lesions on the graph ---------------------------------------------------------------


def deletable_blocks(model: nn.Module) -> dict[str, tuple[bool, str | None]]:
    """Per block of a foreign model or plain twin: (downsampling, why it cannot be deleted)."""
    if getattr(model, "block_outputs", None):  # a plain twin: identity blocks only
        return {block: (source is None, None if source is not None else
                        "changes shape and has no shortcut to keep, so no identity can "
                        "replace it")
                for block, source in model.block_inputs.items()}
    return {add.block: (not add.identity, None) for add in residual_adds(traced(model))[0]}


def lesioned_graph(model: nn.Module, blocks: list[str]) -> fx.GraphModule:
    """A graph of ``model`` with ``blocks`` deleted, sharing its parameters: each residual
    add becomes its shortcut operand (the block's branch is gone, its projection kept); in a
    plain twin an identity-shaped block's output marker reads the block's input instead."""
    source = traced(model)
    graph = copy.deepcopy(source.graph)
    nodes = {node.name: node for node in graph.nodes}
    if getattr(model, "block_outputs", None):
        for block in blocks:
            start = model.block_inputs.get(block)
            if start is None:
                raise ValueError(f"{block}: {deletable_blocks(model)[block][1]}")
            marker = next(n for n in graph.nodes if n.op == "call_module"
                          and n.target == f"{block}.{BLOCK_OUTPUT}")
            marker.args = (nodes[start],)
    else:
        adds = {add.block: add for add in residual_adds(source)[0]}
        for block in blocks:
            node = nodes[adds[block].node]
            node.replace_all_uses_with(nodes[adds[block].shortcut])
            graph.erase_node(node)
    lesioned = fx.GraphModule(source, graph)
    _remove_dead_code(lesioned.graph)  # the deleted branches
    lesioned.recompile()
    return lesioned


# --- structure --------------------------------------------------------------------------


def has_shortcuts(model: nn.Module, layer_info: dict | None = None) -> bool:
    """Whether the model adds shortcuts: the zoo's spec says; a foreign model has residual
    blocks in its discovered structure (``layer_info``, else its own), and a plain twin
    records the ones it dropped."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.shortcut
    info = layer_info if layer_info is not None else getattr(model, "layer_info", {}) or {}
    return (not hasattr(model, "residual_blocks")
            and any(i.role is Role.BLOCK for i in info.values()))


def block_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The module whose output is each block's output: the zoo's blocks, a plain twin's
    markers, or the owners of the residual adds found in a foreign model's ``layer_info``."""
    from resnet_probe.zoo import ResNet

    if isinstance(model, ResNet):
        return dict(model.blocks())
    if getattr(model, "block_outputs", None):
        return dict(model.block_outputs)
    info = getattr(model, "layer_info", {}) or {}
    return {name: model.get_submodule(name) for name, i in info.items()
            if i.role is Role.BLOCK and name}


def discover_structure(model: nn.Module, example: torch.Tensor,
                       graph_module: fx.GraphModule | None = None,
                       adds: list[ResidualAdd] | None = None) -> dict[str, LayerInfo]:
    """LayerInfo for every module: blocks are the residual adds' owners, stages change where
    a block's output size does, modules between blocks join the next block's stage, and
    depth counts weighted layers in execution order."""
    graph_module = graph_module or trace_with_blocks(model)
    adds = residual_adds(graph_module)[0] if adds is None else adds
    blocks = [b for b in dict.fromkeys(add.block for add in adds) if b]
    if not blocks:
        raise SurgeryError(f"{type(model).__name__} has no residual block (an add of a "
                           f"module's stream to a branch with a weighted layer), so it has no "
                           f"blocks to find")
    shortcut_modules = {name for add in adds for name in add.shortcut_modules}
    sizes = _block_output_sizes(graph_module, example, adds)
    stage_of: dict[str, str] = {}
    index: dict[str, int] = {}
    stage, previous = 0, None
    for block in blocks:  # a new stage wherever the output size changes
        if sizes.get(block) != previous:
            stage, previous = stage + 1, sizes.get(block)
        stage_of[block] = f"stage{stage}"
        index[block] = sum(1 for b in stage_of if stage_of[b] == stage_of[block]) - 1
    order = [n.target for n in graph_module.graph.nodes if n.op == "call_module"]
    owner_of = {path: next((b for b in blocks if path == b or path.startswith(f"{b}.")), None)
                for path in order}
    next_block: dict[str, str | None] = {}
    upcoming = None
    for path in reversed(order):  # the block that runs after each module
        if owner_of[path] is not None:
            upcoming = owner_of[path]
        next_block[path] = upcoming
    info: dict[str, LayerInfo] = {"": LayerInfo(stage="model", role=Role.MODEL)}
    depth, seen_block = 0, False
    for path in order:
        module = graph_module.get_submodule(path)
        weighted = sum(isinstance(m, WEIGHTED) for m in module.modules())
        owner = owner_of[path]
        if path not in shortcut_modules:
            depth += weighted
        if owner is None:
            following = next_block[path]
            if not seen_block:
                where = LayerInfo(STEM_STAGE, Role.STEM, depth=max(depth, 1))
            elif following is not None:  # between two blocks: a transition of the next stage
                where = LayerInfo(stage_of[following], Role.TRANSITION, depth=depth)
            else:
                where = LayerInfo(HEAD_STAGE, Role.HEAD, depth=max(depth, 1))
            _describe(info, module, path, where)
            continue
        seen_block = True
        role = Role.SHORTCUT if path in shortcut_modules else Role.MAIN
        _describe(info, module, path, LayerInfo(stage_of[owner], role, index[owner], owner,
                                                depth))
    for block in blocks:
        info[block] = LayerInfo(stage_of[block], Role.BLOCK, index[block], block)
    return info


def _describe(info: dict[str, LayerInfo], module: nn.Module, path: str, where: LayerInfo
              ) -> None:
    """A leaf call stands for its whole subtree: every module in it gets its place. A module
    called more than once (a shared ReLU) takes its last call's place, as the zoo records."""
    for name, _ in module.named_modules(prefix=path):
        info[name] = where


def _block_output_sizes(graph_module: fx.GraphModule, example: torch.Tensor,
                        adds: list[ResidualAdd]) -> dict[str, tuple]:
    """Each block's output size (after its residual add), from a shape pass in eval mode
    without autograd (BN's running statistics stay as they are)."""
    with in_mode(graph_module, training=False), torch.no_grad():
        ShapeProp(graph_module).propagate(example)
    nodes = {node.name: node for node in graph_module.graph.nodes}
    sizes: dict[str, tuple] = {}
    for add in adds:
        meta = nodes[add.node].meta.get("tensor_meta")
        if meta is not None:
            sizes.setdefault(add.block, tuple(meta.shape[2:]) if len(meta.shape) == 4
                             else tuple(meta.shape[1:-1]))
    return sizes
