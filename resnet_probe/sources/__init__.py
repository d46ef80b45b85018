"""Where a MODEL comes from, resolved once at the edge (CLI and top-level API).

Accepted everywhere a MODEL is:

* a zoo name or spec text: ``resnet50``, ``plain34``, ``cifar[layers=9-9-9]``;
* ``torchvision:NAME``: any torchvision classification model (``torchvision.models.get_model``);
* ``timm:NAME``: any timm model (``timm.create_model``);
* ``path/to/file.py:factory`` or ``package.module:factory``: a user's function returning an
  ``nn.Module`` (or an ``nn.Module`` subclass), defined in that file or module: a library's
  callable (``os:system``, ``builtins:exec``) is never called, and builder arguments must bind
  to the factory's signature before it is called;
* any of these three with builder arguments: ``torchvision:vit_h_14[image_size=518]``,
  ``timm:resnet50d[drop_rate=0.1]``, ``my_model.py:build[width=32]``;
* ``plain:MODEL``: the plain twin of any of the above, made by graph surgery (surgery/);
  ``plain[reinit]:MODEL`` first gives branches that start at zero a unit init;
  ``plain[partial]:MODEL`` keeps a twin that cannot be made plain (a shortcut it cannot
  remove), labelled partial, where ``plain:`` refuses it (options combine: plain[reinit,partial]);
* in the API, an ``nn.Module`` itself.

Models are built with random initialisation; nothing is downloaded. Foreign models (all but the
zoo's) get their block and stage structure discovered from their graph, as ``layer_info``, when
a measurement needs it. A user's code (importing its module, building, its forward) runs inside
``user_code``: what it writes to stdout (print, ``sys.__stdout__``, file descriptor 1) goes to
stderr, a call to ``os._exit`` is refused, and an exception, ``sys.exit`` or any other
BaseException but Ctrl-C becomes an error naming the source and the step it reached.

A MODEL text read from a file (a baseline, a checkpoint, a run folder) goes through
``sources.recorded.resolve_recorded`` instead: there a file or module source runs only with an
explicit trust flag.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_probe.errors import InvalidRequest, UserCodeError
from resnet_probe.sources.containment import ProcessExitAttempt, contained
from resnet_probe.sources.inputs import InputSpec
from resnet_probe.zoo import ResNetSpec, build_model, get_spec

TORCHVISION = "torchvision:"
TIMM = "timm:"
PLAIN = "plain:"
PLAIN_REINIT = "plain[reinit]:"
PLAIN_PARTIAL = "plain[partial]:"
PLAIN_OPTIONS = ("reinit", "partial")
_PLAIN = re.compile(r"^plain(?:\[(?P<options>[^\[\]]*)\])?:")
INSTALL_HINT = ("install the optional extra: pip install 'resnet-probe[models]' (on a CPU-only "
                "machine: torch==2.14.1 torchvision==0.29.1 timm)")
_ARGUMENTS = re.compile(r"^(?P<base>.+?)\[(?P<args>[^\[\]]*)\]$")


class SourceError(InvalidRequest):
    """A MODEL that cannot be resolved: unknown name, missing library, bad factory."""


class WeightsMismatch(SourceError):
    """A ``--weights`` state_dict whose keys or shapes do not fit the model as built;
    ``mismatch`` is what differs, the message adds how to build the model to fit."""

    def __init__(self, mismatch: str) -> None:
        super().__init__(f"{mismatch}; weights trained for other classes or input channels "
                         f"fit a model built with --num-classes and --in-channels")
        self.mismatch = mismatch


@dataclass
class ModelSource:
    """A resolved MODEL: how to build it, what it takes, and (for the zoo) its spec."""

    text: str  # as the user wrote it; the label in every table
    kind: str  # zoo, torchvision, timm, factory, module, plain
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
    twin_report: Any = field(default=None, repr=False)  # a built twin's TwinReport (surgery)
    inputs: InputSpec | None = None  # what its forward takes, when not one image
    _traits: tuple[int | None, bool] | None = field(default=None, repr=False)
    _structure: dict | None = field(default=None, repr=False)  # discovered layer_info

    @property
    def min_input_size(self) -> int:
        """The smallest input worth feeding: the zoo's total stride, else 32."""
        return self.spec.total_stride if self.spec is not None else 32

    def traits(self) -> tuple[int | None, bool]:
        """(depth in weighted layers, has shortcuts); a foreign model is built once to find
        out, and the answer kept on this source."""
        if self.spec is not None:
            return self.spec.depth, self.spec.shortcut
        if self._traits is None:
            from resnet_probe.sources.surgery import has_shortcuts

            model = self.build()
            depths = [i.depth for i in getattr(model, "layer_info", {}).values()
                      if i.depth is not None]
            self._traits = (max(depths, default=None), has_shortcuts(model))
        return self._traits

    def identity(self) -> dict[str, Any]:
        """What the caches key this model by: the spec, or the source and what it was built
        from (library version, file hash, builder arguments)."""
        if self.spec is not None:
            import dataclasses

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
                from resnet_probe.zoo import build_on_meta

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


def resolve(model: str | nn.Module | ModelSource, in_channels: int | None = None,
            input_size: int | None = None, name: str | None = None,
            weights: Path | None = None, inputs: InputSpec | None = None) -> ModelSource:
    """A MODEL (see the module docstring) as a ModelSource; ``in_channels`` and
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
    plain = _PLAIN.match(text)
    if plain is not None:
        options = {o.strip() for o in (plain.group("options") or "").split(",") if o.strip()}
        if options - set(PLAIN_OPTIONS) or plain.group("options") is not None and not options:
            raise SourceError(f"{text!r}: the options of plain[...]: are "
                              f"{' and '.join(PLAIN_OPTIONS)} (plain[reinit]:MODEL, "
                              f"plain[partial]:MODEL, plain[reinit,partial]:MODEL)")
        inner = resolve(text[plain.end():], in_channels, input_size)
        return ModelSource(text, "plain", in_channels=inner.in_channels,
                           default_input_size=inner.default_input_size, inner=inner,
                           reinit="reinit" in options, partial="partial" in options)
    base, arguments = _builder_arguments(text)
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
    return ModelSource(text, "zoo", spec=spec, in_channels=spec.in_channels,
                       default_input_size=spec.default_input_size)


def _builder_arguments(text: str) -> tuple[str, dict[str, Any]]:
    """``SOURCE[k=v,...]`` -> (SOURCE, {k: v}) for torchvision:, timm: and factories; each
    value a Python literal (42, 0.1, True, 'name'), else its text."""
    match = _ARGUMENTS.match(text)
    if match is None or not any(text.startswith(p) for p in (TORCHVISION, TIMM)) and \
            ":" not in match.group("base"):
        return text, {}
    arguments: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in match.group("args").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SourceError(f"{text!r}: builder arguments are NAME=VALUE pairs separated by "
                              f"commas, e.g. torchvision:vit_h_14[image_size=518]; got "
                              f"{item!r}")
        try:
            arguments[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            arguments[key.strip()] = value.strip()
    return match.group("base"), arguments


def _torchvision(text: str, base: str, arguments, in_channels, input_size) -> ModelSource:
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
    return ModelSource(text, "torchvision", in_channels=in_channels or 3,
                       default_input_size=input_size or size or 224, builder_args=arguments,
                       fingerprint={"torchvision": torchvision.__version__, "name": name,
                                    "arguments": arguments})


def _timm(text: str, base: str, arguments, in_channels, input_size) -> ModelSource:
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
    return ModelSource(text, "timm", in_channels=in_channels or 3,
                       default_input_size=input_size or size, builder_args=arguments,
                       fingerprint={"timm": timm.__version__, "name": name,
                                    "arguments": arguments})


def _factory(text: str, base: str, arguments, in_channels, input_size) -> ModelSource:
    location, _, function = base.rpartition(":")
    if not location or not function.isidentifier():
        raise SourceError(f"{text!r} is not FILE.py:factory or package.module:factory")
    fingerprint: dict[str, Any] = {"factory": function, "arguments": arguments}
    if _is_file(location):
        path = Path(location)
        if not path.is_file():
            raise SourceError(f"{text!r}: no such file {str(path)!r}")
        fingerprint["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    source = ModelSource(text, "factory", in_channels=in_channels or 3,
                         default_input_size=input_size or 224, fingerprint=fingerprint,
                         builder_args=arguments)
    factory = _load_factory(source)  # fail now, with the reason, rather than mid-measurement
    _bind(source, factory, arguments, partial=True)  # num_classes etc. may come at build time
    return source


def _is_file(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def factory_location(source: ModelSource) -> tuple[str, str]:
    """(module location, function name) of a factory source."""
    base, _ = _builder_arguments(source.text)
    location, _, function = base.rpartition(":")
    return location, function


def _load_factory(source: ModelSource):
    location, function = factory_location(source)
    with user_code(source.text, f"importing {location!r}"):
        if _is_file(location):
            path = Path(location).resolve()
            # keyed by path and content: an edited file is imported afresh
            module_name = "resnet_probe_user_" + hashlib.sha1(
                str(path).encode() + path.read_bytes()).hexdigest()[:12]
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise SourceError(f"{source.text!r}: {str(path)!r} is not a Python file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                # As `python FILE.py` does: the file's folder first on the path, so a model
                # imports the packages that sit beside it (a pre-commit hook runs the
                # installed console script, whose path holds no repository folder).
                if str(path.parent) not in sys.path:
                    sys.path.insert(0, str(path.parent))
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(module_name, None)  # a failed import is not cached
                    raise
        else:
            module = importlib.import_module(location)
    factory = getattr(module, function, None)
    if not callable(factory):
        names = [n for n, v in vars(module).items() if _is_factory(v, module)
                 and not n.startswith("_")]
        raise SourceError(f"{source.text!r}: {location!r} has no function {function!r}; it "
                          f"defines {', '.join(sorted(names)[:12]) or 'no functions'}")
    if not _is_factory(factory, module):
        kind = ("a built-in function" if inspect.isbuiltin(factory) else
                f"defined in {getattr(factory, '__module__', None) or 'another module'!r}"
                if inspect.isfunction(factory) or inspect.isclass(factory)
                else f"a {type(factory).__name__} object")
        raise SourceError(f"{source.text!r}: {function!r} in {location!r} is {kind}, not a "
                          f"factory; a factory is a Python function (or an nn.Module "
                          f"subclass) that {location!r} itself defines, so a library's "
                          f"callable is never called (nothing was called)")
    return factory


def _is_factory(value: Any, module: Any) -> bool:
    """A Python function, or an nn.Module subclass, defined in ``module`` itself."""
    kind = inspect.isfunction(value) or (inspect.isclass(value) and issubclass(value, nn.Module))
    return kind and getattr(value, "__module__", None) == module.__name__


def _bind(source: ModelSource, factory: Callable, arguments: dict[str, Any],
          partial: bool = False) -> None:
    """Raise SourceError unless ``arguments`` bind to ``factory``'s signature."""
    try:
        signature = inspect.signature(factory)
        (signature.bind_partial if partial else signature.bind)(**arguments)
    except (TypeError, ValueError) as error:
        raise SourceError(f"{source.text!r}: the builder arguments "
                          f"{', '.join(f'{k}={v!r}' for k, v in arguments.items()) or '(none)'}"
                          f" do not fit {getattr(factory, '__name__', 'the factory')}"
                          f"{_signature_text(factory)} ({error}); give NAME=VALUE for its "
                          f"parameters") from None


def _signature_text(factory: Callable) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


@contextlib.contextmanager
def user_code(source: str, step: str, failed: Callable[[str], str] | None = None
              ) -> Iterator[None]:
    """Run a user's code (a factory's module, the factory, its forward) contained: its
    writes to stdout, from Python or to file descriptor 1, go to stderr, and a call to
    ``os._exit``/``os.abort`` is refused (``containment``). An exception, ``sys.exit``, an
    exit call or a BaseException that is not an Exception (GeneratorExit, the code's own)
    becomes a UserCodeError naming ``source`` and ``step``, with the traceback kept for
    --debug. Our own errors, Ctrl-C and SIGTERM pass through. ``failed`` words an exception
    from the error's type and first line (default: the step failed)."""
    try:
        with contained() as exit_calls:
            yield
            if exit_calls:  # the code caught the refusal and carried on: still a failure
                raise ProcessExitAttempt(exit_calls[0])
    except (InvalidRequest, KeyboardInterrupt, torch.cuda.OutOfMemoryError):
        raise
    except SystemExit as error:
        raise UserCodeError(f"{source}: its code called sys.exit({error.code!r}) while "
                            f"{step}; resnet-probe stopped there",
                            traceback.format_exc()) from None
    except ProcessExitAttempt as error:
        raise UserCodeError(f"{source}: its code called {error.call} while {step}, which "
                            f"would end the process without a result; resnet-probe refused "
                            f"it and stopped there", traceback.format_exc(),
                            f"called {error.call}") from None
    except Exception as error:  # noqa: BLE001 - user code can raise anything
        reason = _reason(error)
        message = failed(reason) if failed is not None else \
            f"{source}: {step} failed ({reason}); --debug shows the traceback"
        raise UserCodeError(message, traceback.format_exc(), reason) from None
    except BaseException as error:  # noqa: BLE001 - GeneratorExit, a user's BaseException
        reason = _reason(error)
        raise UserCodeError(f"{source}: its code raised {reason} while {step} (a "
                            f"BaseException that is not an Exception); resnet-probe stopped "
                            f"there; --debug shows the traceback", traceback.format_exc(),
                            reason) from None


def _reason(error: BaseException) -> str:
    """An error's type and the first line of its message, e.g. "KeyError: 'x'"."""
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"


def _build_foreign(source: ModelSource, num_classes, in_channels, structure: bool,
                   device: str | None) -> nn.Module:
    from resnet_probe.sources.surgery import plain_twin

    if source.kind == "module":  # a copy: measuring or training must not touch the user's
        import copy

        assert source.module is not None  # resolve() gives every "module" source its module
        model = copy.deepcopy(source.module)
        if device == "meta":
            model = model.to("meta")
    elif source.kind == "plain":
        inner = source.inner
        assert inner is not None
        original = inner.build(num_classes, in_channels, structure=False, device=device)
        example = _twin_example(source, original, "meta" if device == "meta" else "cpu")
        model = forward_step(source, "making its plain twin", lambda: plain_twin(
            original, example if structure else None, reinit=source.reinit,
            partial=source.partial))
        model.name = source.text
        source.twin_report = model.twin_report
        return model
    else:
        kwargs: dict[str, Any] = dict(source.builder_args)
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        with user_code(source.text, "building the model"), _on(device):
            if source.kind == "torchvision":
                import torchvision

                model = torchvision.models.get_model(source.fingerprint["name"], weights=None,
                                                     **kwargs)
            elif source.kind == "timm":
                import timm

                if in_channels is not None:
                    kwargs["in_chans"] = in_channels
                model = timm.create_model(source.fingerprint["name"], pretrained=False,
                                          **kwargs)
            else:
                factory = _load_factory(source)
                accepted = inspect.signature(factory).parameters
                if in_channels is not None and "in_channels" in accepted:
                    kwargs["in_channels"] = in_channels
                kwargs = {k: v for k, v in kwargs.items()
                          if k in accepted or k in source.builder_args
                          or any(p.kind is p.VAR_KEYWORD for p in accepted.values())}
                _bind(source, factory, kwargs)
                model = factory(**kwargs)
        if not isinstance(model, nn.Module):
            raise SourceError(f"{source.text!r} returned {type(model).__name__}, not an "
                              f"nn.Module")
    # Plain data on the module: nn.Module's __setattr__ is typed for tensors and modules only.
    labelled: Any = model
    labelled.name = source.text
    if structure and not hasattr(model, "layer_info"):
        labelled.layer_info = source.structure(model, device)
    return model


def _twin_example(source: ModelSource, original: nn.Module, device: str):
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
    from resnet_probe.sources.surgery import SurgeryError, discover_structure

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


def load_weights(model: nn.Module, path: Path, label: str) -> None:
    """A local state_dict into ``model``, strictly: every missing or unexpected key, and every
    tensor whose shape or dtype does not fit, named. The file is loaded as data only, and
    checked on the meta device (no tensor data read) before its data is."""
    check_weights(model, read_weights(path, model, "meta"), path, label)
    check_weights(model, read_weights(path, model), path, label, load=True)


def read_weights(path: Path, model: nn.Module, device: str = "cpu"
                 ) -> dict[str, torch.Tensor]:
    """The state_dict in a ``--weights`` file (or the ``state_dict`` a training checkpoint
    wraps), loaded as data only; the file may declare at most a small multiple of ``model``'s
    state_dict bytes (``untrusted.allowed_bytes``), checked before anything is inflated.
    ``device="meta"``: names, shapes and dtypes only."""
    from resnet_probe.untrusted import UntrustedFileError, allowed_bytes, load_tensors

    try:
        state = load_tensors(path, "--weights", device, allowed_bytes(model.state_dict()))
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
    """Raise SourceError unless ``state`` fits ``model`` key for key, shape for shape and
    dtype kind for kind (``untrusted.state_dict_problems``; the check needs no storage, so it
    works on a meta model); with ``load``, copy it in."""
    from resnet_probe.untrusted import state_dict_problems

    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise WeightsMismatch(f"--weights {str(path)!r} does not fit {label}: "
                              f"{'; '.join(problems)}")
    if load:
        model.load_state_dict(state, strict=True)


def forward_step(source: ModelSource, step: str, run, grad: bool = False):
    """``run()``, where a model meets the source's example input (without autograd unless
    ``grad``), as ``user_code``: a failure of the user's code is named with the step and the
    flags that say what the model takes (or its builder arguments)."""
    def failed(reason: str) -> str:
        hint = ("say what it takes with --input-size and --in-channels, or --input "
                "NAME=SHAPE for other inputs")
        if source.kind in ("torchvision", "timm"):
            hint += (f", or pass builder arguments such as {source.text.split('[')[0]}"
                     f"[image_size={source.default_input_size}]")
        return (f"{source.text} fails on a {source.input_description()} input during {step} "
                f"({reason}); {hint}")

    with torch.set_grad_enabled(grad), user_code(source.text, step, failed):
        return run()


def _close(name: str, options: list[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, options, n=5, cutoff=0.6)
