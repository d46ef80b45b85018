"""One ResNet class for every variant, built from a ResNetSpec.

Module names follow torchvision (conv1, bn1, relu, maxpool, layer1..N, avgpool, fc), so a
torchvision state_dict loads with ``strict=True``. A deep stem (ResNet-C) makes ``conv1`` a
Sequential of three convs as timm does; a pre-activation net has no BN-ReLU in the stem (the
first block's does that) and a ``final_bn``/``final_relu`` before pooling. Every module's place
in the network (stage, block, depth) is recorded in ``model.layer_info`` at build time, so
measurements can group by stage or depth without parsing names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import torch
from torch import nn

from resnet_probe.zoo.blocks import BLOCK_CLASSES, BasicBlock, Bottleneck, conv3x3
from resnet_probe.zoo.spec import ResNetSpec, Stem

STEM_STAGE = "stem"
HEAD_STAGE = "head"


class Role(StrEnum):
    """What a module does in the network."""

    MODEL = "model"
    STAGE = "stage"
    BLOCK = "block"
    MAIN = "main"  # on a block's residual branch (or the plain path)
    SHORTCUT = "shortcut"
    STEM = "stem"
    HEAD = "head"
    TRANSITION = "transition"  # between two blocks outside both (ConvNeXt's downsampling)


@dataclass(frozen=True)
class LayerInfo:
    """Where a module sits. ``depth`` counts weighted layers from the input (1 = the stem)."""

    stage: str  # "stem", "stage1".., "head", or "model" for the root
    role: Role
    block: int | None = None  # index within its stage
    block_name: str | None = None  # e.g. "layer2.0"
    depth: int | None = None  # for a shortcut: the depth of the conv it rejoins after


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec, name: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.name = name or "custom"
        self.conv1 = self._stem_conv(spec)
        if not spec.preact:
            self.bn1 = nn.BatchNorm2d(spec.stem_width)
            self.relu = nn.ReLU(inplace=True)
        if spec.stem is not Stem.CIFAR:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        in_planes = spec.stem_width
        for index, (blocks, width) in enumerate(zip(spec.layers, spec.widths, strict=True)):
            stride = 1 if index == 0 else 2
            stage = nn.Sequential()
            for block_index in range(blocks):
                block_stride = stride if block_index == 0 else 1
                stage.append(BLOCK_CLASSES[spec.block](in_planes, width, block_stride, spec))
                in_planes = width * spec.expansion
            self.add_module(f"layer{index + 1}", stage)

        if spec.preact:  # the last block's sum is not normalized or rectified by any block
            self.final_bn = nn.BatchNorm2d(in_planes)
            self.final_relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, spec.num_classes)
        self._init_weights()
        self.layer_info = self._describe_layers()

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.spec.layers))]

    def blocks(self) -> list[tuple[str, BasicBlock | Bottleneck]]:
        return [(f"layer{s + 1}.{b}", cast(BasicBlock | Bottleneck, block))
                for s, stage in enumerate(self.stages) for b, block in enumerate(stage)]

    def stem_modules(self) -> dict[str, nn.Module]:
        """The modules before the first stage, in the order the forward runs them."""
        names = ("conv1", "bn1", "relu", "maxpool")
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def head_modules(self) -> dict[str, nn.Module]:
        """The modules after the last stage, in order; flatten happens before ``fc``."""
        names = ("final_bn", "final_relu", "avgpool", "fc")
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.stem_modules().values():
            x = module(x)
        for stage in self.stages:
            x = stage(x)
        for name, module in self.head_modules().items():
            if name == "fc":
                x = torch.flatten(x, 1)
            x = module(x)
        return x

    @staticmethod
    def _stem_conv(spec: ResNetSpec) -> nn.Module:
        if spec.stem is Stem.IMAGENET:
            return nn.Conv2d(spec.in_channels, spec.stem_width, 7, stride=2, padding=3, bias=False)
        if spec.stem is Stem.DEEP:
            half = spec.stem_width // 2
            return nn.Sequential(
                conv3x3(spec.in_channels, half, stride=2), nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
                conv3x3(half, half), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
                conv3x3(half, spec.stem_width))
        return conv3x3(spec.in_channels, spec.stem_width)

    def _init_weights(self) -> None:
        # torchvision's scheme (He et al. 2015 fan-out init), which the paper also uses.
        if any(p.is_meta for p in self.parameters()):
            return  # a meta model has shapes only (for counting): nothing to initialise
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if self.spec.zero_init_residual:
            for _, block in self.blocks():
                nn.init.constant_(cast(nn.Parameter, block.branch_end.weight), 0)

    def _describe_layers(self) -> dict[str, LayerInfo]:
        info: dict[str, LayerInfo] = {"": LayerInfo(stage="model", role=Role.MODEL)}
        for stem_name, module in self.stem_modules().items():
            for child_name, _ in module.named_modules(prefix=stem_name):
                info[child_name] = LayerInfo(stage=STEM_STAGE, role=Role.STEM, depth=1)
        depth = 1
        for s, stage in enumerate(self.stages):
            stage_name = f"stage{s + 1}"
            info[f"layer{s + 1}"] = LayerInfo(stage=stage_name, role=Role.STAGE)
            for b, block in enumerate(stage):
                block_name = f"layer{s + 1}.{b}"
                info[block_name] = LayerInfo(stage_name, Role.BLOCK, b, block_name)
                shortcut: list[str] = []
                for child_name, child in block.named_modules(prefix=block_name):
                    if child_name == block_name:
                        continue
                    if child_name.startswith(f"{block_name}.downsample"):
                        shortcut.append(child_name)  # rejoins after the block's last conv
                        continue
                    if isinstance(child, nn.Conv2d):
                        depth += 1
                    # Modules register conv, BN, conv, BN, ..., then the block's one ReLU: a BN
                    # takes the depth of its pair's conv, the shared ReLU the block's last.
                    info[child_name] = LayerInfo(stage_name, Role.MAIN, b, block_name, depth)
                for child_name in shortcut:
                    info[child_name] = LayerInfo(stage_name, Role.SHORTCUT, b, block_name, depth)
        for head_name in self.head_modules():
            if head_name == "fc":
                depth += 1
            info[head_name] = LayerInfo(stage=HEAD_STAGE, role=Role.HEAD, depth=depth)
        return info
