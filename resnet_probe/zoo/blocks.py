"""Residual blocks and their plain twins, with torchvision's module names.

A block is a chain of (conv, BN) pairs named conv1/bn1, conv2/bn2[, conv3/bn3] plus a shortcut.
Two orders exist:

* post-activation (He et al. 2016, torchvision): ``relu(bn(conv(x)))`` per pair, the last
  pair without ReLU, then ``relu(F(x) + shortcut(x))``;
* pre-activation (He et al. 2016b): ``conv(relu(bn(x)))`` per pair and a bare ``F(x) +
  shortcut``; a projection shortcut takes the pre-activated input, an identity the raw one.

A block built with ``residual=False`` keeps every conv and BN and drops the shortcut module and
the add: its output is ``relu(F(x))`` (post-activation) or ``F(x)`` (pre-activation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.zoo.spec import (
    EXPANSION,
    BlockType,
    ResNetSpec,
    ShortcutOption,
    StridePlacement,
)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups,
                     bias=False)


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


def make_shortcut(option: ShortcutOption, in_planes: int, out_planes: int, stride: int,
                  avg_down: bool = False) -> nn.Module | None:
    """None means identity; the caller decides whether there is a shortcut at all.

    With ``avg_down`` (ResNet-D) a strided projection becomes a 2x2 average pool followed by a
    stride-1 1x1 conv, as timm builds it, so no input pixel is skipped.
    """
    changes_shape = stride != 1 or in_planes != out_planes
    if option is ShortcutOption.C or (option is ShortcutOption.B and changes_shape):
        if avg_down:
            pool = (nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
                    if stride > 1 else nn.Identity())
            return nn.Sequential(pool, conv1x1(in_planes, out_planes), nn.BatchNorm2d(out_planes))
        return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))
    if option is ShortcutOption.A and changes_shape:
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return None


class _Block(nn.Module):
    """What every block shares: the pair order, the shortcut, and the join the twin skips.

    Subclasses create ``conv1``/``bn1``... (``_pairs`` names them in order), then call
    ``_attach_join``, so modules register in torchvision's order.
    """

    expansion: int
    _pairs: tuple[tuple[str, str], ...]

    def _attach_join(self, in_planes: int, out_planes: int, stride: int,
                     spec: ResNetSpec) -> None:
        self.residual = spec.shortcut
        self.preact = spec.preact
        self.stride = stride
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (make_shortcut(spec.shortcut_option, in_planes, out_planes, stride,
                                         spec.avg_down) if spec.shortcut else None)

    def extra_repr(self) -> str:
        # What forward does beyond the children; the cost counter keys its cache by repr.
        return f"residual={self.residual}, preact={self.preact}"

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return getattr(self, self._pairs[-1][1])

    @property
    def branch_end(self) -> nn.Module:
        """The module whose zero weight makes the branch output zero (zero_init_residual)."""
        return getattr(self, self._pairs[-1][0]) if self.preact else self.last_bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            return self._forward_preact(x)
        out = x
        for index, (conv, bn) in enumerate(self._pairs):
            out = getattr(self, bn)(getattr(self, conv)(out))
            if index < len(self._pairs) - 1:
                out = self.relu(out)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)

    def _forward_preact(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(getattr(self, self._pairs[0][1])(x))
        out = getattr(self, self._pairs[0][0])(pre)
        for conv, bn in self._pairs[1:]:
            out = getattr(self, conv)(self.relu(getattr(self, bn)(out)))
        if not self.residual:
            return out
        if self.downsample is None:
            return out + x
        # A projection sees the pre-activated input, a zero-pad (option A) the raw one.
        shortcut_input = x if isinstance(self.downsample, ZeroPadShortcut) else pre
        return out + self.downsample(shortcut_input)


class BasicBlock(_Block):
    expansion = EXPANSION[BlockType.BASIC]
    _pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, in_planes: int, planes: int, stride: int, spec: ResNetSpec) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(in_planes if spec.preact else planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self._attach_join(in_planes, planes, stride, spec)


class Bottleneck(_Block):
    expansion = EXPANSION[BlockType.BOTTLENECK]
    _pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_planes: int, planes: int, stride: int, spec: ResNetSpec) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        width = spec.inner_width(planes)
        stride_on_1x1 = stride if spec.stride_placement is StridePlacement.V1 else 1
        self.conv1 = conv1x1(in_planes, width, stride_on_1x1)
        self.bn1 = nn.BatchNorm2d(in_planes if spec.preact else width)
        self.conv2 = conv3x3(width, width, stride // stride_on_1x1, groups=spec.groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_planes)
        self.bn3 = nn.BatchNorm2d(width if spec.preact else out_planes)
        self._attach_join(in_planes, out_planes, stride, spec)


BLOCK_CLASSES = {BlockType.BASIC: BasicBlock, BlockType.BOTTLENECK: Bottleneck}
