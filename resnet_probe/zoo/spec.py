"""The frozen description of one ResNet: every architectural choice is a field.

A variant is a line of data: ``resnet34`` and ``plain34`` differ only in ``shortcut``, and the
paper's v1 and torchvision's v1.5 differ only in ``stride_placement``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from resnet_probe.errors import InvalidRequest


class BlockType(StrEnum):
    BASIC = "basic"
    BOTTLENECK = "bottleneck"


class ShortcutOption(StrEnum):
    """The paper's Table 3 options for shortcuts that change shape."""

    A = "A"  # zero-padded identity: no parameters (the paper's CIFAR choice)
    B = "B"  # 1x1 projection only where the shape changes (torchvision)
    C = "C"  # 1x1 projection on every block


class StridePlacement(StrEnum):
    """Where a bottleneck block downsamples; basic blocks always stride their first 3x3."""

    V1 = "1x1"  # the paper: stride on the first 1x1 conv
    V1_5 = "3x3"  # torchvision: stride on the 3x3 conv (more MACs, same parameters)


class Stem(StrEnum):
    IMAGENET = "imagenet"  # 7x7/2 conv + 3x3/2 max-pool
    DEEP = "deep"  # ResNet-C (He et al. 2019): three 3x3 convs (stem_width/2, /2, stem_width)
    CIFAR = "cifar"  # 3x3/1 conv


class Family(StrEnum):
    """The dataset family a stem is made for; it sets the standard input size and widths."""

    IMAGENET = "imagenet"
    CIFAR = "cifar"


class Design(StrEnum):
    """The design choice a variant is known by; derived from the spec's fields, never stored."""

    RESNET = "resnet"
    RESNEXT = "resnext"  # grouped 3x3 in the bottleneck (Xie et al. 2017)
    WIDE = "wide"  # wider than the family's standard (Zagoruyko & Komodakis 2016)
    PREACT = "preact"  # BN-ReLU before each conv (He et al. 2016b)
    RESNET_C = "resnet-c"  # deep 3x3 stem (He et al. 2019)
    RESNET_D = "resnet-d"  # deep stem and average-pooled projection (He et al. 2019)


EXPANSION = {BlockType.BASIC: 1, BlockType.BOTTLENECK: 4}
CONVS_PER_BLOCK = {BlockType.BASIC: 2, BlockType.BOTTLENECK: 3}
STANDARD_WIDTHS = {Family.IMAGENET: (64, 128, 256, 512), Family.CIFAR: (16, 32, 64)}
DEFAULT_INPUT_SIZE = {Family.IMAGENET: 224, Family.CIFAR: 32}
BASE_WIDTH = 64  # torchvision's width_per_group default: the bottleneck's inner width is planes
# Upper bounds: far above every published net (resnet1202 has 200 blocks a stage, wrn28_10 640
# channels), low enough that a typo cannot build a model that exhausts memory while counting.
LIMITS = {"stages": 8, "blocks_per_stage": 2048, "channels": 16384, "num_classes": 1_000_000,
          "input_size": 8192}


@dataclass(frozen=True)
class ResNetSpec:
    """One ResNet (or plain twin). Defaults are torchvision's ImageNet choices."""

    block: BlockType
    layers: tuple[int, ...]  # blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck output is 4x this
    stem: Stem = Stem.IMAGENET
    stem_width: int = 64
    in_channels: int = 3  # 1 for grayscale data such as FashionMNIST or digits
    num_classes: int = 1000
    shortcut: bool = True  # False builds the plain twin: no identity add, no projection
    shortcut_option: ShortcutOption = ShortcutOption.B
    stride_placement: StridePlacement = StridePlacement.V1_5
    zero_init_residual: bool = False  # Goyal et al.: the branch's last BN (conv if preact) is 0
    # Bottleneck inner width = int(planes * width_per_group / 64) * groups, as in torchvision:
    # ResNeXt-50 32x4d is groups=32, width_per_group=4; Wide ResNet-50-2 is width_per_group=128.
    groups: int = 1
    width_per_group: int = BASE_WIDTH
    preact: bool = False  # He et al. 2016b: BN-ReLU-conv order, BN-ReLU before pooling
    avg_down: bool = False  # ResNet-D: 2x2 average pool, then a stride-1 1x1 projection

    def __post_init__(self) -> None:
        # Coerce strings so that specs built from text or JSON compare equal to typed ones.
        for name, enum in _ENUM_FIELDS.items():
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                choices = ", ".join(repr(m.value) for m in enum)
                raise ValueError(f"{name} must be one of {choices}: {name}={value!r}") from None
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "widths", tuple(self.widths))
        self._validate()

    def _validate(self) -> None:
        if not self.layers:
            raise ValueError(f"layers must name at least one stage: layers={self.layers}")
        if len(self.layers) > LIMITS["stages"]:
            raise ValueError(f"at most {LIMITS['stages']} stages: layers={self.layers}")
        for count in self.layers:
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"every stage needs at least 1 block: layers={self.layers}")
            if count > LIMITS["blocks_per_stage"]:
                raise ValueError(f"at most {LIMITS['blocks_per_stage']} blocks per stage: "
                                 f"layers={self.layers}")
        if len(self.widths) != len(self.layers):
            raise ValueError(
                f"widths needs one entry per stage ({len(self.layers)}): widths={self.widths}"
            )
        for name in ("stem_width", "in_channels", "num_classes", "groups", "width_per_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer: {name}={value!r}")
            limit = LIMITS["num_classes" if name == "num_classes" else "channels"]
            if value > limit:
                raise ValueError(f"{name} must be at most {limit:,}: {name}={value}")
        for width in self.widths:
            if not isinstance(width, int) or width < 1:
                raise ValueError(f"every width must be a positive integer: widths={self.widths}")
            if width * self.expansion > LIMITS["channels"]:
                raise ValueError(f"every stage's output must have at most {LIMITS['channels']:,} "
                                 f"channels: widths={self.widths} (x{self.expansion})")
        if self.zero_init_residual and not self.shortcut:
            raise ValueError(
                "zero_init_residual=True needs shortcuts: on a plain net it zeroes the signal"
            )
        if self.block is BlockType.BASIC and (self.groups, self.width_per_group) != (1, BASE_WIDTH):
            raise ValueError(
                f"groups and width_per_group apply to bottleneck blocks only (basic blocks have "
                f"no inner width; widen them with widths): block=basic, groups={self.groups}, "
                f"width_per_group={self.width_per_group}"
            )
        if self.avg_down and self.shortcut_option is ShortcutOption.A:
            raise ValueError(
                "avg_down pools in front of a 1x1 projection, and option A shortcuts have none: "
                "avg_down=true with shortcut_option=A; use shortcut_option=B or C"
            )
        if self.stem is Stem.DEEP and self.stem_width % 2:
            raise ValueError(f"a deep stem halves stem_width for its first two convs, so it "
                             f"must be even: stem=deep, stem_width={self.stem_width}")

    @property
    def family(self) -> Family:
        return Family.CIFAR if self.stem is Stem.CIFAR else Family.IMAGENET

    @property
    def design(self) -> Design:
        if self.groups > 1:
            return Design.RESNEXT
        standard = STANDARD_WIDTHS[self.family]
        wider = any(w > base for w, base in zip(self.widths, standard, strict=False))
        if self.width_per_group > BASE_WIDTH or wider:
            return Design.WIDE
        if self.preact:
            return Design.PREACT
        if self.avg_down:
            return Design.RESNET_D
        if self.stem is Stem.DEEP:
            return Design.RESNET_C
        return Design.RESNET

    @property
    def expansion(self) -> int:
        return EXPANSION[self.block]

    def inner_width(self, planes: int) -> int:
        """Channels of a bottleneck's grouped 3x3 conv (torchvision's formula)."""
        return int(planes * (self.width_per_group / BASE_WIDTH)) * self.groups

    @property
    def depth(self) -> int:
        """Weighted layers on the main path: stem + block convs + fc (the paper's count; a deep
        stem counts as one layer, as the names resnet50c/d do)."""
        return 2 + CONVS_PER_BLOCK[self.block] * sum(self.layers)

    @property
    def default_input_size(self) -> int:
        return DEFAULT_INPUT_SIZE[self.family]

    @property
    def total_stride(self) -> int:
        stem_stride = 1 if self.stem is Stem.CIFAR else 4
        return stem_stride * 2 ** (len(self.layers) - 1)

    def replace(self, **overrides: Any) -> ResNetSpec:
        unknown = sorted(set(overrides) - set(field_names()))
        if unknown:
            raise ValueError(
                f"unknown spec field {', '.join(unknown)}; fields are: {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **overrides)

    def check_input_size(self, height: int, width: int | None = None) -> None:
        """Reject inputs whose last stage would see less than one real pixel."""
        width = height if width is None else width
        for value in (height, width):
            if not isinstance(value, int) or value < 1:
                raise InvalidRequest(f"input size must be a positive integer: input_size={value!r}")
            if value > LIMITS["input_size"]:
                raise InvalidRequest(f"input size must be at most {LIMITS['input_size']}: "
                                 f"input_size={value}")
        if min(height, width) < self.total_stride:
            raise InvalidRequest(
                f"input size {height}x{width} is smaller than the network's total stride "
                f"{self.total_stride} ({self.family} stem and {len(self.layers)} stages); "
                f"use at least {self.total_stride}x{self.total_stride} "
                f"(standard: {self.default_input_size})"
            )


_ENUM_FIELDS = {
    "block": BlockType,
    "stem": Stem,
    "shortcut_option": ShortcutOption,
    "stride_placement": StridePlacement,
}


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ResNetSpec)]
