"""Layer responses (He et al. 2016, Fig. 7): the standard deviation of each 3x3 conv layer's
output after BN and before the addition or ReLU, on a trained net.

In a post-activation net that is the output of the BN paired with each 3x3 conv (the stem's
included); in a pre-activation net, where BN comes before the conv, it is the conv's output,
the last thing before the addition. The std is taken over every element (images, channels,
positions) of the evaluation batch, in float64.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def response_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module whose output is the response) for each 3x3 conv, in forward order."""
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


@torch.no_grad()
def layer_responses(net: nn.Module, x: torch.Tensor) -> list[dict[str, Any]]:
    """One row per 3x3 layer: ``layer``, ``depth`` (weighted layers from the input),
    ``response_std`` and ``rank`` (1 = the largest response)."""
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
    rows = [{"layer": name, "depth": net.layer_info[name].depth,
             "response_std": outputs[name].std(unbiased=False).item()}
            for name, _ in layers]
    order = sorted(range(len(rows)), key=lambda i: -rows[i]["response_std"])
    for rank, index in enumerate(order, start=1):
        rows[index]["rank"] = rank
    return rows
