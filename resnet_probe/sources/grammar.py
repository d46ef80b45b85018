"""How a MODEL is written: the library prefixes, ``plain[OPTIONS]:``, builder arguments
``SOURCE[k=v,...]``, and a factory's ``LOCATION:function`` (a file path or a module name).

Parsing only: nothing here imports a library or runs a user's code. ``resolve`` turns the parts
into a ModelSource; ``recorded`` reads the same grammar to decide whether a text read from a
file may run code.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from resnet_probe.sources.errors import SourceError

TORCHVISION = "torchvision:"
TIMM = "timm:"
PLAIN_OPTIONS = ("reinit", "partial")
_PLAIN = re.compile(r"^plain(?:\[(?P<options>[^\[\]]*)\])?:")
_ARGUMENTS = re.compile(r"^(?P<base>.+?)\[(?P<args>[^\[\]]*)\]$")


def plain_prefix(text: str) -> tuple[frozenset[str], str] | None:
    """``plain[OPTIONS]:MODEL`` -> (its options, MODEL); None when ``text`` names no plain
    twin."""
    match = _PLAIN.match(text)
    if match is None:
        return None
    given = match.group("options")
    options = frozenset(o.strip() for o in (given or "").split(",") if o.strip())
    if options - set(PLAIN_OPTIONS) or given is not None and not options:
        raise SourceError(f"{text!r}: the options of plain[...]: are "
                          f"{' and '.join(PLAIN_OPTIONS)} (plain[reinit]:MODEL, "
                          f"plain[partial]:MODEL, plain[reinit,partial]:MODEL)")
    return options, text[match.end():]


def builder_arguments(text: str) -> tuple[str, dict[str, Any]]:
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


def is_file_location(location: str) -> bool:
    """Whether a factory's LOCATION is a file path (``my_model.py``, ``models/net``) rather
    than a module name (``package.module``)."""
    return location.endswith(".py") or "/" in location or "\\" in location


def factory_location(text: str) -> tuple[str, str]:
    """(location, function name) of a factory source's MODEL text."""
    base, _ = builder_arguments(text)
    location, _, function = base.rpartition(":")
    return location, function
