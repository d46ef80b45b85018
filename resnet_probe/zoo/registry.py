"""Named variants, in the spirit of torchvision's ``list_models`` / ``get_model``.

Besides registered names, every function here accepts the textual form
``BASE[field=value,...]``: BASE is a registered name or a family (``imagenet``, ``cifar``) and
the fields are ResNetSpec's. Stage lists use dashes. Examples::

    resnet50[stride_placement=1x1]           the paper's v1 ResNet-50
    cifar[layers=9-9-9]                      ResNet-56 written out
    imagenet[block=bottleneck,layers=3-4-23-3,shortcut=false]
    resnet20[shortcut_option=B,in_channels=1]
    resnet50[groups=32,width_per_group=4]    ResNeXt-50 32x4d written out
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

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


MAX_NAME_LENGTH = 300  # the longest spec text written out in full is well under 200


def get_spec(name: str) -> ResNetSpec:
    """The spec of a registered name or of a ``BASE[field=value,...]`` text."""
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"model text is {len(name)} characters long ({name[:40]}...); names "
                         f"and BASE[field=value,...] texts have at most {MAX_NAME_LENGTH}")
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


def describe_models(include: str | list[str] | None = None,
                    exclude: str | list[str] | None = None) -> list[dict[str, object]]:
    """One row per registered name: family, design, block, depth, shortcut and params."""
    rows: list[dict[str, object]] = []
    for name in list_models(include=include, exclude=exclude):
        spec = get_spec(name)
        rows.append({"name": name, "family": spec.family, "design": spec.design.value,
                     "block": spec.block.value, "depth": spec.depth, "shortcut": spec.shortcut,
                     "shortcut_option": spec.shortcut_option.value if spec.shortcut else None,
                     "params": sum(p.numel() for p in build_on_meta(spec).parameters())})
    return rows


def name_of(spec: ResNetSpec) -> str | None:
    """The first registered name whose spec equals ``spec``, if any."""
    return next((name for name, known in _REGISTRY.items() if known == spec), None)


def build_model(name_or_spec: str | ResNetSpec, **overrides: object) -> ResNet:
    """Build a model; ``overrides`` replace spec fields, e.g.
    ``build_model("resnet20", in_channels=1)``."""
    if isinstance(name_or_spec, ResNetSpec):
        spec, name = name_or_spec, "custom"
    else:
        spec, name = get_spec(name_or_spec), name_or_spec
    if overrides:
        spec = spec.replace(**overrides)
    return ResNet(spec, name=name)


def build_on_meta(name_or_spec: str | ResNetSpec, **overrides: object) -> ResNet:
    """A model with shapes but no storage: for counting, not for running numbers."""
    with torch.device("meta"), _no_parameter_init():
        return build_model(name_or_spec, **overrides)


_INIT_FUNCTIONS = ("uniform_", "normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                   "kaiming_normal_")


@contextlib.contextmanager
def _no_parameter_init() -> Iterator[None]:
    """torch.nn.init as no-ops, as transformers' ``no_init_weights`` does: meta tensors have no
    values, and initialising them op by op is most of the time a build on meta takes."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    try:
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


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
    match = re.match(r"^(\D*)([0-9]{1,9})$", name)
    return (match[1], int(match[2])) if match else (name, None)


def _parse_fields(text: str, whole: str) -> dict[str, object]:
    types = {f.name: str(f.type) for f in dataclasses.fields(ResNetSpec)}
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
        if key in fields:
            raise ValueError(f"in {whole!r}: field {key!r} is given twice; give it once")
        fields[key] = _parse_value(key, value, types[key], whole)
    return fields


_ASCII_INT = re.compile(r"[0-9]{1,9}")  # int() would take "１２", "1_000" and 5000 digits


def _int(text: str) -> int:
    if not _ASCII_INT.fullmatch(text):
        raise ValueError
    return int(text)


def _parse_value(key: str, value: str, type_name: str, whole: str) -> object:
    try:
        if type_name.startswith("tuple"):
            return tuple(_int(v) for v in value.split("-"))
        if type_name == "int":
            return _int(value)
        if type_name == "bool":
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
    except ValueError:
        expected = {"int": "an integer of at most 9 ASCII digits", "bool": "true or false"}.get(
            type_name, "dash-separated integers (ASCII digits) such as 3-4-6-3")
        raise ValueError(f"in {whole!r}: {key}={value!r} is not {expected}") from None
    return value  # enums are checked by ResNetSpec itself


def plain_twin_name(name: str) -> str:
    """The registered name of a residual net's plain twin: "resnet" becomes "plain" (resnet34 ->
    plain34, wide_resnet50_2 -> wide_plain50_2); a name without it gains "plain_"
    (resnext50_32x4d -> plain_resnext50_32x4d). Any spec's twin is also NAME[shortcut=false]."""
    return name.replace("resnet", "plain", 1) if "resnet" in name else f"plain_{name}"


IMAGENET_LAYERS = {
    18: (BlockType.BASIC, (2, 2, 2, 2)),
    34: (BlockType.BASIC, (3, 4, 6, 3)),
    50: (BlockType.BOTTLENECK, (3, 4, 6, 3)),
    101: (BlockType.BOTTLENECK, (3, 4, 23, 3)),
    152: (BlockType.BOTTLENECK, (3, 8, 36, 3)),
}
CIFAR: dict[str, Any] = dict(widths=(16, 32, 64), stem=Stem.CIFAR, stem_width=16, num_classes=10,
             shortcut_option=ShortcutOption.A)


def _register_with_twin(name: str, spec: ResNetSpec) -> None:
    register_model(name, spec)
    register_model(plain_twin_name(name), spec.replace(shortcut=False))


def _register_zoo() -> None:
    residual: dict[str, ResNetSpec] = {}
    for depth, (block, layers) in IMAGENET_LAYERS.items():
        residual[f"resnet{depth}"] = ResNetSpec(block, layers)
    for depth in (20, 32, 44, 56, 110, 1202):
        n = (depth - 2) // 6
        residual[f"resnet{depth}"] = ResNetSpec(BlockType.BASIC, (n, n, n), **CIFAR)
    # Tiny variants: one block per stage, for fast tests and smoke runs.
    residual["resnet8"] = ResNetSpec(BlockType.BASIC, (1, 1, 1), **CIFAR)
    residual["resnet10"] = ResNetSpec(BlockType.BASIC, (1, 1, 1, 1))
    residual["resnet14"] = ResNetSpec(BlockType.BOTTLENECK, (1, 1, 1, 1))
    # The rest of the family. torchvision's and timm's names and layouts.
    bottleneck50, bottleneck101 = IMAGENET_LAYERS[50][1], IMAGENET_LAYERS[101][1]
    for name, layers, groups, width_per_group in (
            ("resnext50_32x4d", bottleneck50, 32, 4), ("resnext101_32x8d", bottleneck101, 32, 8),
            ("resnext101_64x4d", bottleneck101, 64, 4), ("wide_resnet50_2", bottleneck50, 1, 128),
            ("wide_resnet101_2", bottleneck101, 1, 128)):
        residual[name] = ResNetSpec(BlockType.BOTTLENECK, layers, groups=groups,
                                    width_per_group=width_per_group)
    residual["resnet50c"] = ResNetSpec(BlockType.BOTTLENECK, bottleneck50, stem=Stem.DEEP)
    residual["resnet50d"] = residual["resnet50c"].replace(avg_down=True)
    residual["resnet101d"] = residual["resnet50d"].replace(layers=bottleneck101)
    # He et al. 2016b (CIFAR): pre-activation; bottleneck nets use 1x1 projections (option B).
    residual["preact_resnet110"] = residual["resnet110"].replace(preact=True)
    for depth in (164, 1001):
        n = (depth - 2) // 9
        residual[f"preact_resnet{depth}"] = ResNetSpec(
            BlockType.BOTTLENECK, (n, n, n), preact=True,
            **{**CIFAR, "shortcut_option": ShortcutOption.B})
    # Zagoruyko & Komodakis 2016: WRN-d-k, pre-activation basic blocks at 16k/32k/64k
    # channels, a 1x1 projection where the shape changes; d = 6n+4 counts the stem conv, the
    # block convs and the three projections.
    for depth, k in ((16, 8), (28, 10), (40, 4)):
        n = (depth - 4) // 6
        residual[f"wrn{depth}_{k}"] = ResNetSpec(
            BlockType.BASIC, (n, n, n), preact=True,
            **{**CIFAR, "widths": (16 * k, 32 * k, 64 * k), "shortcut_option": ShortcutOption.B})
    for name, spec in residual.items():
        _register_with_twin(name, spec)


_register_zoo()
