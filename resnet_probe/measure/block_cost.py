"""Why bottleneck blocks are cheaper: per-conv weights and MACs of three block designs.

Counting semantics: weights are conv weights only (k*k*Cin*Cout; BN and shortcuts excluded, as in
the paper's Fig. 5 discussion); MACs are k*k*Cin*Cout*H*W at a fixed spatial size with stride 1.
Each row's numbers come from running the real block module under FlopCounterMode on the meta
device, and the formula column spells out the same product so a reader can check it by hand.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_probe.zoo.blocks import BasicBlock, Bottleneck


def block_designs(width: int) -> list[tuple[str, nn.Module]]:
    """The paper's comparison: basic at d, bottleneck at 4d (inner d), basic at 4d."""
    wide = 4 * width
    with torch.device("meta"):
        return [
            (f"basic {width}-d", BasicBlock(width, width)),
            (f"bottleneck {wide}-d", Bottleneck(wide, width)),
            (f"basic {wide}-d", BasicBlock(wide, wide)),
        ]


def block_cost_rows(width: int = 64, size: int = 56) -> list[dict[str, Any]]:
    """One row per conv of each design, measured on the real modules."""
    if width < 1:
        raise ValueError(f"width must be a positive integer: width={width}")
    if size < 1:
        raise ValueError(f"size must be a positive integer: size={size}")
    rows = []
    for design, block in block_designs(width):
        block.eval()
        x = torch.empty(1, block.conv1.in_channels, size, size, device="meta")
        with FlopCounterMode(display=False) as counter:
            block(x)
        counts = {key.partition(".")[2]: ops for key, ops in counter.get_flop_counts().items()}
        for name, conv in block.named_children():
            if not isinstance(conv, nn.Conv2d):
                continue
            k = conv.kernel_size[0]
            measured_macs = sum(counts.get(name, {}).values()) // 2
            rows.append({
                "design": design,
                "conv": name,
                "kernel": f"{k}x{k}",
                "in_channels": conv.in_channels,
                "out_channels": conv.out_channels,
                "size": size,
                "weights": conv.weight.numel(),
                "macs": measured_macs,
                "formula": f"{k}²·{conv.in_channels}·{conv.out_channels}·{size}·{size}",
            })
    return rows


def block_cost_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per design: total weights and MACs, and the ratio to the bottleneck."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = totals.setdefault(row["design"], {"design": row["design"], "weights": 0, "macs": 0})
        entry["weights"] += row["weights"]
        entry["macs"] += row["macs"]
    bottleneck = next(v for k, v in totals.items() if k.startswith("bottleneck"))
    for entry in totals.values():
        entry["macs_vs_bottleneck"] = entry["macs"] / bottleneck["macs"]
    return list(totals.values())
