"""Nothing is deleted or written outside the folder it belongs to: the cache root, or a
command's ``--out``.

Every path a delete or a write is aimed at goes through ``contained(root, path)`` first: the
path must lie lexically under ``root`` (no ``..``), no component between ``root`` and it may be
a symlink (a link can point anywhere, so one is never followed, even back inside), and what it
resolves to must lie inside what ``root`` resolves to. ``root`` itself is the user's choice (a
``--out`` or a cache that is a symlink is followed once, to find the real folder).

Cache keys read from files (a compare data folder's ``train_runs.json``) become folder names,
so one must be exactly a sha256 in lowercase hex (``cache_key``): ``.``, ``..``, ``/any/dir``
and ``../../dir`` never reach a path.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from resnet_probe.errors import InvalidRequest

CACHE_KEY = re.compile(r"[0-9a-f]{64}")


class OutsideError(InvalidRequest):
    """A path that leaves the folder it must stay in, or runs through a symlink."""


def cache_key(value: object, where: str) -> str:
    """``value`` when it is a cache key (64 lowercase hex characters, a sha256); else
    OutsideError naming ``where``."""
    if not isinstance(value, str) or CACHE_KEY.fullmatch(value) is None:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise OutsideError(f"{where}: the cache key {shown} is not a cache key; a key is "
                           f"exactly 64 lowercase hexadecimal characters (a sha256)")
    return value


def contained(root: str | Path, path: str | Path, what: str = "path") -> Path:
    """``path`` (absolute, or relative to ``root``) when it lies inside ``root`` through no
    symlink; its real location is returned. Else OutsideError naming both."""
    root, given = Path(os.path.abspath(root)), Path(path)
    parts = Path(os.path.abspath(given if given.is_absolute() else root / given)).parts
    if ".." in given.parts or parts[:len(root.parts)] != root.parts:
        raise OutsideError(f"{what} {str(path)!r} is outside {str(root)!r}; resnet-probe "
                           f"deletes and writes only inside it")
    real_root = root.resolve()
    current = root
    for name in parts[len(root.parts):]:
        current = current / name
        if current.is_symlink():
            raise OutsideError(f"{what} {str(path)!r} runs through the symlink "
                               f"{str(current)!r} (to {os.readlink(current)!r}); resnet-probe "
                               f"follows no symlink inside {str(root)!r} when it deletes or "
                               f"writes. Remove the link, or choose another folder")
    real = current.resolve()
    if real != real_root and real_root not in real.parents:
        raise OutsideError(f"{what} {str(path)!r} resolves to {str(real)!r}, outside "
                           f"{str(real_root)!r}")
    return real


def remove_inside(root: str | Path, path: str | Path) -> None:
    """Delete ``path`` (a file, or a folder and all it holds) once ``contained`` confirms it
    lies inside ``root``; a symlink at ``path`` itself is unlinked, never followed. Missing is
    fine; a failure to delete is ignored (the caller recomputes)."""
    path = Path(path)
    if path.is_symlink():
        contained(root, path.parent, "the folder of a link to remove")
        path.unlink(missing_ok=True)
        return
    real = contained(root, path, "a path to delete")
    if real == Path(root).resolve():
        raise OutsideError(f"refusing to delete the whole of {str(root)!r}")
    if real.is_dir():
        shutil.rmtree(real, ignore_errors=True)
    else:
        try:
            real.unlink(missing_ok=True)
        except OSError:
            pass
