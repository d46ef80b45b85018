"""Files from elsewhere are data, never code: RUN folders, caches, checkpoints, ``--weights``,
baselines and tables may come from a colleague or a download.

Torch files are read with ``torch.load(weights_only=True)``: tensors, dicts, lists, strings and
numbers only. A file that asks for anything more (a pickled class, ``os.system``) is refused,
naming the file and what it asked for; nothing in it runs. Before anything is inflated, the
file's zip directory is read and checked (``archive_problem``): it must be a regular file and
a zip archive, its pickle bounded, no entry compressed beyond a sane ratio, and, where the
caller knows what the file should hold, its declared size within a margin of that. A reader
that needs only the plain data (a checkpoint's record) loads the tensors on the meta device:
their shapes and dtypes, and not one byte of their data.

Plain data read from such a file (JSON, or a checkpoint's record) is checked field by field
with ``checked`` before use; ``read_json`` bounds a JSON file's size and nesting. A file that is
not what it should hold is a bad input (``UntrustedFileError``, an ``InvalidRequest``: exit 2).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from resnet_probe.errors import InvalidRequest

# Limits on what a torch file may declare before it is inflated. torch.save stores its entries
# uncompressed, so any compression is foreign; text and pickles compress about 5-10x, zeros
# 1000x: an entry may inflate to RATIO times its stored size, plus SLACK (small zero buffers).
MAX_COMPRESSION_RATIO = 20
COMPRESSION_SLACK_BYTES = 1 << 20
# The pickle holds names, shapes and a run's record (about 100 bytes a training step).
MAX_PICKLE_BYTES = 256 << 20
# Where the caller knows the model a file should fit: its state_dict's bytes times this, plus
# this much (a float64 copy and a training checkpoint's momentum both fit; so do the record
# and the zip's own files).
STATE_BYTES_FACTOR = 4
STATE_BYTES_SLACK = 16 << 20
# JSON files read from elsewhere (tables, manifests, records): larger ones are refused unread.
MAX_JSON_BYTES = 64 << 20


class UntrustedFileError(InvalidRequest):
    """A file whose content is not what it should hold (damaged, foreign, wrong types); the
    message names the file."""


class UnsafeFileError(UntrustedFileError):
    """A file that would run code when loaded: refused, never skipped as merely damaged."""


def allowed_bytes(expected: Mapping[str, torch.Tensor]) -> int:
    """What a file holding ``expected`` (a model's state_dict, meta tensors will do) may declare
    at most."""
    return STATE_BYTES_FACTOR * state_bytes(expected) + STATE_BYTES_SLACK


def state_bytes(state: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values()
               if isinstance(t, torch.Tensor))


def archive_problem(path: Path, max_bytes: int | None = None) -> str | None:
    """Why ``path`` cannot be a torch file safe to inflate, read from its zip directory alone
    (nothing is decompressed); None when it can."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not stat.S_ISREG(mode):  # /dev/zero, a FIFO: never read them
        return "is not a torch file (not a regular file: a device, a folder or a pipe)"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        return (f"is damaged or not a torch file (torch.save writes a zip archive; this is "
                f"not one: {error}); random bytes, an empty file and torch's legacy format "
                f"from before torch 1.6 read this way: re-save a legacy file with torch.save")
    declared = sum(entry.file_size for entry in entries)
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED and entry.file_size > \
                MAX_COMPRESSION_RATIO * entry.compress_size + COMPRESSION_SLACK_BYTES:
            return (f"declares that its entry {entry.filename!r} inflates from "
                    f"{entry.compress_size:,} to {entry.file_size:,} bytes, beyond "
                    f"{MAX_COMPRESSION_RATIO}x; torch.save does not compress, so it was not "
                    f"written by torch.save")
        if entry.filename.endswith("data.pkl") and entry.file_size > MAX_PICKLE_BYTES:
            return (f"declares a {entry.file_size:,}-byte pickle ({entry.filename!r}), above "
                    f"the {MAX_PICKLE_BYTES:,} bytes any record needs")
    if max_bytes is not None and declared > max_bytes:
        return (f"declares {declared:,} bytes of content, far beyond the {max_bytes:,} bytes "
                f"the model it is for can hold (its state_dict's bytes x "
                f"{STATE_BYTES_FACTOR} + {STATE_BYTES_SLACK >> 20} MiB)")
    return None


def load_tensors(path: str | Path, what: str, device: torch.device | str = "cpu",
                 max_bytes: int | None = None) -> Any:
    """``path`` loaded as tensors and plain data only, after its zip directory is checked
    (``archive_problem``; ``max_bytes``: the most it may declare). ``device="meta"`` reads
    the plain data and each tensor's shape and dtype, and none of their data.
    FileNotFoundError passes through; a file that needs code to load raises UnsafeFileError;
    any other failure to read it is a damaged file (UntrustedFileError, with torch's
    reason)."""
    path = Path(path)
    problem = archive_problem(path, max_bytes)
    if problem is not None:
        raise UntrustedFileError(f"{what} {str(path)!r} {problem}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        requested = _requested_global(error)
        if requested is None:  # a broken pickle, not a request for code
            raise UntrustedFileError(f"{what} {str(path)!r} is damaged: not a torch file "
                                     f"resnet-probe can read (its pickle is broken)") from None
        raise UnsafeFileError(
            f"{what} {str(path)!r} was refused: loading it would construct "
            f"{requested}, and resnet-probe loads only tensors and plain data "
            f"from files (nothing in it ran). A file written by resnet-probe 0.1 before "
            f"checkpoint format 3 holds a pickled record too: delete it and retrain") from None
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged files
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UntrustedFileError(f"{what} {str(path)!r} is damaged or not a torch file "
                                 f"({type(error).__name__}: {first})") from None


def _requested_global(error: Exception) -> str | None:
    """The class or function a refused pickle asked for; None when it asked for none (the
    pickle is merely broken)."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    if found:
        return found.group(1)
    if re.search(r"Can only (create new object|build)|call reduce for", str(error)):
        return "an object that is not plain data"
    return None


def state_dict_problems(expected: Mapping[str, torch.Tensor], found: Any) -> list[str]:
    """What keeps ``found`` (a state_dict read from a file, meta tensors will do) from fitting
    ``expected`` (a model's): missing and unexpected names, shapes, and dtypes of another kind
    (a float where the model holds a float, an integer or bool where it holds one), in words;
    empty when it fits."""
    if not isinstance(found, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in found.items()):
        return [f"it holds {_kind(found)}, not a state_dict of named tensors"]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k}: {tuple(found[k].shape)} in the file, {tuple(expected[k].shape)} in the "
              f"model" for k in expected if k in found
              and tuple(found[k].shape) != tuple(expected[k].shape)]
    dtypes = [f"{k}: {found[k].dtype} in the file, {expected[k].dtype} in the model"
              for k in expected if k in found and not _same_kind(found[k], expected[k])]
    return [text for text in (
        _listed("missing", missing), _listed("unexpected", unexpected),
        f"shapes differ for {'; '.join(shapes[:5])}" if shapes else "",
        f"dtypes differ for {'; '.join(dtypes[:5])}" if dtypes else "") if text]


def _same_kind(found: torch.Tensor, expected: torch.Tensor) -> bool:
    if found.is_complex() or expected.is_complex():
        return found.dtype == expected.dtype
    if expected.is_floating_point():
        return found.is_floating_point()
    return not found.is_floating_point() and (found.dtype == torch.bool) == \
        (expected.dtype == torch.bool)


def _listed(what: str, names: list[str]) -> str:
    if not names:
        return ""
    more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
    return f"{what} {', '.join(names[:5])}{more}"


def tensor_problems(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Values no trained net holds, in words: a NaN or an infinity in any floating tensor, a
    negative BN running variance or batch count. Empty when there are none."""
    problems = []
    for name, tensor in state.items():
        if tensor.device.type == "meta":
            continue  # no values to check
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            problems.append(f"{name} holds {count:,} NaN or infinite value(s)")
        elif name.endswith(("running_var", "num_batches_tracked")) and \
                bool((tensor < 0).any()):
            problems.append(f"{name} holds negative values (a variance or count)")
    return problems


def read_json(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON file from elsewhere: bounded in size (checked before reading) and nesting;
    UntrustedFileError names the file. FileNotFoundError passes through."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not stat.S_ISREG(path.stat().st_mode):
            raise UntrustedFileError(f"{what} {str(path)!r} is not a regular file")
        if size > max_bytes:
            raise UntrustedFileError(f"{what} {str(path)!r} holds {size:,} bytes, above the "
                                     f"{max_bytes:,} it may hold; it is not a file "
                                     f"resnet-probe wrote")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise UntrustedFileError(f"{what} {str(path)!r} is not UTF-8 text") from None
    except OSError as error:
        raise UntrustedFileError(f"{what} {str(path)!r} cannot be read "
                                 f"({error.strerror or error})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UntrustedFileError(f"{what} {str(path)!r} nests too deeply to be a file "
                                 f"resnet-probe wrote") from None
    except ValueError as error:
        raise UntrustedFileError(f"{what} {str(path)!r} is not valid JSON ({error})") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


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
