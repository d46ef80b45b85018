"""One forward and backward of a built net, seen through hooks on every block, and the weight
gradients of every weighted layer it leaves behind.

* per weighted layer (conv, linear): ``grad_norm`` = ||dL/dW||_2 and ``grad_to_weight`` =
  ||dL/dW|| / ||W|| (``layer_grad_norms``);
* per block output x_l: ``act_grad_norm`` = ||dL/dx_l||_2 over the whole batch, and
  ``act_std``, the standard deviation of x_l; at the block's join, where shortcut and branch
  meet, ``join_grad_norm`` and the branch-to-stream ``variance_ratio`` (``BlockProbe``).

A non-finite loss or gradient is a finding, not a crash: the first module whose forward output
is non-finite, and the first module (from the output side) whose gradient is, are reported.
The training loop uses the same hooks (``probing_blocks``) at its probed steps.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, cast

import torch
from torch import nn

from resnet_probe.measure.gradients.batch import Fed, probe_loss, run_forward
from resnet_probe.measure.hooks import hooked, is_leaf
from resnet_probe.sources.surgery import block_modules
from resnet_probe.zoo.blocks import _Block


def run_probe(model: nn.Module, x: Fed, y: torch.Tensor, seed: int = 0
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One forward/backward in train mode, recording block outputs and their gradients;
    the loss is cross-entropy on class logits, else the surrogate (``probe_loss``)."""
    with probing_blocks(model) as probe:
        loss, kind = probe_loss(run_forward(model, x), y, seed)
        if torch.isfinite(loss):
            loss.backward()
    return probe.rows(), {**probe.findings(loss), "loss_kind": kind}


class BlockProbe:
    """What the hooks of ``probing_blocks`` saw in one forward and backward: each block output's
    std and gradient norm, each join's gradient and variance ratio, the first non-finite
    values."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.blocks = block_modules(model)
        self.grads: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.grad_order: list[str] = []
        self.nonfinite_forward: list[str] = []
        self.nonfinite_grad: list[str] = []
        self.joins: dict[str, dict[str, float]] = {}

    def install(self, session) -> None:
        for name, module in self.model.named_modules():
            if name and is_leaf(module):
                session.add(module.register_forward_hook(
                    _finite_hook(name, self.nonfinite_forward)))
        for name, block in self.blocks.items():  # a plain twin's blocks are output markers
            session.add(block.register_forward_hook(_block_hook(
                name, self.grads, self.stds, self.grad_order, self.nonfinite_grad)))
        for name, block in self.blocks.items():
            if isinstance(block, _Block):  # elsewhere the block output stands for the join
                _watch_join(session, name, block, self.joins.setdefault(name, {}))

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.blocks:
            info = recorded_layer_info(self.model)[name]
            join = self.joins.get(name, {})
            rows.append({"block": name, "stage": info.stage,
                         "depth": block_depth(self.model, name),
                         "act_grad_norm": self.grads.get(name, math.nan),
                         "act_std": self.stds.get(name),
                         "join_grad_norm": join.get("grad_norm",
                                                    self.grads.get(name, math.nan)),
                         "variance_ratio": join.get("variance_ratio", math.nan)})
        return rows

    def findings(self, loss: torch.Tensor) -> dict[str, Any]:
        findings = {
            "loss": loss.item(),
            "first_nonfinite_forward": (self.nonfinite_forward[0] if self.nonfinite_forward
                                        else None),
            "first_nonfinite_gradient": self.nonfinite_grad[0] if self.nonfinite_grad else None,
        }
        if findings["first_nonfinite_gradient"] is None and not torch.isfinite(loss):
            findings["first_nonfinite_gradient"] = "(loss)"
        return findings


@contextlib.contextmanager
def probing_blocks(model: nn.Module) -> Iterator[BlockProbe]:
    """Hooks on every block for the forward and backward run inside (train mode, in-place
    ReLUs out of place: values are unchanged); removed and the mode restored afterwards."""
    probe = BlockProbe(model)
    with hooked(model, train=True, install=probe.install):
        yield probe


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_grad_norms(model: nn.Module) -> list[dict[str, Any]]:
    """||dL/dW|| per weighted layer from the .grad already there: cheap enough for a loop."""
    rows = []
    layer_info = getattr(model, "layer_info", {})
    for name, module in weighted_layers(model):
        info = layer_info.get(name)
        weight = cast(torch.Tensor, module.weight)
        grad_norm = weight.grad.norm().item() if weight.grad is not None else math.nan
        weight_norm = weight.detach().norm().item()
        rows.append({"module": name, "stage": info.stage if info else None,
                     "depth": info.depth if info else None, "role": info.role if info else None,
                     "grad_norm": grad_norm, "weight_norm": weight_norm,
                     "grad_to_weight": grad_norm / weight_norm if weight_norm else math.nan})
    return rows


def recorded_layer_info(model: nn.Module) -> dict[str, Any]:
    """The per-module facts the zoo and surgery record on a built model (``layer_info``)."""
    return cast(dict[str, Any], model.layer_info)


def block_depth(model: nn.Module, block: str) -> int:
    """The depth of a block's output: that of its deepest weighted layer."""
    return max(v.depth for k, v in recorded_layer_info(model).items()
               if k.startswith(block + ".") and v.depth is not None)


def _block_hook(name, grads, stds, order, nonfinite):
    def hook(module, args, output):
        stds[name] = output.detach().float().std().item()
        if output.requires_grad:
            def on_grad(grad):
                grads[name] = grad.detach().float().norm().item()
                order.append(name)
                if not torch.isfinite(grad).all():
                    nonfinite.append(name)
            output.register_hook(on_grad)
    return hook


def _watch_join(session, name: str, block: Any, record: dict[str, float]) -> None:
    """The block's join, where shortcut and branch meet: the gradient at the sum before the
    block's last ReLU (the block output for pre-activation blocks, whose sum is last), and
    the branch-to-stream variance Var F(x) / Var x of De & Smith (2020); for a block without
    a shortcut, Var out / Var in. Through an identity block the gradient at the join passes
    unchanged, which the within-stage ratios rest on."""
    seen: dict[str, torch.Tensor] = {}

    def remember(key):
        def hook(module, args, output):
            seen[key] = args[0] if key == "relu_input" else output
        return hook

    def after_block(module, args, output):
        join = output if module.preact else seen["relu_input"]
        stream = args[0].detach().float().var().item()
        measured = seen["branch"] if module.residual else output
        record["variance_ratio"] = (measured.detach().float().var().item() / stream
                                    if stream else math.nan)
        if join.requires_grad:
            join.register_hook(
                lambda grad: record.__setitem__("grad_norm", grad.detach().float().norm().item()))

    session.add(block.relu.register_forward_hook(remember("relu_input")))
    session.add(block.branch_end.register_forward_hook(remember("branch")))
    session.add(block.register_forward_hook(after_block))


def _finite_hook(name, found):
    def hook(module, args, output):
        if not found and not torch.isfinite(output).all():
            found.append(name)
    return hook
