"""Named variants, in the spirit of torchvision's ``list_models`` / ``get_model``.

Besides registered names, every function here accepts the textual form
``BASE[field=value,...]``: BASE is a registered name or a family (``imagenet``, ``cifar``) and
the fields are ResNetSpec's. Stage lists use dashes. Examples::

    resnet50[stride_placement=1x1]           the paper's v1 ResNet-50
    cifar[layers=9-9-9]                      ResNet-56 written out
    imagenet[block=bottleneck,layers=3-4-23-3,shortcut=false]
    resnet20[shortcut_option=B,in_channels=1]
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re

import torch

from resnet_probe.zoo.resnet import ResNet
from resnet_probe.zoo.spec import BlockType, ResNetSpec, ShortcutOption, Stem, field_names

_REGISTRY: dict[str, ResNetSpec] = {}


class UnknownModelError(ValueError):
    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown model {name!r}{hint} (`resnet-probe list` shows every name; "
            f"custom layouts use BASE[field=value,...])"
        )
        self.name = name
        self.suggestions = suggestions


def register_model(name: str, spec: ResNetSpec) -> None:
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = spec


def list_models(
    include: str | list[str] | None = None, exclude: str | list[str] | None = None
) -> list[str]:
    """Registered names in zoo order, filtered by glob patterns (``include="plain*"``)."""
    names = list(_REGISTRY)
    if include is not None:
        patterns = [include] if isinstance(include, str) else include
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if exclude is not None:
        patterns = [exclude] if isinstance(exclude, str) else exclude
        names = [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return names


_FAMILY_BASES = {"imagenet": "resnet18", "cifar": "resnet20"}
_TEXT_FORM = re.compile(r"^(?P<base>[\w.-]+)\[(?P<fields>[^\]]*)\]$")


def get_spec(name: str) -> ResNetSpec:
    """The spec of a registered name or of a ``BASE[field=value,...]`` text."""
    name = name.strip()
    if name in _REGISTRY:
        return _REGISTRY[name]
    match = _TEXT_FORM.match(name)
    if not match:
        if "[" in name or "]" in name:
            raise ValueError(
                f"cannot read model text {name!r}: write BASE[field=value,...], "
                f"e.g. resnet50[stride_placement=1x1]"
            )
        raise UnknownModelError(name, _close_matches(name))
    base = match["base"]
    base_name = _FAMILY_BASES.get(base, base)
    if base_name not in _REGISTRY:
        raise UnknownModelError(base, _close_matches(base))
    return _REGISTRY[base_name].replace(**_parse_fields(match["fields"], name))


def build_model(name_or_spec: str | ResNetSpec, **overrides: object) -> ResNet:
    """Build a model; ``overrides`` replace spec fields (``build_model("resnet20", in_channels=1)``)."""
    if isinstance(name_or_spec, ResNetSpec):
        spec, name = name_or_spec, "custom"
    else:
        spec, name = get_spec(name_or_spec), name_or_spec
    if overrides:
        spec = spec.replace(**overrides)
    return ResNet(spec, name=name)


def build_on_meta(name_or_spec: str | ResNetSpec, **overrides: object) -> ResNet:
    """A model with shapes but no storage: for counting, not for running numbers."""
    with torch.device("meta"):
        return build_model(name_or_spec, **overrides)


def _close_matches(name: str) -> list[str]:
    candidates = list(_REGISTRY) + list(_FAMILY_BASES)
    matches = difflib.get_close_matches(name, candidates, n=6, cutoff=0.6)
    # "resnet35" should suggest resnet34 before resnet56: same prefix, nearest depth first.
    prefix, number = _split_depth(name)

    def nearness(candidate: str) -> tuple[bool, float]:
        other_prefix, other_number = _split_depth(candidate)
        if number is None or other_number is None:
            return (other_prefix != prefix, float("inf"))
        return (other_prefix != prefix, abs(other_number - number))

    return sorted(matches, key=nearness)[:3]


def _split_depth(name: str) -> tuple[str, int | None]:
    match = re.match(r"^(\D*)(\d+)$", name)
    return (match[1], int(match[2])) if match else (name, None)


def _parse_fields(text: str, whole: str) -> dict[str, object]:
    types = {f.name: f.type for f in dataclasses.fields(ResNetSpec)}
    fields: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"in {whole!r}: expected field=value, got {item!r}")
        if key not in types:
            raise ValueError(
                f"in {whole!r}: unknown field {key!r}; fields are: {', '.join(field_names())}"
            )
        fields[key] = _parse_value(key, value, types[key], whole)
    return fields


def _parse_value(key: str, value: str, type_name: str, whole: str) -> object:
    try:
        if type_name.startswith("tuple"):
            return tuple(int(v) for v in value.split("-"))
        if type_name == "int":
            return int(value)
        if type_name == "bool":
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
    except ValueError:
        expected = {"int": "an integer", "bool": "true or false"}.get(
            type_name, "dash-separated integers such as 3-4-6-3")
        raise ValueError(f"in {whole!r}: {key}={value!r} is not {expected}") from None
    return value  # enums are checked by ResNetSpec itself


def _register_zoo() -> None:
    imagenet_layers = {
        18: (BlockType.BASIC, (2, 2, 2, 2)),
        34: (BlockType.BASIC, (3, 4, 6, 3)),
        50: (BlockType.BOTTLENECK, (3, 4, 6, 3)),
        101: (BlockType.BOTTLENECK, (3, 4, 23, 3)),
        152: (BlockType.BOTTLENECK, (3, 8, 36, 3)),
    }
    cifar = dict(widths=(16, 32, 64), stem=Stem.CIFAR, stem_width=16, num_classes=10,
                 shortcut_option=ShortcutOption.A)
    for prefix, shortcut in (("resnet", True), ("plain", False)):
        for depth, (block, layers) in imagenet_layers.items():
            register_model(f"{prefix}{depth}", ResNetSpec(block, layers, shortcut=shortcut))
    for prefix, shortcut in (("resnet", True), ("plain", False)):
        for depth in (20, 32, 44, 56, 110, 1202):
            n = (depth - 2) // 6
            register_model(f"{prefix}{depth}",
                           ResNetSpec(BlockType.BASIC, (n, n, n), shortcut=shortcut, **cifar))
    # Tiny variants: one block per stage, for fast tests and smoke runs.
    for prefix, shortcut in (("resnet", True), ("plain", False)):
        register_model(f"{prefix}8", ResNetSpec(BlockType.BASIC, (1, 1, 1), shortcut=shortcut,
                                                **cifar))
        register_model(f"{prefix}10", ResNetSpec(BlockType.BASIC, (1, 1, 1, 1), shortcut=shortcut))
        register_model(f"{prefix}14", ResNetSpec(BlockType.BOTTLENECK, (1, 1, 1, 1),
                                                 shortcut=shortcut))


_register_zoo()
