"""Which adds of a traced network are residual shortcuts, and why the others are not.

**A residual addition** (a block shortcut) is an add of two tensors (``+``, ``+=``,
``torch.add``, ``Tensor.add``/``add_``, a scaled add such as ``out * alpha + shortcut``, or
``torch.add(a, b, alpha=)``) where one operand, the shortcut, is the *stream* of the module that
owns the add (that module's input, or the output of an earlier residual add in it, as in a
transformer block's second residual) and the other, the branch, is computed from the same
stream. What is added at the join decides which is which, whatever module holds it (an
``nn.Sequential``, a lambda, ``nn.Identity``, a bare parameter applied with ``F.conv2d``):

* the branch passes through more weighted layers (a conv, linear, embedding or attention
  layer, or a function applied to a weight matrix; a leaf module counts every such layer
  inside it) than the shortcut, and through at least one; the shortcut's own weighted layers
  are its projection; or
* the shortcut is the stream itself (directly or through ``nn.Identity``) and the branch holds
  learnable parameters of any kind (PoolFormer's ``x + layer_scale(pool(norm(x)))``).

In the root module's own code the stream is the operands' nearest shared ancestor. A
shortcut that the block receives from outside (computed by its parent and passed in, as in
DLA's trees) is one when it is at most a projection (one weighted layer); one the block
computes itself from a path that leaves it is none.

Other adds are kept and named in ``kept_adds`` with the reason: a constant or a bias or an
embedding added to the stream, Res2Net's adds between splits (both operands pass through the
same weighted layer), HRNet's fuse adds (operands from different inputs), RepVGG's parallel
branches (as many weighted layers on each side), an elementwise sum with no weights. One kind
is marked ``residual``: a join whose shortcut the module receives from outside through
more than one weighted layer, which the twin cannot take apart.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
ADD_METHODS = {"add", "add_"}
WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
INPLACE_FUNCTIONS = {torch.relu_, operator.iadd, operator.imul, operator.isub}
ASSERTS = {torch._assert}


@dataclass(frozen=True)
class ResidualAdd:
    node: str  # the add's fx node name
    block: str  # the module owning the add ("" when it is the root's own code)
    branch: str  # fx node names of the two operands
    shortcut: str
    shortcut_modules: tuple[str, ...]  # modules on the shortcut (projection, zero-pad)
    identity: bool  # the shortcut is the stream itself (or nn.Identity of it)
    stream: str  # the node the shortcut starts from
    shortcut_parameters: tuple[str, ...] = ()  # read by functions on it: F.conv2d(x, self.w)

    @property
    def where(self) -> str:
        return f"{self.node} in {self.block or 'the root'}"


@dataclass(frozen=True)
class KeptAdd:
    node: str
    block: str
    reason: str
    residual: bool = False  # a shortcut the twin cannot take apart: a twin keeping it is partial

    @property
    def where(self) -> str:
        return f"{self.node} in {self.block or 'the root'}"


def residual_adds(graph_module: fx.GraphModule) -> tuple[list[ResidualAdd], list[KeptAdd]]:
    """The block shortcuts, and the other adds with why they are not one."""
    graph = _Graph(graph_module)
    streams: dict[str, set[fx.Node]] = {}
    adds, kept = [], []
    for node in graph.nodes:
        if not is_add(node):
            continue
        owner = graph.owners[node]
        operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
        if len(operands) != 2:
            kept.append(KeptAdd(node.name, owner, "adds a constant, not a tensor"))
            continue
        stream = streams.setdefault(owner, _module_inputs(owner, graph))
        found = _classify(node, operands, owner, stream, graph)
        if isinstance(found, KeptAdd):
            kept.append(found)
            continue
        adds.append(found)
        stream.add(node)  # a later add in this module may take this one as its stream
    return adds, kept


class _Graph:
    """A traced graph with what the rule reads: each node's ancestors and owner, the
    modules and parameters."""

    def __init__(self, graph_module: fx.GraphModule) -> None:
        self.modules = dict(graph_module.named_modules())
        self.parameters = dict(graph_module.named_parameters())
        self.nodes = list(graph_module.graph.nodes)
        self.ancestors: dict[fx.Node, set[fx.Node]] = {}
        for node in self.nodes:
            found: set[fx.Node] = set()
            for parent in node.all_input_nodes:
                found |= self.ancestors[parent] | {parent}
            self.ancestors[node] = found
        self.owners = {node: owner_of(node) for node in self.nodes}
        self.order = {node: index for index, node in enumerate(self.nodes)}

    def reaches(self, start: fx.Node, node: fx.Node) -> bool:
        return start is node or start in self.ancestors[node]

    def weighted(self, nodes: Iterable[fx.Node]) -> int:
        """Weighted layers among ``nodes``: each layer holding a weight matrix inside a
        called module (a leaf ``nn.Sequential`` of conv and BN is one, of two convs two), and
        each function applied to a weight matrix."""
        count = 0
        for n in nodes:
            if n.op == "call_module":
                count += sum(any(p.dim() >= 2 for p in m.parameters(recurse=False))
                             for m in self.modules[n.target].modules())
            elif n.op in ("call_function", "call_method"):
                count += any(p is not None and p.dim() >= 2 for p in self._read(n))
        return count

    def parameterised(self, nodes: Iterable[fx.Node]) -> int:
        """Operations among ``nodes`` with learnable parameters of any shape (a norm's
        affine weight, a layer scale)."""
        count = 0
        for n in nodes:
            if n.op == "call_module":
                count += any(True for _ in self.modules[n.target].parameters())
            elif n.op in ("call_function", "call_method"):
                count += any(p is not None for p in self._read(n))
        return count

    def _read(self, node: fx.Node) -> list[torch.Tensor | None]:
        return [self.parameters.get(a.target) for a in node.all_input_nodes
                if a.op == "get_attr" and isinstance(a.target, str)]

    def is_identity(self, nodes: Iterable[fx.Node]) -> bool:
        """Whether a path only passes its input on: nothing, ``nn.Identity`` or an empty
        ``nn.Sequential``."""
        for n in nodes:
            module = self.modules.get(n.target) if n.op == "call_module" else None
            if not (isinstance(module, nn.Identity)
                    or isinstance(module, nn.Sequential) and len(module) == 0):
                return False
        return True


# Why an add is kept (KeptAdd.reason).
NO_SHARED_INPUT = "its operands share no input (a bias or an embedding added to the stream)"
DIFFERENT_INPUTS = ("its operands come from different inputs of the module (a fuse of "
                    "parallel paths, not a shortcut around a branch)")
INSIDE_BRANCH = ("both operands pass through the same weighted layer after the module's "
                 "stream: an add inside the branch, not a shortcut")
PARALLEL = ("both operands reach the stream through as many weighted layers: parallel "
            "branches, neither of them a shortcut")
NO_WEIGHTS = ("neither operand passes through a weighted layer or a learnable parameter: an "
              "elementwise sum, not a shortcut around a branch")


def _classify(node, operands, owner, stream, graph: _Graph) -> ResidualAdd | KeptAdd:
    a, b = operands
    ancestors = graph.ancestors
    if not all(o.op == "placeholder" or any(n.op == "placeholder" for n in ancestors[o])
               for o in operands):  # a parameter or buffer added to the stream
        return KeptAdd(node.name, owner, NO_SHARED_INPUT)
    if owner == "":  # the root's own code: the operands' nearest shared ancestor
        common = (ancestors[a] | {a}) & (ancestors[b] | {b})
        candidates = {max(common, key=lambda n: len(ancestors[n]))} if common else set()
    else:
        candidates = stream
    if not candidates:
        return KeptAdd(node.name, owner, NO_SHARED_INPUT)
    best = None
    met: dict[str, str] = {}  # why each (shortcut, start) pair failed, strongest kept
    for shortcut, branch in ((a, b), (b, a)):
        for start in candidates:
            if not (graph.reaches(start, shortcut) and graph.reaches(start, branch)):
                continue
            between = {o: (ancestors[o] | {o}) - ancestors[start] - {start}
                       for o in (shortcut, branch)}
            # What both operands compute from the stream (a pre-activation block's shared
            # norm) is neither path's; it must hold no weighted layer, or the "shortcut"
            # starts inside the branch (Res2Net's adds between splits).
            shared = between[shortcut] & between[branch]
            if graph.weighted(shared):
                met["shared"] = INSIDE_BRANCH
                continue
            paths = {o: between[o] - shared for o in (shortcut, branch)}
            weights = {o: graph.weighted(paths[o]) for o in (shortcut, branch)}
            identity = graph.is_identity(paths[shortcut])
            if not (weights[branch] >= 1 and weights[branch] > weights[shortcut]
                    or identity and graph.parameterised(paths[branch]) >= 1):
                if weights[branch] == weights[shortcut] >= 1:
                    met["parallel"] = PARALLEL
                elif not weights[branch] and not weights[shortcut]:
                    met["none"] = NO_WEIGHTS
                continue
            # A shortcut passed into the block (DLA's trees project it outside) is one only
            # as a projection at most; passed in through more, it is a join the rule cannot
            # take apart. One computed inside from a path that leaves the block (HRNet's
            # fuse of parallel branches) is none.
            outside = sorted({graph.owners[n] or n.name for n in paths[shortcut]
                              if n.op != "get_attr" and not _inside(graph.owners[n], owner)})
            if owner and outside:
                if _inside(graph.owners[shortcut], owner):
                    continue
                if weights[shortcut] > 1:
                    met["outside"] = (f"its shortcut is computed outside {owner} (in "
                                      f"{', '.join(outside[:3])}) through {weights[shortcut]}"
                                      f" weighted layers and passed in, so the join cannot "
                                      f"be taken apart")
                    continue
            key = (weights[shortcut], len(paths[shortcut]))
            if best is None or key < best[0]:
                fork = max(shared, key=lambda n: len(ancestors[n])) if shared else start
                best = (key, shortcut, branch, fork, paths[shortcut], identity)
    if best is None:
        for kind in ("outside", "shared", "parallel", "none"):
            if kind in met:
                return KeptAdd(node.name, owner, met[kind], residual=kind == "outside")
        return KeptAdd(node.name, owner, DIFFERENT_INPUTS)
    _, shortcut, branch, start, on_shortcut, identity = best
    needed = _needed_elsewhere(on_shortcut, node, graph.order)
    modules = tuple(sorted(str(n.target) for n in on_shortcut if n.op == "call_module" and (
        n not in needed or graph.parameterised([n]))))
    parameters = tuple(sorted(str(n.target) for n in on_shortcut
                              if n.op == "get_attr" and n.target in graph.parameters))
    return ResidualAdd(node.name, owner, branch.name, shortcut.name, modules,
                       identity=identity, stream=start.name, shortcut_parameters=parameters)


def _needed_elsewhere(path: set[fx.Node], add: fx.Node, order: dict[fx.Node, int]
                      ) -> set[fx.Node]:
    """The nodes of a shortcut that something besides the shortcut reads (DLA's pooled
    input, which its tree also concatenates), and what they need: they stay in the twin.
    A parameter-free one is then no part of the shortcut; a projection stays a shortcut
    module, and the twin refuses to keep it (surgery.twin)."""
    needed: set[fx.Node] = set()
    for node in sorted(path, key=order.__getitem__, reverse=True):
        if any(user is not add and (user not in path or user in needed) for user in node.users):
            needed.add(node)
    return needed


def _module_inputs(owner: str, graph: _Graph) -> set[fx.Node]:
    """The nodes a module's code reads from outside it (the root: its placeholders)."""
    if owner == "":
        return {n for n in graph.nodes if n.op == "placeholder"}
    inside = [n for n in graph.nodes if _inside(graph.owners[n], owner)]
    return {parent for n in inside for parent in n.all_input_nodes
            if not _inside(graph.owners[parent], owner) and parent.op != "get_attr"}


def _inside(path: str, owner: str) -> bool:
    return owner == "" or path == owner or path.startswith(f"{owner}.")


def owner_of(node: fx.Node) -> str:
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


def is_add(node: fx.Node) -> bool:
    if node.op == "call_function":
        return node.target in ADD_FUNCTIONS
    return node.op == "call_method" and node.target in ADD_METHODS


def is_tensor_add(node: fx.Node) -> bool:
    """An add of two tensors computed in the graph (not of a constant)."""
    return is_add(node) and sum(isinstance(a, fx.Node) and a.op != "get_attr"
                                for a in node.args[:2]) == 2


def mutated(node: fx.Node) -> fx.Node | None:
    """The tensor an in-place op writes into, or None for an op that makes a new one."""
    if "out" in node.kwargs and isinstance(node.kwargs["out"], fx.Node):
        return node.kwargs["out"]
    in_place = (node.op == "call_method" and str(node.target).endswith("_")) or (
        node.op == "call_function" and (node.target in INPLACE_FUNCTIONS
                                        or node.kwargs.get("inplace") is True))
    first = node.args[0] if node.args else None
    return first if in_place and isinstance(first, fx.Node) else None
