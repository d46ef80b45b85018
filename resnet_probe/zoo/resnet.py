"""One ResNet class for both families, built from a ResNetSpec.

Module names follow torchvision (conv1, bn1, relu, maxpool, layer1..N, avgpool, fc), so a
torchvision state_dict loads with ``strict=True``. Every module's place in the network
(stage, block, depth) is recorded in ``model.layer_info`` at build time, so measurements can
group by stage or depth without parsing names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from resnet_probe.zoo.blocks import BLOCK_CLASSES, BasicBlock, Bottleneck
from resnet_probe.zoo.spec import BlockType, ResNetSpec, Stem

STEM_STAGE = "stem"
HEAD_STAGE = "head"


@dataclass(frozen=True)
class LayerInfo:
    """Where a module sits. ``depth`` counts weighted layers from the input (1 = stem conv)."""

    stage: str  # "stem", "stage1".., "head", or "model" for the root
    role: str  # "model", "stage", "block", "main", "shortcut", "stem", "head"
    block: int | None = None  # index within its stage
    block_name: str | None = None  # e.g. "layer2.0"
    depth: int | None = None  # for a shortcut: the depth of the conv it rejoins after


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec, name: str | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.name = name or "custom"
        self.conv1, self.bn1 = self._stem(spec)
        self.relu = nn.ReLU(inplace=True)
        if spec.stem is Stem.IMAGENET:
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        in_planes = spec.stem_width
        for index, (blocks, width) in enumerate(zip(spec.layers, spec.widths, strict=True)):
            stride = 1 if index == 0 else 2
            stage = nn.Sequential()
            for block_index in range(blocks):
                stage.append(self._block(spec, in_planes, width, stride if block_index == 0 else 1))
                in_planes = width * spec.expansion
            self.add_module(f"layer{index + 1}", stage)

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_planes, spec.num_classes)
        self._init_weights()
        self.layer_info = self._describe_layers()

    @property
    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.spec.layers))]

    def blocks(self) -> list[tuple[str, BasicBlock | Bottleneck]]:
        return [(f"layer{s + 1}.{b}", block) for s, stage in enumerate(self.stages)
                for b, block in enumerate(stage)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.spec.stem is Stem.IMAGENET:
            x = self.maxpool(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    @staticmethod
    def _stem(spec: ResNetSpec) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
        if spec.stem is Stem.IMAGENET:
            conv = nn.Conv2d(spec.in_channels, spec.stem_width, 7, stride=2, padding=3, bias=False)
        else:
            conv = nn.Conv2d(spec.in_channels, spec.stem_width, 3, stride=1, padding=1, bias=False)
        return conv, nn.BatchNorm2d(spec.stem_width)

    @staticmethod
    def _block(spec: ResNetSpec, in_planes: int, width: int, stride: int) -> nn.Module:
        common = dict(residual=spec.shortcut, shortcut_option=spec.shortcut_option)
        if spec.block is BlockType.BOTTLENECK:
            return Bottleneck(in_planes, width, stride,
                              stride_placement=spec.stride_placement, **common)
        return BLOCK_CLASSES[spec.block](in_planes, width, stride, **common)

    def _init_weights(self) -> None:
        # torchvision's scheme (He et al. 2015 fan-out init), which the paper also uses.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if self.spec.zero_init_residual:
            for _, block in self.blocks():
                nn.init.constant_(block.last_bn.weight, 0)

    def _describe_layers(self) -> dict[str, LayerInfo]:
        info: dict[str, LayerInfo] = {"": LayerInfo(stage="model", role="model")}
        for name in ("conv1", "bn1", "relu", "maxpool"):
            if hasattr(self, name):
                info[name] = LayerInfo(stage=STEM_STAGE, role="stem", depth=1)
        depth = 1
        for s, stage in enumerate(self.stages):
            stage_name = f"stage{s + 1}"
            info[f"layer{s + 1}"] = LayerInfo(stage=stage_name, role="stage")
            for b, block in enumerate(stage):
                block_name = f"layer{s + 1}.{b}"
                info[block_name] = LayerInfo(stage_name, "block", b, block_name)
                block_info: dict[str, LayerInfo] = {}
                for child_name, child in block.named_modules():
                    if not child_name:
                        continue
                    full = f"{block_name}.{child_name}"
                    if child_name.startswith("downsample"):
                        continue  # filled once the block's last depth is known
                    if isinstance(child, nn.Conv2d):
                        depth += 1
                    # A BN or ReLU shares the depth of the conv it follows.
                    block_info[full] = LayerInfo(stage_name, "main", b, block_name, depth)
                for child_name, _ in block.named_modules():
                    if child_name.startswith("downsample"):
                        block_info[f"{block_name}.{child_name}"] = LayerInfo(
                            stage_name, "shortcut", b, block_name, depth)
                info.update(block_info)
        info["avgpool"] = LayerInfo(stage=HEAD_STAGE, role="head", depth=depth)
        info["fc"] = LayerInfo(stage=HEAD_STAGE, role="head", depth=depth + 1)
        return info
