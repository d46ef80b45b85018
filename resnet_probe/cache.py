"""Every cache: finished training runs and deterministic results, kept by content, and never a
reason for a command to fail.

An entry is a folder ``KIND/KEY/`` holding its files and ``entry.json``: the format, the key,
the content it was computed from, and each file's sha256. The key is the sha256 of that
content (and of the torch and resnet-probe versions), so anything that changes a result changes
its key. Entries are built in a ``.partial-PID-...`` folder and renamed into place: a reader sees
a whole entry or none, and when two writers finish the same key the first rename wins and the
second finds a valid entry and drops its own. Stale partial folders (their writer is gone, or
they are a day old) are swept.

Reading an entry checks ``entry.json`` (which must list every file the entry holds, each with
its sha256), every file's sha256 and the kind's own decoding. An entry that fails any check is
named in ``problems``, deleted and recomputed, never trusted. Keys are sha256s (``contained.
cache_key``), and nothing is deleted or written but through ``contained``: inside the cache,
through no symlink (a symlinked entry is removed as a link, never followed).

A cache that cannot be used at all (a full disk, a read-only folder, a root that is a file) is
reported once per command (``CacheUnusableWarning``), with the fix, and the command finishes
without caching.

Where: ``$RESNET_PROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/resnet-probe``, else
``~/.cache/resnet-probe``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from resnet_probe._version import __version__
from resnet_probe.contained import OutsideError, cache_key, contained, remove_inside
from resnet_probe.untrusted import UntrustedFileError, read_json

CACHE_ENV = "RESNET_PROBE_CACHE_DIR"
ENTRY = "entry.json"
ENTRY_FORMAT = 2
MAX_ENTRY_JSON_BYTES = 16 << 20  # entry.json holds the key's content: a few kB
PARTIAL = ".partial-"
STALE_PARTIAL_SECONDS = 24 * 3600
T = TypeVar("T")


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnet-probe"


class CacheUnusableWarning(UserWarning):
    """The cache cannot be read or written; the command goes on without it."""


class DamagedEntry(Exception):
    """Raised by a kind's ``decode`` for content that does not hold what it should."""


@dataclass(frozen=True)
class CacheUsage:
    path: Path
    entries: int
    bytes: int
    what: str = "entries"

    def __str__(self) -> str:
        return f"{self.entries} {self.what}, {self.bytes / 1e6:.1f} MB in {self.path}"


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    key: str
    reused: bool  # read from the cache rather than computed


def content_key(content: dict[str, Any]) -> str:
    """The sha256 of ``content`` plus the versions that could change any result."""
    keyed = {**content, "versions": {"torch": torch.__version__, "resnet-probe": __version__}}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


class Store:
    """Entries of one kind (``runs``, ``results``). ``fresh`` ignores what is stored (new
    results still replace it). ``problems`` lists every damaged entry met, in words."""

    def __init__(self, kind: str, root: Path | None = None, fresh: bool = False,
                 what: str = "entries") -> None:
        self.root = Path(root or cache_root())
        self.path = self.root / kind
        self.fresh = fresh
        self.what = what
        self.problems: list[str] = []
        self._swept = False

    def get_or_compute(self, content: dict[str, Any], compute: Callable[[], T],
                       encode: Callable[[T, Path], None], decode: Callable[[Path], T],
                       keep: Callable[[T], bool] = lambda value: True) -> Cached[T]:
        """The value stored for ``content``, else ``compute()``, stored (when ``keep`` says
        so) by ``encode(value, folder)``, which writes the entry's files into ``folder``.
        ``decode(folder)`` reads a stored entry back (DamagedEntry or any error: damaged)."""
        key = content_key(content)
        found = self.lookup(key, decode)
        if found is not None:
            return Cached(found, key, reused=True)
        value = compute()
        if keep(value):
            self.store(key, content, lambda folder: encode(value, folder))
        return Cached(value, key, reused=False)

    def lookup(self, key: str, decode: Callable[[Path], T]) -> T | None:
        """The decoded entry for ``key`` (a sha256: anything else is refused, OutsideError);
        None on a miss, under ``fresh``, for a damaged entry (deleted and named in
        ``problems``) and when the cache cannot be read."""
        folder = self.path / cache_key(key, f"the {self.what} cache {str(self.path)!r}")
        if self.fresh:
            return None
        try:
            contained(self.root, self.path, "the cache folder")
            if not folder.exists() and not folder.is_symlink():
                return None
            problem = _entry_problem(folder, key)
            if problem is None:
                try:
                    return decode(folder)
                except Exception as error:  # noqa: BLE001 - any failure to decode is damage
                    problem = f"unreadable ({type(error).__name__}: {error})"
        except (OSError, OutsideError) as error:
            _unusable(self.path, error)
            return None
        self.problems.append(f"cache entry {str(folder)!r} was {problem}; it was deleted and "
                             f"recomputed")
        self._remove(folder)
        return None

    def store(self, key: str, content: dict[str, Any], write: Callable[[Path], None]) -> bool:
        """Write an entry atomically; False (with one warning per command) when the cache
        cannot be written."""
        try:
            cache_key(key, f"the {self.what} cache {str(self.path)!r}")
            self.path.mkdir(parents=True, exist_ok=True)
            contained(self.root, self.path, "the cache folder")
            self._sweep_partials()
            staging = Path(tempfile.mkdtemp(prefix=f"{PARTIAL}{os.getpid()}-", dir=self.path))
        except (OSError, OutsideError) as error:
            _unusable(self.path, error)
            return False
        try:
            write(staging)
            files = {p.name: _sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
            entry = {"format": ENTRY_FORMAT, "key": key, "content": content, "files": files}
            (staging / ENTRY).write_text(json.dumps(entry, indent=2, default=str) + "\n")
            self._publish(staging, self.path / key)
            return True
        except (OSError, OutsideError) as error:
            _unusable(self.path, error)
            return False
        finally:
            self._remove(staging)

    def _publish(self, staging: Path, final: Path) -> None:
        """Rename into place; a valid entry a concurrent writer published first stands."""
        try:
            os.rename(staging, final)
            return
        except OSError:
            if not final.is_symlink() and final.is_dir() and \
                    _entry_problem(final, final.name) is None:
                return  # the other writer won with the same content
        self._remove(final)  # a damaged entry, or a file or a link in its place
        os.rename(staging, final)

    def _sweep_partials(self) -> None:
        if self._swept:
            return
        self._swept = True
        for folder in self.path.glob(f"{PARTIAL}*"):
            if folder.is_symlink() or _writer_gone(folder) or \
                    time.time() - folder.stat().st_mtime > STALE_PARTIAL_SECONDS:
                self._remove(folder)

    def usage(self) -> CacheUsage:
        """Whole entries only: partial folders are not entries."""
        try:
            entries = [p for p in self.path.iterdir()
                       if p.is_dir() and not p.name.startswith(".")] if self.path.is_dir() else []
            size = sum(f.stat().st_size for entry in entries for f in entry.rglob("*")
                       if f.is_file())
        except OSError as error:
            _unusable(self.path, error)
            entries, size = [], 0
        return CacheUsage(self.path, len(entries), size, self.what)

    def clear(self) -> CacheUsage:
        """Delete every entry; returns what was freed. A folder that cannot be deleted is
        named with the fix (OSError)."""
        freed = self.usage()
        if self.path.exists():
            contained(self.root, self.path, "the cache folder")
            try:
                shutil.rmtree(self.path)
            except OSError as error:
                raise OSError(f"cannot clear the cache {str(self.path)!r}: "
                              f"{error.strerror or error} ({getattr(error, 'filename', '')}); "
                              f"make it writable, or point {CACHE_ENV} at another folder"
                              ) from None
        return freed


    def _remove(self, path: Path) -> None:
        """Delete ``path`` inside this cache only (``contained``); a link is unlinked."""
        remove_inside(self.root, path)


def _entry_problem(folder: Path, key: str) -> str | None:
    """Why an entry cannot be trusted, or None. ``entry.json`` must list every file the entry
    holds with its sha256, and nothing else may be there: an entry that lists none, or holds a
    file it does not list, cannot be checked, so it is damaged."""
    if folder.is_symlink():
        return "a symlink (never followed)"
    if not folder.is_dir():
        return "not a folder"
    try:
        entry = read_json(folder / ENTRY, "cache entry file", MAX_ENTRY_JSON_BYTES)
    except FileNotFoundError:
        return f"partial (no {ENTRY})"
    except UntrustedFileError as error:
        return f"damaged ({ENTRY} unreadable: {error})"
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT \
            or entry.get("key") != key or not isinstance(entry.get("files"), dict):
        return f"from another format or key ({ENTRY} does not describe this entry)"
    listed = entry["files"]
    if not listed:
        return f"damaged ({ENTRY} lists no files, so none can be checked)"
    held = {}
    for path in folder.iterdir():
        if path.name == ENTRY:
            continue
        if path.is_symlink() or not path.is_file():
            return f"damaged ({path.name} is not a plain file)"
        held[path.name] = path
    unlisted = sorted(set(held) - set(listed))
    if unlisted:
        return f"damaged ({', '.join(unlisted[:3])} not listed in {ENTRY})"
    for name, digest in listed.items():
        if name not in held:
            return f"partial (no {name})"
        if not isinstance(digest, str) or _sha256(held[name]) != digest:
            return f"damaged ({name} does not match its recorded sha256)"
    return None


def _unusable(path: Path, error: OSError | OutsideError) -> None:
    reason = getattr(error, "strerror", None) or error
    warnings.warn(CacheUnusableWarning(
        f"the cache at {str(path.parent)!r} cannot be used ({reason}); this "
        f"command finishes without caching. Fix: free space or permissions there, run "
        f"`resnet-probe cache clear`, or set {CACHE_ENV} to a writable folder"), stacklevel=3)


def _writer_gone(folder: Path) -> bool:
    try:
        pid = int(folder.name.removeprefix(PARTIAL).split("-")[0])
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_encoder(value: dict[str, Any], folder: Path) -> None:
    """``encode`` for results that are JSON objects."""
    (folder / "value.json").write_text(json.dumps(value, default=str))


def json_decoder(folder: Path) -> dict[str, Any]:
    value = json.loads((folder / "value.json").read_text())
    if not isinstance(value, dict):
        raise DamagedEntry(f"value.json holds a {type(value).__name__}, not an object")
    return value


def results_store(fresh: bool = False, root: Path | None = None) -> Store:
    """Deterministic results: the analyses of trained runs, gradients at init."""
    return Store("results", root, fresh, what="results")
