"""A training run folder: one writer at a time, a manifest that a resume must match, and where
each run's checkpoint lives (``OUT/runs/NAME-seedN.pt``).

The manifest records everything that changes a result (models, seeds, recipe, data, versions)
and a hash of it. A resume continues only a folder whose manifest matches the new request;
a mismatch names every differing field. The lock is an advisory ``fcntl.flock`` on
``FOLDER/.lock`` holding the writer's PID, released by the kernel if the process dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from resnet_probe.contained import OutsideError, contained, remove_inside
from resnet_probe.errors import InvalidRequest
from resnet_probe.results import atomic_write_text
from resnet_probe.untrusted import UntrustedFileError, read_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
LOCK = ".lock"


class ManifestMismatch(InvalidRequest):
    """A resume whose arguments differ from the run it would continue."""


class RunFolderLocked(ValueError):
    """Another process is writing into the same run folder."""


def manifest(config: Any, dataset_description: str) -> dict[str, Any]:
    from resnet_probe._version import __version__

    content = {"config": json_safe(dataclasses.asdict(config)), "data": dataset_description,
               "versions": {"resnet-probe": __version__, "torch": torch.__version__}}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {"format": MANIFEST_FORMAT, **content, "hash": digest}


def write_manifest(folder: Path, content: dict[str, Any]) -> Path:
    return atomic_write_text(Path(folder) / MANIFEST, json.dumps(content, indent=2) + "\n")


def check_resume(folder: Path, wanted: dict[str, Any]) -> None:
    """Raise ManifestMismatch unless ``folder`` holds a run with exactly ``wanted``'s content."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ManifestMismatch(f"{str(folder)!r} has no {MANIFEST}, so what it holds cannot be "
                               f"checked against this request; start a fresh run instead")
    try:
        found = read_json(path, "run manifest")
    except UntrustedFileError as error:
        raise ManifestMismatch(f"{str(path)!r} is damaged ({error}); start a fresh run "
                               f"instead") from None
    if not isinstance(found, dict) or found.get("format") != MANIFEST_FORMAT:
        raise ManifestMismatch(f"{str(path)!r} is not a format-{MANIFEST_FORMAT} resnet-probe "
                               f"manifest; start a fresh run instead")
    if found.get("hash") == wanted["hash"]:
        return
    before, now = _flatten(found), _flatten(wanted)
    differing = [key for key in sorted(set(before) | set(now))
                 if key != "hash" and before.get(key) != now.get(key)]
    details = "; ".join(f"{key}: {before.get(key)!r} in the run, {now.get(key)!r} now"
                        for key in differing)
    raise ManifestMismatch(f"resuming would mix two different runs in {str(folder)!r}: "
                           f"{details}. Resume with the run's own arguments, or start over")


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:  # never through a symlink: the lock file is truncated and written
        descriptor = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if (folder / LOCK).is_symlink():
            raise OutsideError(f"{str(folder / LOCK)!r} is a symlink; resnet-probe writes "
                               f"its lock file only inside {str(folder)!r}, through no "
                               f"symlink. Remove the link") from None
        raise OSError(f"cannot write the lock file {str(folder / LOCK)!r}: "
                      f"{error.strerror or error}") from None
    handle = os.fdopen(descriptor, "r+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise RunFolderLocked(f"{str(folder)!r} is in use by another resnet-probe run "
                                  f"(process {owner}); wait for it to finish or choose "
                                  f"another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, other objects their str)."""
    return json.loads(json.dumps(value, default=str))


# --- the folder's layout: OUT/runs/NAME-seedN.pt, one checkpoint per (model, seed) ---------

RUNS = "runs"  # OUT/runs/NAME-seedN.pt: one checkpoint per (model, seed)
TRAIN_RUNS = "train_runs"  # the table naming each run's cache entry


def runs_folder(out_dir: Path) -> Path:
    """``OUT/runs``, once ``contained`` confirms it (and ``runs/rescaled``) lie inside OUT
    through no symlink: checkpoints are deleted and written there."""
    contained(out_dir, Path(out_dir) / RUNS / "rescaled", "the checkpoint folder")
    return Path(out_dir) / RUNS


def has_checkpoints(out_dir: Path) -> bool:
    """Whether a run folder holds a checkpoint, the one thing a resume continues from."""
    return any((Path(out_dir) / RUNS).glob("*.pt"))


def discard_checkpoints(out_dir: Path) -> None:
    """Delete a run folder's checkpoints (weights and optimizer state), keeping its tables;
    only inside OUT (a checkpoint that is a symlink is unlinked, never followed)."""
    runs = runs_folder(out_dir)
    for folder in (runs, runs / "rescaled"):
        for checkpoint in folder.glob("*.pt"):
            remove_inside(out_dir, checkpoint)


def checkpoint_path(runs_dir: Path, label: str, seed: int, intervened: bool = False) -> Path:
    """Where one (model, seed) run keeps its checkpoint: ``runs/NAME-seedN.pt``, an intervened
    run's under ``runs/intervened/``."""
    suffix = "-intervened" if intervened else ""
    return (runs_dir / "intervened" if intervened else runs_dir) / \
        f"{safe_name(label)}-seed{seed}{suffix}.pt"


def safe_name(name: str) -> str:
    """A model's label as a file name; a long one (a factory's full path) keeps its start and
    a digest of the whole, so it stays distinct and within the file system's 255 bytes."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    if len(safe.encode()) <= SAFE_NAME_BYTES:
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return safe.encode()[:SAFE_NAME_BYTES - 17].decode(errors="ignore") + "-" + digest


SAFE_NAME_BYTES = 160  # leaves room for "-seedN-rescaled.pt" and a temporary file's affixes
