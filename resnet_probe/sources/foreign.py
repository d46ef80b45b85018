"""Constructing a foreign model: a torchvision or timm model by name, or a user's factory.

Each constructor is called inside ``user_code`` by ``ModelSource.build`` (sources.source), which
also makes ``plain:`` twins and discovers a foreign model's blocks and stages. torchvision and
timm are optional, so they are imported where a model of theirs is built. A factory is loaded
from its file or module (``load_factory``) and called only when it is a Python function or an
``nn.Module`` subclass that its own file or module defines, with arguments that bind to its
signature: a library's callable (``os:system``, ``builtins:exec``) is never called.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from resnet_probe.sources.errors import SourceError
from resnet_probe.sources.grammar import factory_location, is_file_location
from resnet_probe.sources.user_code import user_code


def torchvision_model(name: str, arguments: dict[str, Any]) -> Any:
    """torchvision's ``name``, randomly initialised (nothing is downloaded)."""
    import torchvision

    return torchvision.models.get_model(name, weights=None, **arguments)


def timm_model(name: str, arguments: dict[str, Any], in_channels: int | None) -> Any:
    """timm's ``name``, randomly initialised (nothing is downloaded)."""
    import timm

    if in_channels is not None:
        arguments = {**arguments, "in_chans": in_channels}
    return timm.create_model(name, pretrained=False, **arguments)


def factory_model(text: str, builder_args: dict[str, Any], arguments: dict[str, Any],
                  in_channels: int | None) -> Any:
    """What the factory of MODEL ``text`` returns, called with ``arguments``: the builder
    arguments, and ``num_classes`` and ``in_channels`` where it takes them."""
    factory = load_factory(text)
    accepted = inspect.signature(factory).parameters
    arguments = dict(arguments)
    if in_channels is not None and "in_channels" in accepted:
        arguments["in_channels"] = in_channels
    arguments = {k: v for k, v in arguments.items()
                 if k in accepted or k in builder_args
                 or any(p.kind is p.VAR_KEYWORD for p in accepted.values())}
    bind_arguments(text, factory, arguments)
    return factory(**arguments)


def load_factory(text: str) -> Callable[..., Any]:
    """The factory MODEL ``text`` names, its file or module imported as user code; a file is
    imported once per path and content."""
    location, function = factory_location(text)
    with user_code(text, f"importing {location!r}"):
        if is_file_location(location):
            path = Path(location).resolve()
            # keyed by path and content: an edited file is imported afresh
            module_name = "resnet_probe_user_" + hashlib.sha1(
                str(path).encode() + path.read_bytes()).hexdigest()[:12]
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise SourceError(f"{text!r}: {str(path)!r} is not a Python file")
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
        raise SourceError(f"{text!r}: {location!r} has no function {function!r}; it "
                          f"defines {', '.join(sorted(names)[:12]) or 'no functions'}")
    if not _is_factory(factory, module):
        kind = ("a built-in function" if inspect.isbuiltin(factory) else
                f"defined in {getattr(factory, '__module__', None) or 'another module'!r}"
                if inspect.isfunction(factory) or inspect.isclass(factory)
                else f"a {type(factory).__name__} object")
        raise SourceError(f"{text!r}: {function!r} in {location!r} is {kind}, not a "
                          f"factory; a factory is a Python function (or an nn.Module "
                          f"subclass) that {location!r} itself defines, so a library's "
                          f"callable is never called (nothing was called)")
    return factory


def _is_factory(value: Any, module: Any) -> bool:
    """A Python function, or an nn.Module subclass, defined in ``module`` itself."""
    kind = inspect.isfunction(value) or (inspect.isclass(value) and issubclass(value, nn.Module))
    return kind and getattr(value, "__module__", None) == module.__name__


def bind_arguments(text: str, factory: Callable[..., Any], arguments: dict[str, Any],
                   partial: bool = False) -> None:
    """Raise SourceError unless ``arguments`` bind to ``factory``'s signature (``partial``:
    some, such as num_classes, may come at build time)."""
    try:
        signature = inspect.signature(factory)
        (signature.bind_partial if partial else signature.bind)(**arguments)
    except (TypeError, ValueError) as error:
        raise SourceError(f"{text!r}: the builder arguments "
                          f"{', '.join(f'{k}={v!r}' for k, v in arguments.items()) or '(none)'}"
                          f" do not fit {getattr(factory, '__name__', 'the factory')}"
                          f"{_signature_text(factory)} ({error}); give NAME=VALUE for its "
                          f"parameters") from None


def _signature_text(factory: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"
