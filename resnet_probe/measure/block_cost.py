"""Why bottleneck blocks are cheaper: per-conv weights and MACs of four block designs.

The paper's Fig. 5 compares a basic block at width d with a bottleneck at 4d (inner width d);
a basic block at 4d shows what the bottleneck saves. ResNeXt (Xie et al. 2017, Table 1) keeps
the bottleneck's cost and spends it on a grouped 3x3: the 32x4d template's inner width is 2d in
32 groups, at about the same weights and MACs as the 1x64d bottleneck.

Counting semantics: weights are conv weights only (k*k*Cin/groups*Cout; BN and shortcuts
excluded, as in the paper's Fig. 5 discussion); MACs are k*k*Cin/groups*Cout*H*W at a fixed
spatial size with stride 1.
Each row's numbers come from running the real block module under FlopCounterMode on the meta
device, and the formula column spells out the same product so a reader can check it by hand.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_probe.zoo.blocks import BasicBlock, Bottleneck
from resnet_probe.zoo.spec import BlockType, ResNetSpec

RESNEXT_TEMPLATE = (32, 4)  # Xie et al. Table 1: cardinality 32, 4 channels per group at d=64


def block_designs(width: int) -> list[tuple[str, str, BasicBlock | Bottleneck]]:
    """Basic at d, bottleneck at 4d (inner d), basic at 4d, and the ResNeXt 32x4d bottleneck at
    4d when the template has at least one channel per group (d >= 16). Each comes as (design,
    template, module): the design names its widths, the template is the same at every width."""
    wide = 4 * width
    basic = ResNetSpec(BlockType.BASIC, (1,), widths=(width,))
    bottleneck = ResNetSpec(BlockType.BOTTLENECK, (1,), widths=(width,))
    groups, per_group = RESNEXT_TEMPLATE
    resnext = bottleneck.replace(groups=groups, width_per_group=per_group)
    with torch.device("meta"):
        designs: list[tuple[str, str, BasicBlock | Bottleneck]] = [
            (f"basic {width}-d", "basic at d", BasicBlock(width, width, 1, basic)),
            (f"bottleneck {wide}-d", "bottleneck at 4d", Bottleneck(wide, width, 1, bottleneck)),
            (f"basic {wide}-d", "basic at 4d", BasicBlock(wide, wide, 1, basic)),
        ]
        if resnext.inner_width(width) > 0:
            designs.append((f"resnext {wide}-d ({groups}x{per_group}d)",
                            f"resnext {groups}x{per_group}d at 4d",
                            Bottleneck(wide, width, 1, resnext)))
    return designs


def block_cost_rows(width: int = 64, size: int = 56) -> list[dict[str, Any]]:
    """One row per conv of each design, measured on the real modules."""
    if width < 1:
        raise ValueError(f"width must be a positive integer: width={width}")
    if size < 1:
        raise ValueError(f"size must be a positive integer: size={size}")
    rows = []
    for design, template, block in block_designs(width):
        block.eval()
        x = torch.empty(1, block.conv1.in_channels, size, size, device="meta")
        with FlopCounterMode(display=False) as counter:
            block(x)
        counts = {key.partition(".")[2]: ops for key, ops in counter.get_flop_counts().items()}
        for name, conv in block.named_children():
            if not isinstance(conv, nn.Conv2d):
                continue
            k, groups = conv.kernel_size[0], conv.groups
            measured_macs = sum(counts.get(name, {}).values()) // 2
            rows.append({
                "design": design,
                "template": template,
                "conv": name,
                "kernel": f"{k}x{k}",
                "in_channels": conv.in_channels,
                "out_channels": conv.out_channels,
                "groups": groups,
                "size": size,
                "weights": conv.weight.numel(),
                "macs": measured_macs,
                "formula": (f"{k}²·{conv.in_channels}" + (f"/{groups}" if groups > 1 else "")
                            + f"·{conv.out_channels}·{size}·{size}"),
            })
    return rows


def block_cost_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per design: total weights and MACs, and the ratio to the bottleneck."""
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = totals.setdefault(row["design"], {"design": row["design"],
                                                  "template": row["template"],
                                                  "weights": 0, "macs": 0})
        entry["weights"] += row["weights"]
        entry["macs"] += row["macs"]
    bottleneck = next(v for k, v in totals.items() if k.startswith("bottleneck"))
    for entry in totals.values():
        entry["macs_vs_bottleneck"] = entry["macs"] / bottleneck["macs"]
    return list(totals.values())
