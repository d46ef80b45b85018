"""Lesions on the graph: blocks of a foreign model or a plain twin deleted, the rest kept."""

from __future__ import annotations

import copy

import torch.fx as fx
from torch import nn

from resnet_probe.sources.surgery.adds import residual_adds
from resnet_probe.sources.surgery.structure import BLOCK_OUTPUT
from resnet_probe.sources.surgery.tracing import traced
from resnet_probe.sources.surgery.twin import remove_dead_code


def deletable_blocks(model: nn.Module) -> dict[str, tuple[bool, str | None]]:
    """Per block of a foreign model or plain twin: (downsampling, why it cannot be deleted)."""
    if getattr(model, "block_outputs", None):  # a plain twin: identity blocks only
        return {block: (source is None, None if source is not None else
                        "changes shape and has no shortcut to keep, so no identity can "
                        "replace it")
                for block, source in _block_inputs(model).items()}
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
            start = _block_inputs(model).get(block)
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
    remove_dead_code(lesioned.graph)  # the deleted branches
    lesioned.recompile()
    return lesioned


def _block_inputs(twin: nn.Module) -> dict[str, str | None]:
    """A plain twin's identity blocks' inputs (surgery.twin), by block."""
    return getattr(twin, "block_inputs", {})
