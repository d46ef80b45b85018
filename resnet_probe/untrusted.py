"""Files from elsewhere are data, never code: RUN folders, caches, checkpoints, ``--weights``,
baselines and tables may come from a colleague or a download.

Torch files are read with ``torch.load(weights_only=True)``: tensors, dicts, lists, strings and
numbers only. A file that asks for anything more (a pickled class, ``os.system``) is refused,
naming the file and what it asked for; nothing in it runs. Plain data read from such a file
(JSON, or a checkpoint's record) is checked field by field with ``checked`` before use.
"""

from __future__ import annotations

import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch


class UntrustedFileError(ValueError):
    """A file whose content is not what it should hold (damaged, foreign, wrong types); the
    message names the file."""


class UnsafeFileError(UntrustedFileError):
    """A file that would run code when loaded: refused, never skipped as merely damaged."""


def load_tensors(path: str | Path, what: str, device: torch.device | str = "cpu") -> Any:
    """``path`` loaded as tensors and plain data only. FileNotFoundError passes through; a
    file that needs code to load raises UntrustedFileError; any other failure to read it is
    a damaged file (UntrustedFileError too, with torch's reason)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        raise UnsafeFileError(
            f"{what} {str(path)!r} was refused: loading it would construct "
            f"{_requested_global(error)}, and resnet-probe loads only tensors and plain data "
            f"from files (nothing in it ran). A file written by resnet-probe 0.1 before "
            f"checkpoint format 3 holds a pickled record too: delete it and retrain") from None
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged files
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UntrustedFileError(f"{what} {str(path)!r} is damaged or not a torch file "
                                 f"({type(error).__name__}: {first})") from None


def _requested_global(error: Exception) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return found.group(1) if found else "an object that is not plain data"


# What ``checked`` accepts per field: a type, a tuple of types, or a nested schema.
Schema = dict[str, Any]


def checked(data: Any, schema: Schema, where: str, optional: tuple[str, ...] = ()) -> dict:
    """``data`` when it is a dict whose fields have the types ``schema`` names (``float``
    accepts ints; numbers must be finite unless the schema allows ``float('nan')`` by naming
    ``"nan"``); else UntrustedFileError naming ``where`` and the field. Fields listed in
    ``optional`` may be missing; fields the schema does not name are kept as they are."""
    if not isinstance(data, dict):
        raise UntrustedFileError(f"{where}: expected an object, found {_kind(data)}")
    for name, expected in schema.items():
        if name not in data:
            if name in optional:
                continue
            raise UntrustedFileError(f"{where}: the field {name!r} is missing")
        if not _matches(data[name], expected):
            raise UntrustedFileError(f"{where}: the field {name!r} holds {_kind(data[name])} "
                                     f"{_shown(data[name])}; expected {_describe(expected)}")
    return data


NAN_OK = "nan"  # in a schema tuple: this float field may be NaN (a metric not measured)


def _matches(value: Any, expected: Any) -> bool:
    options = expected if isinstance(expected, tuple) else (expected,)
    for option in options:
        if option is NAN_OK:
            continue
        if option is None and value is None:
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value) or (NAN_OK in options and math.isnan(value)):
                return True
            continue
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(option, type) and option not in (int, float) and isinstance(value, option):
            return True
    return False


def _describe(expected: Any) -> str:
    options = expected if isinstance(expected, tuple) else (expected,)
    names = {None: "null", int: "an integer", float: "a finite number", str: "a string",
             bool: "true or false", list: "a list", dict: "an object"}
    return " or ".join(names.get(o, getattr(o, "__name__", str(o))) for o in options
                       if o is not NAN_OK)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), f"a {type(value).__name__}")


def _shown(value: Any) -> str:
    text = repr(value)
    return f"({text[:40]}...)" if len(text) > 43 else f"({text})"
