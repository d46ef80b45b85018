"""The plain twin of any traceable network: its residual shortcuts removed by graph surgery.

**Surgery.** Each branch is kept: the add is replaced by its branch operand; an in-place
add's later readers of the tensor it mutated read the branch; ops that mutate a live tensor in
place keep their place; everything left computing only for removed shortcuts (projections,
the parameters a functional projection reads, and the asserts on them) is removed from the
graph, the module tree and the parameters.

**Right or refused.** After surgery the twin is checked: no residual add is left (the rule of
``adds.py`` finds none), every projection of a removed shortcut is gone, and the parameter
count dropped by exactly the projections' parameters. A twin failing a check, or one whose
original has a join the rule cannot take apart (a shortcut passed into its block from
outside), is refused with a SurgeryError naming the join and why, unless a partial twin is
asked for (``partial=True``, ``plain[partial]:MODEL``): it keeps what could not be removed
and its ``twin_report`` says so. A twin whose graph fails ``graph.lint()`` or a forward on
the example input is refused with the reason.

**What the twin keeps** is listed in its ``twin_report``: the adds that are not shortcuts
(with the reason), and the concatenations (a U-Net's encoder-to-decoder skips, DenseNet's
dense connections), which are not residual shortcuts and stay.
"""

from __future__ import annotations

import copy
import inspect
import operator
import warnings
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from resnet_probe.modes import in_mode
from resnet_probe.sources.surgery.adds import (
    ASSERTS,
    KeptAdd,
    ResidualAdd,
    mutated,
    owner_of,
    residual_adds,
)
from resnet_probe.sources.surgery.examples import (
    Example,
    is_meta,
    placeholder_arguments,
    probe_batch,
)
from resnet_probe.sources.surgery.structure import (
    BLOCK_OUTPUT,
    discover_structure,
    mark_block_outputs,
)
from resnet_probe.sources.surgery.tracing import SurgeryError, trace_with_blocks
from resnet_probe.zoo.resnet import LayerInfo, Role

CONCATENATIONS = {torch.cat, torch.concat, torch.concatenate}
PARTIAL_HINT = "plain[partial]:MODEL keeps a partial twin, labelled partial"


class DeadTwinWarning(UserWarning):
    """A plain twin whose output does not depend on its input: its branches start at zero."""


@dataclass(frozen=True)
class TwinProblem:
    """What keeps a twin from being plain: the join it concerns and why."""

    join: str  # the add's fx node name
    block: str  # the module owning it ("" for the root's own code)
    reason: str
    kept_add: bool  # the add itself is still in the twin (else what it read is)

    def words(self) -> str:
        return f"the join {self.join} in {self.block or 'the root'}: {self.reason}"


@dataclass(frozen=True)
class Concatenation:
    """A concatenation the twin keeps: a long skip (U-Net) or a dense connection, not a
    residual shortcut."""

    node: str
    block: str  # the module whose code concatenates ("" for the root)
    inputs: tuple[str, ...]  # the modules whose outputs it joins, in order

    def words(self) -> str:
        return f"{self.node} joins {' and '.join(self.inputs)}"


@dataclass(frozen=True)
class TwinReport:
    """What the surgery removed and kept; ``problems`` make a twin partial."""

    model: str  # the original's class name
    removed: tuple[ResidualAdd, ...]
    kept_adds: tuple[KeptAdd, ...]
    concatenations: tuple[Concatenation, ...]
    removed_parameters: int  # the removed projections'
    problems: tuple[TwinProblem, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    @property
    def kept_residual(self) -> tuple[TwinProblem, ...]:
        return tuple(p for p in self.problems if p.kept_add)

    @property
    def label(self) -> str:
        return "partial plain twin" if self.partial else "plain twin"

    def description(self) -> str:
        """One line for the tables: what was removed, what was kept and why."""
        blocks = len({add.block for add in self.removed if add.block})
        where = f" in {_count(blocks, 'block')}" if blocks else ""
        parts = [f"{self.label} of {self.model}: {_count(len(self.removed), 'residual add')} "
                 f"removed{where} ({_count(self.removed_parameters, 'projection parameter')})"]
        if self.concatenations:
            shown = "; ".join(c.words() for c in self.concatenations[:4])
            more = f"; and {len(self.concatenations) - 4} more" \
                if len(self.concatenations) > 4 else ""
            parts.append(f"keeps {_count(len(self.concatenations), 'concatenation')} (joins "
                         f"of features such as a U-Net's long skips, not residual "
                         f"shortcuts): {shown}{more}")
        others = [k for k in self.kept_adds if not k.residual]
        if others:
            parts.append(f"keeps {_count(len(others), 'add')} that "
                         f"{'is' if len(others) == 1 else 'are'} not a shortcut: "
                         f"{kept_words(others)}")
        if self.problems:
            parts.append("partial: " + "; ".join(p.words() for p in self.problems))
        return "; ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def plain_twin(model: nn.Module, example: Example | None = None, reinit: bool = False,
               partial: bool = False) -> fx.GraphModule:
    """``model`` without its shortcuts (see the module docstring). ``example``: a tensor, a
    tuple of positional tensors or a dict of keyword tensors, as the forward takes them; with
    it the twin's forward is checked and its block structure (``layer_info``) found. The
    twin shares no parameters with ``model`` (it is traced from a copy) and carries a
    ``twin_report``. With ``reinit``, branches that start at zero get a unit init first
    (``unit_branches``); a twin whose output does not depend on its input otherwise warns
    (DeadTwinWarning). ``partial`` keeps a twin that could not be made plain, labelled
    partial, instead of refusing it."""
    source = copy.deepcopy(model)
    if reinit:
        unit_branches(source)
    name = type(model).__name__
    with in_mode(source, training=False):  # Python branches on self.training: inference's
        graph_module = trace_with_blocks(source)
    adds, kept = residual_adds(graph_module)
    if not adds and not any(k.residual for k in kept):
        found = (f"; the {len(kept)} adds it has are not shortcuts: "
                 f"{kept_words(kept)}" if kept else "")
        raise SurgeryError(f"{name} has no residual addition (no add of a block's stream, "
                           f"or its projection, to a branch with a weighted layer){found}")
    problems = [TwinProblem(k.node, k.block, k.reason, kept_add=True)
                for k in kept if k.residual]
    _refuse_unless(partial, name, problems)
    structure = None
    if example is not None and any(add.block for add in adds):  # the root's are no block
        structure = discover_structure(source, example, graph_module, adds)
    before = _parameter_names(graph_module)
    projections = _projection_parameters(graph_module, adds)
    _remove_shortcuts(graph_module, adds)
    _drop_unused_parameters(graph_module, before)
    graph_module.delete_all_unused_submodules()
    problems += _verify(graph_module, adds, before, projections)
    _refuse_unless(partial, name, problems)
    blocks = list(dict.fromkeys(add.block for add in adds))
    markers = mark_block_outputs(graph_module, blocks)
    _follow_the_mode(graph_module.graph)
    graph_module.recompile()
    removed = sum(p.numel() for n, p in projections.items() if n not in
                  _parameter_names(graph_module))
    vars(graph_module).update(  # plain data the measurements read, not modules or tensors
        # An identity block's stream survives (the branch reads it): the lesion study
        # replaces such a block by the identity. A projection block has no such input.
        block_inputs={add.block: add.stream if add.identity else None for add in adds},
        block_outputs=markers,
        residual_blocks=blocks,  # what the twin's original had
        kept_adds=kept,
        twin_report=TwinReport(name, tuple(adds), tuple(kept), _concatenations(graph_module),
                               removed, tuple(problems)))
    if structure is not None:
        vars(graph_module)["layer_info"] = _twin_structure(graph_module, structure, blocks)
    _check_twin(graph_module, model, example)
    return graph_module


def _twin_structure(twin: fx.GraphModule, structure: dict[str, LayerInfo], blocks: list[str]
                    ) -> dict[str, LayerInfo]:
    """The original's layer_info for the modules the twin kept, and each block's output
    marker in its block, at the block's deepest layer."""
    kept_modules = dict(twin.named_modules())
    info = {name: where for name, where in structure.items() if name in kept_modules}
    for block in blocks:
        if not block:
            continue
        deepest = max((i.depth for k, i in structure.items()
                       if k.startswith(f"{block}.") and i.depth is not None), default=None)
        info[f"{block}.{BLOCK_OUTPUT}"] = LayerInfo(
            structure[block].stage, Role.MAIN, structure[block].block, block, deepest)
    return info


def _refuse_unless(partial: bool, name: str, problems: list[TwinProblem]) -> None:
    if problems and not partial:
        raise SurgeryError(f"no plain twin of {name}: "
                           f"{'; '.join(p.words() for p in problems[:3])}"
                           f"{f'; and {len(problems) - 3} more' if len(problems) > 3 else ''}"
                           f". {PARTIAL_HINT}")


def _remove_shortcuts(graph_module: fx.GraphModule, adds: list[ResidualAdd]) -> None:
    """Each add replaced by its branch, and what only the shortcuts needed removed."""
    nodes = {node.name: node for node in graph_module.graph.nodes}
    order = {node: index for index, node in enumerate(graph_module.graph.nodes)}
    for add in adds:
        node = nodes[add.node]
        branch = _scaled_branch(graph_module, node, nodes[add.branch])
        target = mutated(node)
        node.replace_all_uses_with(branch)
        if target is not None and target is not branch:
            for user in list(target.users):  # readers of the mutated tensor after the add
                if user is not node and order.get(user, -1) > order[node]:
                    user.replace_input_with(target, branch)
        graph_module.graph.erase_node(node)
    remove_dead_code(graph_module.graph)


def _parameter_names(graph_module: fx.GraphModule) -> set[str]:
    return {name for name, _ in graph_module.named_parameters()}


def _projection_parameters(graph_module: fx.GraphModule, adds: list[ResidualAdd]
                           ) -> dict[str, torch.Tensor]:
    """The parameters of the shortcuts' projections, by name: their modules' and those a
    function on a shortcut reads."""
    found: dict[str, torch.Tensor] = {}
    for add in adds:
        for module in add.shortcut_modules:
            for name, parameter in graph_module.get_submodule(module).named_parameters(
                    prefix=module):
                found[name] = parameter
        for name in add.shortcut_parameters:
            found[name] = graph_module.get_parameter(name)
    return found


def _drop_unused_parameters(graph_module: fx.GraphModule, before: set[str]) -> None:
    """Remove the parameters that the graph read (get_attr) and no longer does: a functional
    projection's weight. ``delete_all_unused_submodules`` removes modules, not these."""
    read = {n.target for n in graph_module.graph.nodes if n.op == "get_attr"}
    called = [n.target for n in graph_module.graph.nodes if n.op == "call_module"]
    for name in before:
        if name in read or any(name.startswith(f"{module}.") for module in called):
            continue
        owner, _, attribute = name.rpartition(".")
        module = graph_module.get_submodule(owner) if owner else graph_module
        if attribute in module._parameters:
            del module._parameters[attribute]


def _verify(graph_module: fx.GraphModule, adds: list[ResidualAdd], before: set[str],
            projections: dict[str, torch.Tensor]) -> list[TwinProblem]:
    """The checks after surgery (see the module docstring), as problems."""
    problems = []
    users = _live_shortcut_users(graph_module, adds)
    for add in adds:
        if add.node in users:
            problems.append(TwinProblem(add.node, add.block, (
                f"its shortcut ({', '.join(add.shortcut_modules + add.shortcut_parameters)}) "
                f"is also read by {', '.join(users[add.node])}, so removing the shortcut "
                f"cannot remove its projection: a shortcut shared with the rest of the "
                f"network"), kept_add=False))
    # The twin's graph keeps each node's original owner, so the rule reads it as it read
    # the original; joins inside modules the twin calls whole were found before surgery
    # (trace_with_blocks opens every module that holds one).
    for add in residual_adds(graph_module)[0]:
        problems.append(TwinProblem(add.node, add.block, "a residual add is still in the "
                                    "twin after surgery", kept_add=True))
    if not problems:
        after = _parameter_names(graph_module)
        removed = sorted(before - after)
        if removed != sorted(projections):
            extra = sorted(set(removed) - set(projections))[:3]
            stayed = sorted(set(projections) - set(removed))[:3]
            problems.append(TwinProblem(adds[0].node, adds[0].block, (
                f"the surgery removed parameters other than the projections' (removed "
                f"{', '.join(extra) or 'none'} besides them; kept {', '.join(stayed) or 'none'}"
                f" of them)"), kept_add=False))
    return problems


def _live_shortcut_users(graph_module: fx.GraphModule, adds: list[ResidualAdd]
                         ) -> dict[str, list[str]]:
    """Per removed add whose projection survived: who in the twin still reads it. A
    shortcut's parameter-free modules (a pooling that a concatenation reads too) may stay."""
    found: dict[str, list[str]] = {}
    weighted = {name for name, module in graph_module.named_modules()
                if any(True for _ in module.parameters())}
    for add in adds:
        names = ({m for m in add.shortcut_modules if m in weighted}
                 | set(add.shortcut_parameters))
        for node in graph_module.graph.nodes:
            if node.op in ("call_module", "get_attr") and node.target in names:
                readers = [_place(user) for user in node.users]
                found.setdefault(add.node, []).extend(
                    r for r in readers if r not in found.get(add.node, []))
    return found


def _place(node: fx.Node) -> str:
    """Where a node is, in words a user knows: a module's name, or the code that owns it."""
    if node.op == "call_module":
        return str(node.target)
    owner = owner_of(node)
    return f"{node.name} in {owner}" if owner else node.name


def _concatenations(graph_module: fx.GraphModule) -> tuple[Concatenation, ...]:
    """Concatenations of tensors computed from the input, with the modules they join."""
    found = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target not in CONCATENATIONS or not node.args:
            continue
        tensors = node.args[0] if isinstance(node.args[0], (list, tuple)) else ()
        inputs = [_producer(t) for t in tensors if isinstance(t, fx.Node)
                  and _from_input(t)]
        if len(inputs) >= 2:
            found.append(Concatenation(node.name, owner_of(node), tuple(inputs)))
    return tuple(found)


def _producer(node: fx.Node) -> str:
    """The module that made a tensor: a call's module (a block's output marker: the block),
    else the module whose code made it."""
    if node.op == "call_module" and str(node.target).endswith(f".{BLOCK_OUTPUT}"):
        return str(node.target)[:-len(BLOCK_OUTPUT) - 1]
    if node.op == "call_module":
        return str(node.target)
    return owner_of(node) or node.name


def _from_input(node: fx.Node) -> bool:
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current.op == "placeholder":
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(current.all_input_nodes)
    return False


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


def kept_words(kept: list[KeptAdd]) -> str:
    shown = "; ".join(f"{k.where} ({k.reason})" for k in kept[:3])
    return shown + (f"; and {len(kept) - 3} more" if len(kept) > 3 else "")


def _scaled_branch(graph_module: fx.GraphModule, add: fx.Node, branch: fx.Node) -> fx.Node:
    """The branch as the add used it: ``torch.add(a, b, alpha=s)`` scales its second
    operand."""
    alpha = add.kwargs.get("alpha")
    if alpha is None or alpha == 1 or add.args[1] is not branch:
        return branch
    with graph_module.graph.inserting_before(add):
        return graph_module.graph.call_function(operator.mul, (branch, alpha))


def remove_dead_code(graph: fx.Graph) -> None:
    """Remove what no output needs, keeping an in-place op whose target stays live, and an
    assert only where its inputs are kept for another reason (it keeps nothing alive)."""
    live: set[fx.Node] = set()
    changed = True
    while changed:
        changed = False
        for node in reversed(graph.nodes):
            if node in live or node.target in ASSERTS:
                continue
            target = mutated(node)
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


def _check_twin(twin: fx.GraphModule, model: nn.Module, example: Example | None) -> None:
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
    probes, differ = probe_batch(example)
    try:
        with in_mode(twin, training=False), torch.no_grad():
            outputs = twin(*placeholder_arguments(twin, probes))
    except Exception as error:  # noqa: BLE001 - the model's own code can raise anything
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SurgeryError(f"the plain twin of {type(model).__name__} fails a forward once its "
                           f"shortcuts are removed ({first}); no twin is made") from None
    if differ and not is_meta(example) and _same_rows(outputs) \
            and not _same_rows(_original_outputs(model, probes)):
        warnings.warn(DeadTwinWarning(
            f"the plain twin of {type(model).__name__} gives the same output for different "
            f"inputs: its branches start at zero (a zero-initialised last BN or a tiny layer "
            f"scale), which only the shortcuts made harmless. Gradients, timings and training "
            f"of this twin compare nothing; use plain[reinit]:MODEL for a unit init of those "
            f"layers"), stacklevel=3)


def _same_rows(outputs) -> bool:
    """Whether a batch of two outputs has the same output twice."""
    return isinstance(outputs, torch.Tensor) and outputs.shape[0] == 2 and torch.allclose(
        outputs[0], outputs[1], rtol=0, atol=1e-12 * float(outputs.abs().max() + 1))


def _original_outputs(model: nn.Module, probes: Example):
    """The original on the probes: where it too gives one output twice, the probes cannot
    tell a dead twin (a mask that hides every token)."""
    args = probes if isinstance(probes, (tuple, list)) else ()
    kwargs = probes if isinstance(probes, dict) else {}
    if isinstance(probes, torch.Tensor):
        args = (probes,)
    try:
        with in_mode(model, training=False), torch.no_grad():
            return model(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the model's own code: then the twin alone decides
        return None


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
