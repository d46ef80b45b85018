"""What can be built: blocks, ImageNet- and CIFAR-style ResNets, plain twins, the registry."""

from resnet_probe.zoo.blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from resnet_probe.zoo.registry import (
    UnknownModelError,
    build_model,
    build_on_meta,
    get_spec,
    list_models,
    register_model,
)
from resnet_probe.zoo.resnet import LayerInfo, ResNet
from resnet_probe.zoo.spec import BlockType, ResNetSpec, ShortcutOption, Stem, StridePlacement

__all__ = [
    "BasicBlock", "BlockType", "Bottleneck", "LayerInfo", "ResNet", "ResNetSpec",
    "ShortcutOption", "Stem", "StridePlacement", "UnknownModelError", "ZeroPadShortcut",
    "build_model", "build_on_meta", "get_spec", "list_models", "register_model",
]
