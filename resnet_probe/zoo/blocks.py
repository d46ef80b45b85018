"""Residual blocks and their plain twins, with torchvision's module names.

A block built with ``residual=False`` has the same convolutions and batch norms but no shortcut
module and no identity add: its output is ``relu(F(x))`` instead of ``relu(F(x) + x)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.zoo.spec import BlockType, ShortcutOption, StridePlacement


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample spatially and append zero channels; no parameters."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_planes - in_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(
    option: ShortcutOption, in_planes: int, out_planes: int, stride: int
) -> nn.Module | None:
    """None means identity; the caller decides whether there is a shortcut at all."""
    changes_shape = stride != 1 or in_planes != out_planes
    if option is ShortcutOption.C or (option is ShortcutOption.B and changes_shape):
        return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))
    if option is ShortcutOption.A and changes_shape:
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return None


class _Block(nn.Module):
    """What every block shares: the join of branch and shortcut, which the plain twin skips."""

    residual: bool
    downsample: nn.Module | None
    relu: nn.ReLU

    def join(self, branch: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.residual:
            branch = branch + (x if self.downsample is None else self.downsample(x))
        return self.relu(branch)


class BasicBlock(_Block):
    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        residual: bool = True,
        shortcut_option: ShortcutOption = ShortcutOption.B,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.residual = residual
        self.downsample = (
            make_shortcut(shortcut_option, in_planes, planes, stride) if residual else None
        )
        self.stride = stride

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.join(self.bn2(self.conv2(out)), x)


class Bottleneck(_Block):
    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        residual: bool = True,
        shortcut_option: ShortcutOption = ShortcutOption.B,
        stride_placement: StridePlacement = StridePlacement.V1_5,
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        stride_on_1x1 = stride if stride_placement is StridePlacement.V1 else 1
        self.conv1 = conv1x1(in_planes, planes, stride_on_1x1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride // stride_on_1x1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.downsample = (
            make_shortcut(shortcut_option, in_planes, out_planes, stride) if residual else None
        )
        self.stride = stride

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.join(self.bn3(self.conv3(out)), x)


BLOCK_CLASSES: dict[BlockType, type[BasicBlock] | type[Bottleneck]] = {
    BlockType.BASIC: BasicBlock,
    BlockType.BOTTLENECK: Bottleneck,
}
