"""Finished training runs, cached content-addressed in the user's cache directory.

An entry is a folder named by the sha256 of everything that changes a run's result: the model's
spec, the recipe (device included), the data's content, the seed, the number of processes and
the torch and resnet-probe versions. It holds ``run.pt``, the run's finished checkpoint (its
record and final weights in half precision, no optimizer state), and ``entry.json``, the key's
content and run.pt's sha256. Entries are written to a temporary folder and renamed into place,
so a reader sees a whole entry or none; one whose hash or content does not check out is named,
deleted and recomputed, never trusted.

Where: ``$RESNET_PROBE_CACHE_DIR``, else ``$XDG_CACHE_HOME/resnet-probe``, else
``~/.cache/resnet-probe``; runs live under ``runs/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnet_probe.data import ImageDataset
from resnet_probe.sources import resolve
from resnet_probe.train.loop import CorruptCheckpoint, TrainConfig, load_checkpoint
from resnet_probe.train.run_folder import json_safe
from resnet_probe.untrusted import UnsafeFileError

CACHE_ENV = "RESNET_PROBE_CACHE_DIR"
ENTRY_FORMAT = 1
ENTRY = "entry.json"
RUN_FILE = "run.pt"


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "resnet-probe"


@dataclass(frozen=True)
class CacheUsage:
    path: Path
    entries: int
    bytes: int

    def __str__(self) -> str:
        what = "results" if self.path.name == "analyses" else "runs"
        return f"{self.entries} {what}, {self.bytes / 1e6:.1f} MB in {self.path}"


class RunCache:
    """Finished runs by content key. ``problems`` collects every entry found damaged."""

    def __init__(self, root: Path | None = None, fresh: bool = False) -> None:
        self.path = Path(root or cache_root()) / "runs"
        self.fresh = fresh  # ignore existing entries (they are overwritten as runs finish)
        self.problems: list[str] = []

    def key(self, model: str, dataset: ImageDataset, recipe: TrainConfig, seed: int,
            world_size: int = 1) -> tuple[str, dict[str, Any]]:
        from resnet_probe import __version__

        content = {"format": ENTRY_FORMAT, "model": resolve(model).identity(),
                   "recipe": json_safe(dataclasses.asdict(recipe)),
                   "data": {"description": dataset.description,
                            "sha256": dataset_fingerprint(dataset)},
                   "seed": seed, "world_size": world_size,
                   "versions": {"torch": torch.__version__, "resnet-probe": __version__}}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest(), content

    def lookup(self, key: str) -> Path | None:
        """The entry's finished checkpoint, or None on a miss or a damaged entry (deleted,
        and named in ``problems``)."""
        folder = self.path / key
        if self.fresh or not folder.exists():
            return None
        problem = _check_entry(folder, key)
        if problem is None:
            return folder / RUN_FILE
        self.problems.append(f"cache entry {str(folder)!r} was {problem}; it was deleted and "
                             f"the run recomputed")
        shutil.rmtree(folder, ignore_errors=True)
        return None

    def store(self, key: str, content: dict[str, Any], checkpoint: Path) -> Path:
        """Copy a finished checkpoint into the cache as one atomic entry."""
        self.path.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.path))
        try:
            shutil.copyfile(checkpoint, staging / RUN_FILE)
            entry = {**content, "key": key, "run_sha256": _sha256(staging / RUN_FILE)}
            (staging / ENTRY).write_text(json.dumps(entry, indent=2) + "\n")
            final = self.path / key
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final / RUN_FILE

    def usage(self) -> CacheUsage:
        entries = [p for p in self.path.iterdir() if p.is_dir()] if self.path.exists() else []
        size = sum(f.stat().st_size for entry in entries for f in entry.rglob("*")
                   if f.is_file())
        return CacheUsage(self.path, len(entries), size)

    def clear(self) -> CacheUsage:
        """Delete every entry; returns what was freed."""
        freed = self.usage()
        if self.path.exists():
            shutil.rmtree(self.path)
        return freed


def _check_entry(folder: Path, key: str) -> str | None:
    """Why an entry cannot be trusted, or None."""
    try:
        entry = json.loads((folder / ENTRY).read_text())
    except FileNotFoundError:
        return f"partial (no {ENTRY})"
    except (ValueError, UnicodeDecodeError) as error:
        return f"damaged ({ENTRY} unreadable: {error})"
    if entry.get("format") != ENTRY_FORMAT or entry.get("key") != key:
        return f"from another format or key ({ENTRY} says {entry.get('key')!r})"
    run_file = folder / RUN_FILE
    if not run_file.exists():
        return f"partial (no {RUN_FILE})"
    if _sha256(run_file) != entry.get("run_sha256"):
        return f"damaged ({RUN_FILE} does not match its recorded sha256)"
    try:
        load_checkpoint(run_file)
    except UnsafeFileError as error:
        return f"unsafe ({error})"
    except CorruptCheckpoint as error:
        return f"damaged ({error})"
    return None


def dataset_fingerprint(dataset: ImageDataset) -> str:
    digest = hashlib.sha256()
    for tensor in (dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y):
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ResultCache:
    """Deterministic results (the analyses of trained nets, compare's gradients at init), one
    JSON file per content key, beside the runs: a rerun skips work whose inputs did not
    change.
    A damaged file is named in ``problems``, deleted and recomputed."""

    def __init__(self, root: Path | None = None, fresh: bool = False) -> None:
        self.path = Path(root or cache_root()) / "analyses"
        self.fresh = fresh
        self.problems: list[str] = []

    @staticmethod
    def key(content: dict[str, Any]) -> str:
        from resnet_probe import __version__

        content = {**content, "versions": {"torch": torch.__version__,
                                           "resnet-probe": __version__}}
        return hashlib.sha256(json.dumps(json_safe(content), sort_keys=True).encode()
                              ).hexdigest()

    def lookup(self, key: str) -> dict[str, Any] | None:
        path = self.path / f"{key}.json"
        if self.fresh or not path.exists():
            return None
        try:
            value = json.loads(path.read_text())
            if not isinstance(value, dict) or value.get("key") != key:
                raise ValueError("not an entry for this key")
        except (ValueError, UnicodeDecodeError) as error:
            self.problems.append(f"cached analysis {str(path)!r} was damaged ({error}); it "
                                 f"was deleted and recomputed")
            path.unlink(missing_ok=True)
            return None
        return value

    def store(self, key: str, value: dict[str, Any]) -> Path:
        from resnet_probe.results import atomic_write_text

        return atomic_write_text(self.path / f"{key}.json",
                                 json.dumps({**value, "key": key}, default=str))

    def usage(self) -> CacheUsage:
        files = list(self.path.glob("*.json")) if self.path.exists() else []
        return CacheUsage(self.path, len(files), sum(f.stat().st_size for f in files))

    def clear(self) -> CacheUsage:
        freed = self.usage()
        if self.path.exists():
            shutil.rmtree(self.path)
        return freed
