"""What can be built: blocks, ImageNet- and CIFAR-style ResNets, plain twins, the registry."""

from resnet_probe.zoo.blocks import BasicBlock, Bottleneck, ZeroPadShortcut
from resnet_probe.zoo.registry import (
    UnknownModelError,
    build_model,
    build_on_meta,
    describe_models,
    get_spec,
    list_models,
    name_of,
    plain_twin_name,
    register_model,
)
from resnet_probe.zoo.resnet import LayerInfo, ResNet
from resnet_probe.zoo.spec import (
    BlockType,
    Design,
    Family,
    ResNetSpec,
    ShortcutOption,
    Stem,
    StridePlacement,
)

__all__ = [
    "BasicBlock", "BlockType", "Bottleneck", "Design", "Family", "LayerInfo", "ResNet",
    "ResNetSpec", "ShortcutOption", "Stem", "StridePlacement", "UnknownModelError",
    "ZeroPadShortcut",
    "build_model", "build_on_meta", "describe_models", "get_spec", "list_models", "name_of",
    "plain_twin_name", "register_model",
]
