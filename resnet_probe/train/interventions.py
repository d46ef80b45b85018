"""The causal test of the early-layer freeze, as an intervention on training.

The hypothesis (issue 37): a plain net's exploding gradients at init make huge first steps;
they inflate the norm of every conv that feeds a BN, and because BN makes such a conv's output
blind to its weights' scale, the step SGD takes relative to the layer shrinks as 1/||W||^2, so
the early layers stall. The intervention removes the inflation and nothing else, after every
optimiser step up to step K:

* ``PROJECT`` (the primary variant): each conv that feeds a BN is scaled back to its norm at
  init, W <- c W with c = ||W0|| / ||W||. The conv's bias (if any) is scaled with it and the
  BN's running mean and variance by c and c^2, so the net computes the same function in train
  and in eval mode (exactly, but for BN's eps of 1e-5 against the channel's variance). SGD's
  momentum buffer holds gradients, and a scale-invariant layer's gradient at c W is
  grad(W) / c, so the buffer is divided by c: it is then the sum of the past gradients as they
  would have been taken at the projected weights. (Clearing it instead would switch momentum
  off for K steps, a second change that slows training by itself; keeping it unscaled would
  mix two scales.) Weight decay (1e-4) enters the buffer with the gradients and is scaled
  with them; at that size it does not matter over K steps.
* ``LEARNING_RATE``: the weights are left alone and each such layer's learning rate is
  multiplied by ||W||^2 / ||W0||^2, which undoes the 1/||W||^2 fall of its effective step.
  For plain SGD on a scale-invariant layer the direction the weights take is the same as under
  ``PROJECT``; but the norm then grows geometrically (each step is larger than the last), so
  the weights and the BN statistics run towards float32's range within tens of steps.

``PROJECT`` is primary because it is bounded (every intervened weight keeps its init norm),
leaves the optimiser's parameter groups as the recipe makes them, and its one claim, that the
function is unchanged, is checked directly (tests/test_interventions.py).

The intervened run follows the recipe's schedule and stops after K steps: the causal test
compares its training-error curve over those K steps with the normal run's first K steps,
which the normal run has already recorded, so the test costs K steps per intervened net.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from resnet_probe.errors import InvalidRequest


class InterventionVariant(StrEnum):
    PROJECT = "project"  # weights back to their norm at init after every step
    LEARNING_RATE = "lr"  # per-layer lr x ||W||^2 / ||W0||^2


@dataclass(frozen=True)
class Intervention:
    """Applied after each of the first ``steps`` optimiser steps; the run ends there."""

    steps: int
    variant: InterventionVariant = InterventionVariant.PROJECT

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InvalidRequest(f"an intervention needs at least one step: "
                                 f"steps={self.steps!r}")
        if self.variant not in set(InterventionVariant):
            raise InvalidRequest(f"unknown intervention variant {self.variant!r}; choose one "
                                 f"of: {', '.join(v.value for v in InterventionVariant)}")


def bn_fed_convs(model: nn.Module) -> dict[str, str]:
    """conv name -> the BN it feeds, for every conv whose output goes to a BN and nowhere
    else (found on the model's fx graph; a pre-activation block's conv1 feeds bn2, its last
    conv feeds the add and is not scale-invariant). An untraceable model has none."""
    from resnet_probe.sources.surgery import SurgeryError, trace

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = trace(model).graph
    except SurgeryError:
        return {}
    modules = dict(model.named_modules())
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(str(node.target)), _ConvNd):
            continue
        users = list(node.users)
        if len(users) == 1 and _is_bn_of(users[0], node, modules):
            pairs[str(node.target)] = str(users[0].target)
    return pairs


def _is_bn_of(user: fx.Node, conv: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return (user.op == "call_module" and isinstance(modules.get(str(user.target)), _BatchNorm)
            and len(user.args) == 1 and user.args[0] is conv and not user.kwargs)


def weight_norms(model: nn.Module, convs: dict[str, str]) -> dict[str, float]:
    modules = dict(model.named_modules())
    return {name: modules[name].weight.detach().norm().item() for name in convs}


@torch.no_grad()
def project_to_norms(model: nn.Module, optimizer: torch.optim.Optimizer,
                     convs: dict[str, str], norms: dict[str, float]) -> None:
    """Scale each conv in ``convs`` back to its norm in ``norms``, with its bias, its BN's
    running statistics and its momentum buffer (see the module docstring): the function the
    net computes is unchanged, in train and eval mode."""
    modules = dict(model.named_modules())
    for name, bn_name in convs.items():
        conv, bn = modules[name], modules[bn_name]
        norm = conv.weight.norm().item()
        if not norm > 0 or not norms[name] > 0:
            continue  # a zero weight has no direction to keep
        scale = norms[name] / norm
        conv.weight.mul_(scale)
        if conv.bias is not None:
            conv.bias.mul_(scale)
        if bn.running_mean is not None:
            bn.running_mean.mul_(scale)
            bn.running_var.mul_(scale ** 2)
        for parameter in (conv.weight, conv.bias):
            state = optimizer.state.get(parameter) if parameter is not None else None
            if state and state.get("momentum_buffer") is not None:
                state["momentum_buffer"].div_(scale)


def lr_factors(model: nn.Module, convs: dict[str, str], norms: dict[str, float]
               ) -> dict[str, float]:
    """The ``LEARNING_RATE`` variant's per-layer multiplier: ||W||^2 / ||W0||^2."""
    now = weight_norms(model, convs)
    return {name: (now[name] / norms[name]) ** 2 if norms[name] > 0 else 1.0 for name in convs}


def parameter_groups(model: nn.Module, convs: dict[str, str]) -> list[dict]:
    """One group per intervened conv (its weight and bias, named), then the rest: the
    ``LEARNING_RATE`` variant sets each conv group's lr on its own."""
    modules = dict(model.named_modules())
    groups: list[dict] = []
    taken: set[int] = set()
    for name in convs:
        params = [p for p in modules[name].parameters(recurse=False)]
        taken.update(id(p) for p in params)
        groups.append({"params": params, "conv": name})
    rest = [p for p in model.parameters() if id(p) not in taken]
    return [*groups, {"params": rest, "conv": None}]
