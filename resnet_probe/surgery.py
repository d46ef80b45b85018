"""Residual structure of any traceable network, and its plain twin by graph surgery (torch.fx).

A residual addition is an add of two tensors where one operand (the shortcut) is the block's
input, or that input through a projection, and the other (the branch) reaches the same input
through more weighted layers. Concretely, for ``add(a, b)``: take the nearest node both operands
descend from (the block input); the shortcut is the operand with fewer weighted modules between
that input and itself (zero for an identity), the branch the other, which must hold at least one
convolution. The module that owns the add (fx's ``nn_module_stack``) is the block.

The plain twin keeps the branch: every residual add is replaced by its branch operand, and the
projections left without users are dropped from the graph and from the module tree.
Stages are runs of blocks between changes of spatial size (found with fx's ShapeProp).
"""

from __future__ import annotations

import operator
import weakref
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from resnet_probe.errors import InvalidRequest
from resnet_probe.zoo.resnet import HEAD_STAGE, STEM_STAGE, LayerInfo, Role

ADDS = {operator.add, operator.iadd, torch.add}
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class SurgeryError(InvalidRequest):
    """The model cannot be traced, or holds no residual addition."""


@dataclass(frozen=True)
class ResidualAdd:
    node: str  # the add's fx node name
    block: str  # the module owning the add ("" when it is the root's own code)
    branch: str  # fx node names of the two operands
    shortcut: str
    shortcut_modules: tuple[str, ...]  # modules on the shortcut (projection, zero-pad)
    identity: bool  # the shortcut is the block input itself


def trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as error:  # noqa: BLE001 - fx raises many types for untraceable code
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SurgeryError(f"torch.fx cannot trace {type(model).__name__} ({first}); a plain "
                           f"twin and foreign block boundaries need a traceable forward "
                           f"(no data-dependent Python control flow)") from None


def residual_adds(graph_module: fx.GraphModule) -> list[ResidualAdd]:
    modules = dict(graph_module.named_modules())
    ancestors: dict[fx.Node, set[fx.Node]] = {}
    for node in graph_module.graph.nodes:
        found: set[fx.Node] = set()
        for parent in node.all_input_nodes:
            found |= ancestors[parent] | {parent}
        ancestors[node] = found
    adds = []
    for node in graph_module.graph.nodes:
        if not _is_add(node):
            continue
        operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
        if len(operands) != 2:
            continue
        a, b = operands
        common = (ancestors[a] | {a}) & (ancestors[b] | {b})
        if not common:
            continue
        start = max(common, key=lambda n: len(ancestors[n]))  # the nearest shared ancestor
        between = {operand: (ancestors[operand] | {operand}) - ancestors[start] - {start}
                   for operand in (a, b)}
        weighted = {operand: [n for n in nodes if n.op == "call_module" and isinstance(
            modules[n.target], WEIGHTED + (nn.BatchNorm2d,))] for operand, nodes in
            between.items()}
        branch, shortcut = (a, b) if len(weighted[a]) > len(weighted[b]) else (b, a)
        if not any(isinstance(modules[n.target], nn.Conv2d) for n in weighted[branch]):
            continue
        stack = node.meta.get("nn_module_stack") or {}
        on_shortcut = tuple(sorted(n.target for n in between[shortcut]
                                   if n.op == "call_module"))
        adds.append(ResidualAdd(node.name, _module_path(stack), branch.name, shortcut.name,
                                on_shortcut, identity=shortcut is start))
    return adds


def _module_path(stack: dict) -> str:
    """The innermost module path in fx's nn_module_stack (values are (path, type))."""
    if not stack:
        return ""
    value = list(stack.values())[-1]
    path = value[0] if isinstance(value, tuple) else value
    return str(path)


def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in ADDS
    return node.op == "call_method" and node.target in ("add", "add_")


def plain_twin(model: nn.Module, example: torch.Tensor | None = None) -> fx.GraphModule:
    """``model`` without its shortcuts: each residual add replaced by its branch, unused
    projections removed. The twin shares no parameters with ``model`` (it is traced from a
    copy) and carries the original's block structure in ``layer_info``."""
    import copy

    graph_module = trace(copy.deepcopy(model))
    adds = residual_adds(graph_module)
    if not adds:
        raise SurgeryError(f"{type(model).__name__} has no residual addition (no add of a "
                           f"block input, or its projection, to a branch with a convolution)"
                           f"; it is plain already")
    structure = None
    if example is not None:
        structure = discover_structure(model, example, graph_module, adds)
    nodes = {node.name: node for node in graph_module.graph.nodes}
    for add in adds:
        node = nodes[add.node]
        node.replace_all_uses_with(nodes[add.branch])
        graph_module.graph.erase_node(node)
    graph_module.graph.eliminate_dead_code()
    graph_module.delete_all_unused_submodules()
    blocks = list(dict.fromkeys(add.block for add in adds))
    # An identity block's input node survives (the branch reads it): the lesion study
    # replaces such a block by the identity. A projection block has no such input.
    graph_module.block_inputs = {add.block: add.shortcut if add.identity else None
                                 for add in adds}
    graph_module.block_outputs = _mark_block_outputs(graph_module, blocks)
    graph_module.recompile()
    graph_module.residual_blocks = blocks  # what the twin's original had
    if structure is not None:
        kept = dict(graph_module.named_modules())
        graph_module.layer_info = {name: info for name, info in structure.items()
                                   if name in kept}
        for block in blocks:
            deepest = max((i.depth for k, i in structure.items()
                           if k.startswith(f"{block}.") and i.depth is not None), default=None)
            graph_module.layer_info[f"{block}.{BLOCK_OUTPUT}"] = LayerInfo(
                structure[block].stage, Role.MAIN, structure[block].block, block, deepest)
    return graph_module


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
        target = f"{block}.{BLOCK_OUTPUT}"
        graph_module.add_submodule(target, BlockOutput())
        with graph_module.graph.inserting_after(node):
            marker = graph_module.graph.call_module(target, (node,))
        node.replace_all_uses_with(marker, delete_user_cb=lambda user, m=marker: user is not m)
        markers[block] = graph_module.get_submodule(target)
    return markers


_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def traced(model: nn.Module) -> fx.GraphModule:
    """``model`` traced once (kept while the model lives): a GraphModule sharing its modules."""
    if isinstance(model, fx.GraphModule):
        return model
    if model not in _TRACES:
        _TRACES[model] = trace(model)
    return _TRACES[model]


def deletable_blocks(model: nn.Module) -> dict[str, tuple[bool, str | None]]:
    """Per block of a foreign model or plain twin: (downsampling, why it cannot be deleted)."""
    if getattr(model, "block_outputs", None):  # a plain twin: identity blocks only
        return {block: (source is None, None if source is not None else
                        "changes shape and has no shortcut to keep, so no identity can "
                        "replace it")
                for block, source in model.block_inputs.items()}
    return {add.block: (not add.identity, None) for add in residual_adds(traced(model))}


def lesioned_graph(model: nn.Module, blocks: list[str]) -> fx.GraphModule:
    """A graph of ``model`` with ``blocks`` deleted, sharing its parameters: each residual
    add becomes its shortcut operand (the block's branch is gone, its projection kept); in a
    plain twin an identity-shaped block's output marker reads the block's input instead."""
    import copy

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
        adds = {add.block: add for add in residual_adds(source)}
        for block in blocks:
            node = nodes[adds[block].node]
            node.replace_all_uses_with(nodes[adds[block].shortcut])
            graph.erase_node(node)
    lesioned = fx.GraphModule(source, graph)
    lesioned.graph.eliminate_dead_code()  # the deleted branches (DCE needs the owner)
    lesioned.recompile()
    return lesioned


def has_shortcuts(model: nn.Module) -> bool:
    """Whether the model adds shortcuts: the zoo's spec says; a foreign model has residual
    blocks in its discovered structure, and a plain twin records the ones it dropped."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.shortcut
    info = getattr(model, "layer_info", {}) or {}
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
            if i.role is Role.BLOCK}


def discover_structure(model: nn.Module, example: torch.Tensor,
                       graph_module: fx.GraphModule | None = None,
                       adds: list[ResidualAdd] | None = None) -> dict[str, LayerInfo]:
    """LayerInfo for every module: blocks are the residual adds' owners, stages change where
    the spatial size does, depth counts weighted layers in execution order."""
    graph_module = graph_module or trace(model)
    adds = residual_adds(graph_module) if adds is None else adds
    if not adds:
        raise SurgeryError(f"{type(model).__name__} has no residual addition, so it has no "
                           f"blocks to find")
    blocks = list(dict.fromkeys(add.block for add in adds))
    shortcut_modules = {name for add in adds for name in add.shortcut_modules}
    sizes = _block_output_sizes(graph_module, example, adds)
    stage_of: dict[str, str] = {}
    index: dict[str, int] = {}
    stage, previous = 0, None
    for block in blocks:  # a new stage wherever the spatial size changes
        if sizes[block] != previous:
            stage, previous = stage + 1, sizes[block]
        stage_of[block] = f"stage{stage}"
        index[block] = sum(1 for b in stage_of if stage_of[b] == stage_of[block]) - 1
    order = [n.target for n in graph_module.graph.nodes if n.op == "call_module"]
    info: dict[str, LayerInfo] = {"": LayerInfo(stage="model", role=Role.MODEL)}
    depth, seen_block = 0, False
    for path in order:
        module = graph_module.get_submodule(path)
        owner = next((b for b in blocks if path == b or path.startswith(f"{b}.")), None)
        if isinstance(module, WEIGHTED) and path not in shortcut_modules:
            depth += 1
        if owner is None:
            where = HEAD_STAGE if seen_block else STEM_STAGE
            info[path] = LayerInfo(where, Role.HEAD if seen_block else Role.STEM,
                                   depth=max(depth, 1))
            continue
        seen_block = True
        role = Role.SHORTCUT if path in shortcut_modules else Role.MAIN
        info[path] = LayerInfo(stage_of[owner], role, index[owner], owner, depth)
    for block in blocks:
        info[block] = LayerInfo(stage_of[block], Role.BLOCK, index[block], block)
    return info


def _block_output_sizes(graph_module: fx.GraphModule, example: torch.Tensor,
                        adds: list[ResidualAdd]) -> dict[str, tuple]:
    """Each block's output spatial size (the size after its residual add). The shape pass
    runs in eval mode without autograd, so it leaves BN's running statistics as they are."""
    was_training = graph_module.training
    try:
        with torch.no_grad():
            ShapeProp(graph_module.eval()).propagate(example)
    finally:
        graph_module.train(was_training)
    nodes = {node.name: node for node in graph_module.graph.nodes}
    sizes: dict[str, tuple] = {}
    for add in adds:
        sizes.setdefault(add.block, tuple(nodes[add.node].meta["tensor_meta"].shape[2:]))
    return sizes
