"""Where a MODEL comes from, resolved once at the edge (CLI and top-level API).

Accepted everywhere a MODEL is:

* a zoo name or spec text: ``resnet50``, ``plain34``, ``cifar[layers=9-9-9]``;
* ``torchvision:NAME``: any torchvision classification model (``torchvision.models.get_model``);
* ``timm:NAME``: any timm model (``timm.create_model``);
* ``path/to/file.py:factory`` or ``package.module:factory``: a user's function returning an
  ``nn.Module``;
* ``plain:MODEL``: the plain twin of any of the above, made by graph surgery (surgery.py);
* in the API, an ``nn.Module`` itself.

Models are built with random initialisation; nothing is downloaded. Foreign models (all but the
zoo's) get their block and stage structure discovered from their graph, as ``layer_info``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_probe.errors import InvalidRequest
from resnet_probe.zoo import ResNetSpec, build_model, get_spec

TORCHVISION = "torchvision:"
TIMM = "timm:"
PLAIN = "plain:"
INSTALL_HINT = ("install the optional extra: pip install 'resnet-probe[models]' (on a CPU-only "
                "machine: torch==2.14.1 torchvision==0.29.1 timm)")


class SourceError(InvalidRequest):
    """A MODEL that cannot be resolved: unknown name, missing library, bad factory."""


_TRAITS: dict[str, tuple[int | None, bool]] = {}  # identity -> (depth, has shortcuts)


@dataclass
class ModelSource:
    """A resolved MODEL: how to build it, what it takes, and (for the zoo) its spec."""

    text: str  # as the user wrote it; the label in every table
    kind: str  # zoo, torchvision, timm, factory, module, plain
    spec: ResNetSpec | None = None  # zoo models only
    in_channels: int = 3
    default_input_size: int = 224
    module: nn.Module | None = None  # given directly (API) or built once
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what changes the model
    weights: Path | None = None  # a local state_dict loaded into every build
    inner: ModelSource | None = None  # plain:MODEL's MODEL
    _traits: tuple[int | None, bool] | None = field(default=None, repr=False)

    @property
    def min_input_size(self) -> int:
        """The smallest input worth feeding: the zoo's total stride, else 32."""
        return self.spec.total_stride if self.spec is not None else 32

    def traits(self) -> tuple[int | None, bool]:
        """(depth in weighted layers, has shortcuts); a foreign model is built to find out."""
        if self.spec is not None:
            return self.spec.depth, self.spec.shortcut
        # Tables resolve a MODEL afresh per row; building a torchvision net takes ~0.5 s, so
        # the answer is kept per source (what identity() keys: library version, file hash).
        key = json.dumps(self.identity(), sort_keys=True, default=str) if self.module is None \
            else None
        if self._traits is None and key in _TRAITS:
            self._traits = _TRAITS[key]
        if self._traits is None:
            from resnet_probe.surgery import has_shortcuts

            model = self.build()
            depths = [i.depth for i in getattr(model, "layer_info", {}).values()
                      if i.depth is not None]
            self._traits = (max(depths, default=None), has_shortcuts(model))
            if key is not None:
                _TRAITS[key] = self._traits
        return self._traits

    def identity(self) -> dict[str, Any]:
        """What the run cache keys this model by: the spec, or the source and what it was
        built from (library version, file hash)."""
        if self.spec is not None:
            import dataclasses

            # The spec's fields as they are, so run-cache keys stay what they were.
            return json.loads(json.dumps(dataclasses.asdict(self.spec), default=str))
        if self.inner is not None:
            return {"plain": self.inner.identity()}
        if self.module is not None:  # what the module is and holds, not only its label
            digest = hashlib.sha256(repr(self.module).encode())
            for name, tensor in self.module.state_dict().items():
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            return {"source": self.text, "module_sha256": digest.hexdigest()}
        return {"source": self.text, **self.fingerprint}

    @property
    def is_zoo(self) -> bool:
        return self.spec is not None

    def build(self, num_classes: int | None = None, in_channels: int | None = None
              ) -> nn.Module:
        """A fresh model, randomly initialised; foreign models carry a discovered
        ``layer_info`` (block and stage structure)."""
        if self.spec is not None:
            fields = {k: v for k, v in (("num_classes", num_classes),
                                        ("in_channels", in_channels)) if v is not None}
            model = build_model(self.text, **fields)
        else:
            model = _build_foreign(self, num_classes, in_channels)
        if self.weights is not None:
            load_weights(model, self.weights, self.text)
        return model

    def example(self, input_size: int | None = None, batch_size: int = 1) -> torch.Tensor:
        size = self.default_input_size if input_size is None else input_size
        return torch.zeros(batch_size, self.in_channels, size, size)


_GIVEN: dict[str, ModelSource] = {}  # nn.Modules handed to the API, by their label


@contextlib.contextmanager
def given(models: list) -> Iterator[list[str]]:
    """Labels for a list of MODELs in which nn.Modules (or resolved ModelSources) stand
    beside names: inside the block each one's label (a module's ``.name``, else its class
    name; a source's text) resolves back to it, for code
    that passes MODELs around as text (compare's sections, the training runs they record).
    The labels shadow any model of the same name only inside the block."""
    labels, added = [], []
    try:
        for model in models:
            if not isinstance(model, (nn.Module, ModelSource)):
                labels.append(model)
                continue
            source = resolve(model)  # a ModelSource keeps what it takes (--in-channels)
            if source.text in _GIVEN:
                raise SourceError(f"two models are labelled {source.text!r}; give each "
                                  f"module its own .name")
            _GIVEN[source.text] = source
            added.append(source.text)
            labels.append(source.text)
        yield labels
    finally:
        for label in added:
            _GIVEN.pop(label, None)


def resolve(model: str | nn.Module | ModelSource, in_channels: int | None = None,
            input_size: int | None = None, name: str | None = None,
            weights: Path | None = None) -> ModelSource:
    """A MODEL (see the module docstring) as a ModelSource; ``in_channels`` and
    ``input_size`` say what a foreign model takes (zoo models know)."""
    if isinstance(model, ModelSource):
        return model
    for what, value in (("in_channels", in_channels), ("input_size", input_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise InvalidRequest(f"{what} must be a positive integer: {what}={value!r}")
    if isinstance(model, str) and model in _GIVEN:
        return _GIVEN[model]
    source = _resolve(model, in_channels, input_size, name)
    source.weights = Path(weights) if weights is not None else None
    return source


def _resolve(model, in_channels, input_size, name) -> ModelSource:
    if isinstance(model, nn.Module):
        label = name or getattr(model, "name", None) or type(model).__name__
        spec = getattr(model, "spec", None) if isinstance(getattr(model, "spec", None),
                                                          ResNetSpec) else None
        return ModelSource(label, "module", spec=None, module=model,
                           in_channels=in_channels or (spec.in_channels if spec else 3),
                           default_input_size=input_size or (spec.default_input_size
                                                             if spec else 224))
    text = str(model).strip()
    if text.startswith(PLAIN):
        inner = resolve(text[len(PLAIN):], in_channels, input_size)
        return ModelSource(text, "plain", in_channels=inner.in_channels,
                           default_input_size=inner.default_input_size, inner=inner)
    if text.startswith(TORCHVISION):
        return _torchvision(text, in_channels, input_size)
    if text.startswith(TIMM):
        return _timm(text, in_channels, input_size)
    if ":" in text:
        return _factory(text, in_channels, input_size)
    try:
        spec = get_spec(text)
    except ValueError as error:
        raise SourceError(f"{error}; or give torchvision:NAME, timm:NAME, plain:MODEL, "
                          f"path/to/file.py:factory or package.module:factory") from None
    return ModelSource(text, "zoo", spec=spec, in_channels=spec.in_channels,
                       default_input_size=spec.default_input_size)


def _torchvision(text: str, in_channels, input_size) -> ModelSource:
    try:
        import torchvision
    except Exception as error:  # noqa: BLE001 - a broken install raises more than ImportError
        raise SourceError(f"{text!r} needs torchvision, which does not import here "
                          f"({type(error).__name__}: {error}); {INSTALL_HINT}") from None
    name = text[len(TORCHVISION):]
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        raise SourceError(f"torchvision has no classification model {name!r}; close names: "
                          f"{', '.join(_close(name, available)) or 'none'} (all: "
                          f"torchvision.models.list_models())")
    return ModelSource(text, "torchvision", in_channels=in_channels or 3,
                       default_input_size=input_size or 224,
                       fingerprint={"torchvision": torchvision.__version__, "name": name})


def _timm(text: str, in_channels, input_size) -> ModelSource:
    try:
        import timm
    except Exception as error:  # noqa: BLE001
        raise SourceError(f"{text!r} needs timm, which does not import here "
                          f"({type(error).__name__}: {error}); {INSTALL_HINT}") from None
    name = text[len(TIMM):]
    available = timm.list_models()
    if name not in available:
        raise SourceError(f"timm has no model {name!r}; close names: "
                          f"{', '.join(_close(name, available)) or 'none'}")
    config = timm.models.get_pretrained_cfg(name)
    size = (config.input_size[-1] if config is not None and config.input_size else 224)
    return ModelSource(text, "timm", in_channels=in_channels or 3,
                       default_input_size=input_size or size,
                       fingerprint={"timm": timm.__version__, "name": name})


def _factory(text: str, in_channels, input_size) -> ModelSource:
    location, _, function = text.rpartition(":")
    if not location or not function.isidentifier():
        raise SourceError(f"{text!r} is not FILE.py:factory or package.module:factory")
    fingerprint: dict[str, Any] = {"factory": function}
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location)
        if not path.is_file():
            raise SourceError(f"{text!r}: no such file {str(path)!r}")
        fingerprint["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    source = ModelSource(text, "factory", in_channels=in_channels or 3,
                         default_input_size=input_size or 224, fingerprint=fingerprint)
    _load_factory(source)  # fail now, with the reason, rather than mid-measurement
    return source


def _load_factory(source: ModelSource):
    location, _, function = source.text.rpartition(":")
    try:
        if location.endswith(".py") or "/" in location:
            path = Path(location).resolve()
            module_name = f"resnet_probe_user_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(location)
    except SourceError:
        raise
    except Exception as error:  # noqa: BLE001 - user code can raise anything on import
        raise SourceError(f"{source.text!r}: importing {location!r} failed "
                          f"({type(error).__name__}: {error})") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise SourceError(f"{source.text!r}: {location!r} has no function {function!r}; it "
                          f"defines {', '.join(sorted(names)[:12]) or 'no functions'}")
    return factory


def _build_foreign(source: ModelSource, num_classes, in_channels) -> nn.Module:
    from resnet_probe.surgery import SurgeryError, discover_structure, plain_twin

    if source.kind == "module":  # a copy: measuring or training must not touch the user's
        import copy

        model = copy.deepcopy(source.module)
    elif source.kind == "plain":
        inner = source.inner
        original = inner.build(num_classes, in_channels)
        model = _naming_the_flags(inner, lambda: plain_twin(
            original, inner.example(source.default_input_size)))
        model.name = source.text
        return model
    elif source.kind == "torchvision":
        import torchvision

        kwargs = {"num_classes": num_classes} if num_classes is not None else {}
        model = torchvision.models.get_model(source.fingerprint["name"], weights=None, **kwargs)
    elif source.kind == "timm":
        import timm

        kwargs = {"num_classes": num_classes} if num_classes is not None else {}
        if in_channels is not None:
            kwargs["in_chans"] = in_channels
        model = timm.create_model(source.fingerprint["name"], pretrained=False, **kwargs)
    else:
        factory = _load_factory(source)
        accepted = inspect.signature(factory).parameters
        kwargs = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels))
                  if v is not None and k in accepted}
        model = factory(**kwargs)
        if not isinstance(model, nn.Module):
            raise SourceError(f"{source.text!r} returned {type(model).__name__}, not an "
                              f"nn.Module")
    model.name = source.text
    if not hasattr(model, "layer_info"):
        try:  # the discovery's shape pass runs the model: it is the input check too
            model.layer_info = _naming_the_flags(
                source, lambda: discover_structure(model, source.example()))
        except SurgeryError:  # untraceable, or no residual blocks: per-module rows only
            _naming_the_flags(source, lambda: model.eval()(source.example()))
            model.layer_info = {}
    return model


def load_weights(model: nn.Module, path: Path, label: str) -> None:
    """A local state_dict into ``model``, strictly: every missing or unexpected key, and every
    tensor whose shape does not fit, named. The file is loaded as data only."""
    check_weights(model, read_weights(path), path, label, load=True)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The state_dict in a ``--weights`` file (or the ``state_dict`` a training checkpoint
    wraps), loaded as data only."""
    from resnet_probe.untrusted import UntrustedFileError, load_tensors

    try:
        state = load_tensors(path, "--weights")
    except FileNotFoundError:
        raise SourceError(f"--weights {str(path)!r}: no such file") from None
    except UntrustedFileError as error:
        raise SourceError(str(error)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint wrapping it
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise SourceError(f"--weights {str(path)!r} holds a {type(state).__name__}, not a "
                          f"state_dict of named tensors")
    return state


def check_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, label: str,
                  load: bool = False) -> None:
    """Raise SourceError unless ``state`` fits ``model`` key for key and shape for shape (the
    check needs no storage, so it works on a meta model); with ``load``, copy it in."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(expected[k].shape)} in the "
              f"model" for k in expected if k in state
              and tuple(state[k].shape) != tuple(expected[k].shape)]
    problems = [f"missing {', '.join(missing[:5])}" + (f" (+{len(missing) - 5} more)"
                                                       if len(missing) > 5 else "")
                if missing else "",
                f"unexpected {', '.join(unexpected[:5])}" if unexpected else "",
                f"shapes differ for {'; '.join(shapes[:5])}" if shapes else ""]
    if any(problems):
        raise SourceError(f"--weights {str(path)!r} does not fit {label}: "
                          f"{'; '.join(p for p in problems if p)}")
    if load:
        model.load_state_dict(state, strict=True)


def _naming_the_flags(source: ModelSource, run):
    """``run()``, where a model meets the source's example input; a failure of that forward
    is reported naming the flags that say what the model takes. SurgeryError passes."""
    from resnet_probe.surgery import SurgeryError

    try:
        with torch.no_grad():
            return run()
    except SurgeryError:
        raise
    except Exception as error:  # noqa: BLE001 - user code can raise anything
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        shape = "x".join(map(str, source.example().shape))
        raise SourceError(f"{source.text} fails on a {shape} input ({first}); say what it "
                          f"takes with --input-size and --in-channels") from None


def _close(name: str, options: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, options, n=5, cutoff=0.6)
