"""Blocks and stages of a foreign model, found from its graph.

A block is the module that owns a residual addition, a new stage starts where a block's
output size changes, modules between two blocks belong to the next block's stage (ConvNeXt's
downsample layers), and depth counts weighted layers in execution order.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from resnet_probe.modes import in_mode
from resnet_probe.sources.surgery.adds import WEIGHTED, ResidualAdd, residual_adds
from resnet_probe.sources.surgery.examples import Example, placeholder_arguments
from resnet_probe.sources.surgery.tracing import SurgeryError, trace_with_blocks
from resnet_probe.zoo.resnet import HEAD_STAGE, STEM_STAGE, LayerInfo, Role

BLOCK_OUTPUT = "block_output"


class BlockOutput(nn.Module):
    """Marks a block's output in a traced graph. A view, not the input itself: a module that
    returns its input unchanged confuses torch's backward module tracking (every later
    backward op would be attributed to it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)


def mark_block_outputs(graph_module: fx.GraphModule, blocks: list[str]
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
        node.replace_all_uses_with(marker, delete_user_cb=_not(marker))
        markers[block] = graph_module.get_submodule(target)
    return markers


def _not(marker: fx.Node) -> Callable[[fx.Node], bool]:
    """Every user but the marker itself reads the marker instead."""
    return lambda user: user is not marker


def has_shortcuts(model: nn.Module, layer_info: dict | None = None) -> bool:
    """Whether the model adds shortcuts: the zoo's spec says; a foreign model has residual
    blocks in its discovered structure (``layer_info``, else its own), and a plain twin
    records the ones it dropped (a partial twin: whether it kept one)."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.shortcut
    report = getattr(model, "twin_report", None)
    if report is not None:
        return bool(report.kept_residual)
    info = layer_info if layer_info is not None else getattr(model, "layer_info", {}) or {}
    return (not hasattr(model, "residual_blocks")
            and any(i.role is Role.BLOCK for i in info.values()))


def block_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The module whose output is each block's output: the zoo's blocks, a plain twin's
    markers, or the owners of the residual adds found in a foreign model's ``layer_info``."""
    from resnet_probe.zoo import ResNet

    if isinstance(model, ResNet):
        return dict(model.blocks())
    outputs: dict[str, nn.Module] | None = getattr(model, "block_outputs", None)
    if outputs:
        return dict(outputs)
    info = getattr(model, "layer_info", {}) or {}
    return {name: model.get_submodule(name) for name, i in info.items()
            if i.role is Role.BLOCK and name}


def discover_structure(model: nn.Module, example: Example,
                       graph_module: fx.GraphModule | None = None,
                       adds: list[ResidualAdd] | None = None) -> dict[str, LayerInfo]:
    """LayerInfo for every module: blocks are the residual adds' owners, stages change where
    a block's output size does, modules between blocks join the next block's stage, and
    depth counts weighted layers in execution order. ``example``: a tensor, a tuple of
    positional tensors or a dict of keyword tensors."""
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


def _block_output_sizes(graph_module: fx.GraphModule, example: Example,
                        adds: list[ResidualAdd]) -> dict[str, tuple]:
    """Each block's output size (after its residual add), from a shape pass in eval mode
    without autograd (BN's running statistics stay as they are)."""
    with in_mode(graph_module, training=False), torch.no_grad():
        ShapeProp(graph_module).propagate(*placeholder_arguments(graph_module, example))
    nodes = {node.name: node for node in graph_module.graph.nodes}
    sizes: dict[str, tuple] = {}
    for add in adds:
        meta = nodes[add.node].meta.get("tensor_meta")
        if meta is not None:
            sizes.setdefault(add.block, tuple(meta.shape[2:]) if len(meta.shape) == 4
                             else tuple(meta.shape[1:-1]))
    return sizes
