"""A resolved MODEL: ``ModelSource`` records where it comes from (its ``SourceKind``) and what
it takes, and builds it; ``forward_step`` runs a model on its source's example input.

A zoo source builds from its ResNetSpec. A foreign one (every other kind) is constructed by its
library or a user's factory (``foreign``), copied from the module given, or, for ``plain:``,
made from its inner source by graph surgery (``surgery.plain_twin``). Its block and stage
structure is discovered from its graph once per source and carried by every build as
``layer_info``. ``resolving.resolve`` makes ModelSources.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn

from resnet_probe.sources.errors import SourceError
from resnet_probe.sources.foreign import factory_model, timm_model, torchvision_model
from resnet_probe.sources.inputs import InputSpec
from resnet_probe.sources.surgery import (
    SurgeryError,
    TwinReport,
    discover_structure,
    has_shortcuts,
    plain_twin,
)
from resnet_probe.sources.user_code import user_code
from resnet_probe.sources.weights import check_weights, load_weights, read_weights
from resnet_probe.zoo import ResNetSpec, build_model, build_on_meta

T = TypeVar("T")


class SourceKind(StrEnum):
    """Where a resolved MODEL comes from. The value is what tables show: a foreign model's
    ``family`` and ``design`` in its cost summary."""

    ZOO = "zoo"  # a zoo name or spec text, built from its ResNetSpec
    TORCHVISION = "torchvision"  # torchvision:NAME[...]
    TIMM = "timm"  # timm:NAME[...]
    FACTORY = "factory"  # FILE.py:factory or package.module:factory: a user's code
    MODULE = "module"  # an nn.Module given to the API
    PLAIN = "plain"  # plain:MODEL, the plain twin of another source


class Traits(NamedTuple):
    """What a model is, as training runs and gradient tables label it."""

    depth: int | None  # in weighted layers; None for a foreign model with no blocks found
    shortcut: bool  # whether it has residual shortcuts


@dataclass
class ModelSource:
    """A resolved MODEL: how to build it, what it takes, and (for the zoo) its spec."""

    text: str  # as the user wrote it; the label in every table
    kind: SourceKind
    spec: ResNetSpec | None = None  # zoo models only
    in_channels: int = 3
    default_input_size: int = 224
    module: nn.Module | None = None  # given directly (API)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what changes the model
    weights: Path | None = None  # a local state_dict loaded into every build
    inner: ModelSource | None = None  # plain:MODEL's MODEL
    builder_args: dict[str, Any] = field(default_factory=dict)  # NAME[k=v,...]
    reinit: bool = False  # plain[reinit]:
    partial: bool = False  # plain[partial]: a twin that cannot be made plain is kept, labelled
    twin_report: TwinReport | None = field(default=None, repr=False)  # the last twin built
    inputs: InputSpec | None = None  # what its forward takes, when not one image
    _traits: Traits | None = field(default=None, repr=False)
    _structure: dict | None = field(default=None, repr=False)  # discovered layer_info

    def __post_init__(self) -> None:
        try:
            self.kind = SourceKind(self.kind)  # the text of a kind is as good as the member
        except ValueError:
            raise SourceError(f"unknown source kind {self.kind!r}; the kinds are "
                              f"{', '.join(SourceKind)}") from None

    @property
    def min_input_size(self) -> int:
        """The smallest input worth feeding: the zoo's total stride, else 32."""
        return self.spec.total_stride if self.spec is not None else 32

    def traits(self) -> Traits:
        """Its depth and whether it has shortcuts; a foreign model is built once to find
        out, and the answer kept on this source."""
        if self.spec is not None:
            return Traits(self.spec.depth, self.spec.shortcut)
        if self._traits is None:
            model = self.build()
            depths = [i.depth for i in getattr(model, "layer_info", {}).values()
                      if i.depth is not None]
            self._traits = Traits(max(depths, default=None), has_shortcuts(model))
        return self._traits

    def identity(self) -> dict[str, Any]:
        """What the caches key this model by: the spec, or the source and what it was built
        from (library version, file hash, builder arguments)."""
        if self.spec is not None:
            # The spec's fields as they are, so run-cache keys stay what they were.
            return json.loads(json.dumps(dataclasses.asdict(self.spec), default=str))
        if self.inner is not None:
            return {"plain": self.inner.identity(), **({"reinit": True} if self.reinit else {}),
                    **({"partial": True} if self.partial else {})}  # never a refused twin's
        if self.module is not None:  # what the module is and holds, not only its label
            digest = hashlib.sha256(repr(self.module).encode())
            for name, tensor in self.module.state_dict().items():
                digest.update(name.encode())
                if tensor.device.type != "meta":
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            return {"source": self.text, "module_sha256": digest.hexdigest()}
        return {"source": self.text, **self.fingerprint}

    def structure(self, model: nn.Module | None = None, device: str | None = None) -> dict:
        """A foreign model's blocks and stages (``layer_info``), found from its graph once per
        source: every build has the same architecture. ``model`` is a build to trace (the
        given module by default)."""
        if self._structure is None:
            traced = model if model is not None else self.module
            assert traced is not None, "a built model is needed to find the structure"
            self._structure = _discovered(self, traced, device)
        return dict(self._structure)

    @property
    def is_zoo(self) -> bool:
        return self.spec is not None

    def build(self, num_classes: int | None = None, in_channels: int | None = None,
              structure: bool = True, device: str | None = None) -> nn.Module:
        """A fresh model, randomly initialised. A foreign model carries its discovered
        ``layer_info`` (block and stage structure) unless ``structure`` is False (counting a
        total needs none). ``device="meta"`` builds shapes only, where the constructor
        allows it."""
        model: nn.Module
        if self.spec is not None:
            fields = {k: v for k, v in (("num_classes", num_classes),
                                        ("in_channels", in_channels)) if v is not None}
            if device == "meta":
                model = build_on_meta(self.text, **fields)
            else:
                model = build_model(self.text, **fields)
        else:
            model = _build_foreign(self, num_classes, in_channels, structure, device)
        if self.weights is not None:
            if device == "meta":
                check_weights(model, read_weights(self.weights, model, "meta"), self.weights,
                              self.text)
            else:
                load_weights(model, self.weights, self.text)
        return model

    def example(self, input_size: int | None = None, batch_size: int = 1,
                device: str | torch.device = "cpu") -> torch.Tensor:
        """One image batch of the size the model takes (its ``inputs`` spec says otherwise)."""
        size = self.default_input_size if input_size is None else input_size
        return torch.zeros(batch_size, self.in_channels, size, size, device=device)

    def example_inputs(self, input_size: int | None = None, batch_size: int | None = None,
                       device: str | torch.device = "cpu"
                       ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) for the model's forward: the ``inputs`` spec when given (its own
        batch unless ``batch_size`` replaces it), else one image batch."""
        if self.inputs is not None:
            return self.inputs.example(device=device, batch_size=batch_size)
        return (self.example(input_size, batch_size or 1, device),), {}

    def input_description(self, input_size: int | None = None, batch_size: int = 1) -> str:
        if self.inputs is not None:
            return self.inputs.text()
        size = self.default_input_size if input_size is None else input_size
        return f"{batch_size}x{self.in_channels}x{size}x{size}"


def forward_step(source: ModelSource, step: str, run: Callable[[], T], grad: bool = False
                 ) -> T:
    """``run()``, where a model meets the source's example input (without autograd unless
    ``grad``), as ``user_code``: a failure of the user's code is named with the step and the
    flags that say what the model takes (or its builder arguments)."""
    def failed(reason: str) -> str:
        hint = ("say what it takes with --input-size and --in-channels, or --input "
                "NAME=SHAPE for other inputs")
        if source.kind in (SourceKind.TORCHVISION, SourceKind.TIMM):
            hint += (f", or pass builder arguments such as {source.text.split('[')[0]}"
                     f"[image_size={source.default_input_size}]")
        return (f"{source.text} fails on a {source.input_description()} input during {step} "
                f"({reason}); {hint}")

    with torch.set_grad_enabled(grad), user_code(source.text, step, failed):
        return run()


def _build_foreign(source: ModelSource, num_classes: int | None, in_channels: int | None,
                   structure: bool, device: str | None) -> nn.Module:
    built: Any
    if source.kind is SourceKind.MODULE:  # a copy: measuring or training must not touch it
        assert source.module is not None  # resolve() gives every MODULE source its module
        built = copy.deepcopy(source.module)
        if device == "meta":
            built = built.to("meta")
    elif source.kind is SourceKind.PLAIN:
        inner = source.inner
        assert inner is not None
        original = inner.build(num_classes, in_channels, structure=False, device=device)
        example = _twin_example(source, original, "meta" if device == "meta" else "cpu")
        twin: Any = forward_step(source, "making its plain twin", lambda: plain_twin(
            original, example if structure else None, reinit=source.reinit,
            partial=source.partial))
        twin.name = source.text  # plain data on the module, as below
        source.twin_report = twin.twin_report
        return twin
    else:
        arguments: dict[str, Any] = dict(source.builder_args)
        if num_classes is not None:
            arguments["num_classes"] = num_classes
        with user_code(source.text, "building the model"), _on(device):
            if source.kind is SourceKind.TORCHVISION:
                built = torchvision_model(source.fingerprint["name"], arguments)
            elif source.kind is SourceKind.TIMM:
                built = timm_model(source.fingerprint["name"], arguments, in_channels)
            else:
                built = factory_model(source.text, source.builder_args, arguments,
                                      in_channels)
        if not isinstance(built, nn.Module):
            raise SourceError(f"{source.text!r} returned {type(built).__name__}, not an "
                              f"nn.Module")
    # Plain data on the module: nn.Module's __setattr__ is typed for tensors and modules only.
    built.name = source.text
    if structure and not hasattr(built, "layer_info"):
        built.layer_info = source.structure(built, device)
    return built


def _twin_example(source: ModelSource, original: nn.Module, device: str) -> Any:
    """What the twin's forward is checked on: one image, or the inputs the source was given
    (``--input``), each by the name the forward takes it by."""
    assert source.inner is not None
    if source.inputs is None:
        return source.inner.example(source.default_input_size, device=device)
    args, kwargs = source.example_inputs(device=device)
    signature = inspect.signature(original.forward)
    try:
        return dict(signature.bind(*args, **kwargs).arguments)
    except TypeError as error:
        raise SourceError(f"{source.text}: its forward{signature} does not take the inputs "
                          f"{source.inputs.text()} ({error})") from None


def _discovered(source: ModelSource, model: nn.Module, device: str | None) -> dict:
    """The blocks and stages found from the model's graph, on one image or the --input
    tensors (empty when it has none, or cannot be traced). The discovery runs the model, so
    it is the input check too."""
    where = "meta" if device == "meta" else "cpu"
    args, kwargs = source.example_inputs(device=where)
    # as fvcore takes inputs: positional ones as a tuple, keyword ones as a dict
    example = args[0] if source.inputs is None else kwargs if not args else \
        args if not kwargs else None
    if example is not None:
        try:
            return forward_step(source, "finding its blocks",
                                lambda: discover_structure(model, example))
        except SurgeryError:  # untraceable, or no residual blocks: per-module rows only
            pass
    forward_step(source, "a forward on its example input", lambda: model.eval()(*args, **kwargs))
    return {}


@contextlib.contextmanager
def _on(device: str | None) -> Iterator[None]:
    """Build on ``device`` (meta: parameters without storage) when asked."""
    if device is None:
        yield
        return
    with torch.device(device):
        yield
