"""A MODEL (text or module) resolved into a ModelSource, once, at the edge.

``resolve`` reads the grammar (``sources.grammar``), checks what it can before anything is
built: a zoo name or spec, a torchvision or timm model that the installed library has (else the
close names), a factory that its file or module defines and whose signature takes the builder
arguments. Nothing is built here except by a factory's module being imported.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

from torch import nn

from resnet_probe.errors import InvalidRequest
from resnet_probe.sources.errors import SourceError
from resnet_probe.sources.foreign import bind_arguments, load_factory
from resnet_probe.sources.grammar import (
    TIMM,
    TORCHVISION,
    builder_arguments,
    is_file_location,
    plain_prefix,
)
from resnet_probe.sources.inputs import InputSpec
from resnet_probe.sources.source import ModelSource, SourceKind
from resnet_probe.zoo import ResNetSpec, get_spec

INSTALL_HINT = ("install the optional extra: pip install 'resnet-probe[models]' (on a CPU-only "
                "machine: torch==2.14.1 torchvision==0.29.1 timm)")


def resolve(model: str | nn.Module | ModelSource, in_channels: int | None = None,
            input_size: int | None = None, name: str | None = None,
            weights: Path | None = None, inputs: InputSpec | None = None) -> ModelSource:
    """A MODEL (see the package docstring) as a ModelSource; ``in_channels`` and
    ``input_size`` say what a foreign model takes (zoo models know); ``inputs`` a forward
    that takes more than one image."""
    if isinstance(model, ModelSource):
        return model
    for what, value in (("in_channels", in_channels), ("input_size", input_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise InvalidRequest(f"{what} must be a positive integer: {what}={value!r}")
    source = _resolve(model, in_channels, input_size, name)
    source.weights = Path(weights) if weights is not None else None
    source.inputs = inputs
    return source


def _resolve(model: str | nn.Module, in_channels: int | None, input_size: int | None,
             name: str | None) -> ModelSource:
    if isinstance(model, nn.Module):
        label = name or getattr(model, "name", None) or type(model).__name__
        spec = getattr(model, "spec", None) if isinstance(getattr(model, "spec", None),
                                                          ResNetSpec) else None
        return ModelSource(label, SourceKind.MODULE, spec=None, module=model,
                           in_channels=in_channels or (spec.in_channels if spec else 3),
                           default_input_size=input_size or (spec.default_input_size
                                                             if spec else 224))
    text = str(model).strip()
    plain = plain_prefix(text)
    if plain is not None:
        options, inner_text = plain
        inner = resolve(inner_text, in_channels, input_size)
        return ModelSource(text, SourceKind.PLAIN, in_channels=inner.in_channels,
                           default_input_size=inner.default_input_size, inner=inner,
                           reinit="reinit" in options, partial="partial" in options)
    base, arguments = builder_arguments(text)
    if base.startswith(TORCHVISION):
        return _torchvision(text, base, arguments, in_channels, input_size)
    if base.startswith(TIMM):
        return _timm(text, base, arguments, in_channels, input_size)
    if ":" in base:
        return _factory(text, base, arguments, in_channels, input_size)
    try:
        spec = get_spec(text)
    except ValueError as error:
        raise SourceError(f"{error}; or give torchvision:NAME, timm:NAME, plain:MODEL, "
                          f"path/to/file.py:factory or package.module:factory") from None
    return ModelSource(text, SourceKind.ZOO, spec=spec, in_channels=spec.in_channels,
                       default_input_size=spec.default_input_size)


def _torchvision(text: str, base: str, arguments: dict[str, Any], in_channels: int | None,
                 input_size: int | None) -> ModelSource:
    try:
        import torchvision
    except Exception as error:  # noqa: BLE001 - a broken install raises more than ImportError
        raise SourceError(f"{text!r} needs torchvision, which does not import here "
                          f"({type(error).__name__}: {error}); {INSTALL_HINT}") from None
    name = base[len(TORCHVISION):]
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise SourceError(f"torchvision has no classification model {name!r}; close names: "
                          f"{', '.join(_close(name, available)) or 'none'} (all: "
                          f"torchvision.models.list_models())")
    size = arguments.get("image_size") if isinstance(arguments.get("image_size"), int) else None
    return ModelSource(text, SourceKind.TORCHVISION, in_channels=in_channels or 3,
                       default_input_size=input_size or size or 224, builder_args=arguments,
                       fingerprint={"torchvision": torchvision.__version__, "name": name,
                                    "arguments": arguments})


def _timm(text: str, base: str, arguments: dict[str, Any], in_channels: int | None,
          input_size: int | None) -> ModelSource:
    try:
        import timm
    except Exception as error:  # noqa: BLE001
        raise SourceError(f"{text!r} needs timm, which does not import here "
                          f"({type(error).__name__}: {error}); {INSTALL_HINT}") from None
    name = base[len(TIMM):]
    available = timm.list_models()
    if name not in available:
        raise SourceError(f"timm has no model {name!r}; close names: "
                          f"{', '.join(_close(name, available)) or 'none'}")
    config = timm.models.get_pretrained_cfg(name)
    size = (config.input_size[-1] if config is not None and config.input_size else 224)
    if isinstance(arguments.get("img_size"), int):
        size = arguments["img_size"]
    return ModelSource(text, SourceKind.TIMM, in_channels=in_channels or 3,
                       default_input_size=input_size or size, builder_args=arguments,
                       fingerprint={"timm": timm.__version__, "name": name,
                                    "arguments": arguments})


def _factory(text: str, base: str, arguments: dict[str, Any], in_channels: int | None,
             input_size: int | None) -> ModelSource:
    location, _, function = base.rpartition(":")
    if not location or not function.isidentifier():
        raise SourceError(f"{text!r} is not FILE.py:factory or package.module:factory")
    fingerprint: dict[str, Any] = {"factory": function, "arguments": arguments}
    if is_file_location(location):
        path = Path(location)
        if not path.is_file():
            raise SourceError(f"{text!r}: no such file {str(path)!r}")
        fingerprint["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    source = ModelSource(text, SourceKind.FACTORY, in_channels=in_channels or 3,
                         default_input_size=input_size or 224, fingerprint=fingerprint,
                         builder_args=arguments)
    factory = load_factory(text)  # fail now, with the reason, rather than mid-measurement
    bind_arguments(text, factory, arguments, partial=True)  # num_classes etc. may come later
    return source


def _close(name: str, options: list[str]) -> list[str]:
    return difflib.get_close_matches(name, options, n=5, cutoff=0.6)
