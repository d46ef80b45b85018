"""MODEL texts that travel with a baseline, and the library versions an entry records.

A ``FILE.py:factory`` source is recorded relative to the baseline's folder (``portable``), so
the baseline and the code move together, and made absolute again when it is read (``local``);
any other MODEL text is kept as given, ``plain:`` prefixes included. ``versions`` names the
libraries whose code decides an entry's counts; ``FOREIGN_KINDS`` are the source kinds built
outside the zoo (their groups are top-level modules, not stages).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch

from resnet_probe._version import __version__
from resnet_probe.sources import SourceKind

# A count summary's family: a zoo family (imagenet, cifar), or the kind of a foreign source.
FOREIGN_KINDS = tuple(kind for kind in SourceKind if kind is not SourceKind.ZOO)


def versions(kind: str) -> dict[str, str]:
    """The libraries whose code decides this entry's counts, at their installed versions."""
    found = {"torch": torch.__version__, "resnet_probe": __version__}
    for library in ("torchvision", "timm"):
        if kind in (library, SourceKind.PLAIN):
            with contextlib.suppress(Exception):  # a plain twin of a zoo net needs neither
                found[library] = __import__(library).__version__
    return found


def portable(model: str, baseline_dir: Path) -> str:
    """A ``FILE.py:factory`` source with its path relative to the baseline's folder (so the
    baseline and the code move together); other sources as given."""
    prefix, inner = _split_plain(model)
    match = _FILE_SOURCE.match(inner)
    if match is None:
        return model
    relative = os.path.relpath(Path(match["file"]).resolve(), baseline_dir.resolve())
    return f"{prefix}{Path(relative).as_posix()}:{match['rest']}"


def local(model: str, baseline_dir: Path) -> str:
    """The inverse of ``portable``: a recorded file path made absolute again."""
    prefix, inner = _split_plain(model)
    match = _FILE_SOURCE.match(inner)
    if match is None:
        return model
    path = Path(match["file"])
    return f"{prefix}{path if path.is_absolute() else baseline_dir / path}:{match['rest']}"


# FILE.py:factory[args]: the file, then the factory and its arguments
_FILE_SOURCE = re.compile(r"^(?P<file>[^\[]*\.py):(?P<rest>[A-Za-z_].*)$")


def _split_plain(model: str) -> tuple[str, str]:
    match = re.match(r"^((?:plain(?:\[reinit\])?:)*)(.*)$", model)
    assert match is not None
    return match.group(1), match.group(2)
