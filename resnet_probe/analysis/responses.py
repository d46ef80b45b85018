"""Layer responses (He et al. 2016, Fig. 7): the standard deviation of each 3x3 conv layer's
output after BN and before the addition or ReLU, on a trained net.

In a post-activation net that is the output of the BN paired with each 3x3 conv (the stem's
included); in a pre-activation net, where BN comes before the conv, it is the conv's output,
the last thing before the addition. The std is taken over every element (images, channels,
positions) of the evaluation batch, in float64.

Each row also says how far training moved the layer's BN scales: ``gamma_drift``, the mean
over channels of |γ - 1| (NaN for a layer that is not a BN). A BN output with γ = 1 and β = 0
has unit variance whatever came before it, so until γ moves the responses of any two nets
agree; ``analysis.claims`` gates the claim on it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from resnet_probe.sources.surgery import traced
from resnet_probe.zoo import ResNet


def response_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module whose output is the response) for each 3x3 conv, in forward order. A
    foreign net's are read from its fx graph: each BN fed directly by a 3x3 conv."""
    if not isinstance(net, ResNet):
        modules = dict(net.named_modules())
        layers = []
        for node in traced(net).graph.nodes:
            if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
                continue
            source = node.args[0]
            if (isinstance(source, fx.Node) and source.op == "call_module"
                    and isinstance(modules[source.target], nn.Conv2d)
                    and modules[source.target].kernel_size == (3, 3)):
                layers.append((node.target, modules[node.target]))
        return layers
    layers = []
    stem = net.conv1
    if isinstance(stem, nn.Conv2d) and stem.kernel_size == (3, 3) and hasattr(net, "bn1"):
        layers.append(("bn1", net.bn1))
    for block_name, block in net.blocks():
        for conv_name, bn_name in block._pairs:
            conv = getattr(block, conv_name)
            if conv.kernel_size != (3, 3):
                continue
            name, module = ((conv_name, conv) if block.preact
                            else (bn_name, getattr(block, bn_name)))
            layers.append((f"{block_name}.{name}", module))
    return layers


def gamma_drift(module: nn.Module) -> float:
    """Mean over channels of |γ - 1| of a BN with a learned scale; NaN otherwise."""
    if not isinstance(module, nn.modules.batchnorm._BatchNorm) or module.weight is None:
        return math.nan
    return (module.weight.detach().double() - 1).abs().mean().item()


@torch.no_grad()
def layer_responses(net: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
    """One row per 3x3 layer: ``layer``, ``depth`` (weighted layers from the input),
    ``response_std``, ``gamma_drift`` and ``rank`` (1 = the largest response)."""
    layers = response_layers(net)
    outputs: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(
        lambda _m, _i, out, name=name: outputs.__setitem__(name, out.detach().double()))
        for name, module in layers]
    try:
        net.eval()
        net(x)
    finally:
        for handle in handles:
            handle.remove()
    info = getattr(net, "layer_info", {})
    rows: list[dict[str, Any]] = [
        {"layer": name, "depth": info[name].depth if name in info else None,
         "response_std": outputs[name].std(unbiased=False).item(),
         "gamma_drift": gamma_drift(module)}
        for name, module in layers]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["response_std"])
    for rank, index in enumerate(order, start=1):
        rows[index]["rank"] = rank
    return rows
