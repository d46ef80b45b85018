"""MODEL text read from a file is data: a baseline's entries, a checkpoint's record, a run
folder's manifest, a compare data folder's ``train_runs.json`` and an earlier degradation run
may come from anyone, so what they name must not run code.

Such a text may be a zoo name (``resnet50``), a spec text (``cifar[layers=3-3-3]``),
``torchvision:NAME[...]`` or ``timm:NAME[...]``, or ``plain:`` / ``plain[reinit]:`` of one of
these: each builds a model from a library's own code. A ``FILE.py:factory`` runs the file, so
one read from a file is refused unless the user passes the trust flag (``--trust-sources``,
``trust_sources=True``), and even then only when the file lies inside the folder of the file
that names it (``base_dir``), reached through no symlink and no ``..``. A
``package.module:factory`` read from a file is always refused: it would import whatever the
file names (``os:system``, ``subprocess:run``). Every refusal names the file, the field, what
is accepted, and the flag that would allow it where one does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_probe.contained import OutsideError, contained
from resnet_probe.sources.errors import SourceError
from resnet_probe.sources.grammar import TIMM, TORCHVISION, builder_arguments, is_file_location
from resnet_probe.sources.inputs import InputSpec
from resnet_probe.sources.resolving import resolve
from resnet_probe.sources.source import ModelSource

# Longer texts are refused unread: no model name needs more, and a nested plain:plain:... or a
# builder argument nested thousands deep would otherwise reach the parser.
MAX_RECORDED_CHARS = 1000
TRUST_FLAG = "--trust-sources (trust_sources=True in the Python API)"
ACCEPTED = ("a zoo name (resnet50), a spec text (cifar[layers=3-3-3]), torchvision:NAME[...] "
            "or timm:NAME[...], or plain: / plain[reinit]: of one of these")
_PLAIN_PREFIXES = re.compile(r"^((?:plain(?:\[reinit\])?:)*)(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Recorded:
    """Where a MODEL text was read: ``where`` names the file and field (every refusal starts
    with it), ``base_dir`` is that file's folder, the only place a trusted FILE.py may lie."""

    where: str
    base_dir: Path
    trust_sources: bool = False

    @property
    def folder(self) -> str:
        """The folder a trusted FILE.py must lie in, as the messages show it."""
        return str(Path(self.base_dir).absolute())

    def checked(self, text: Any) -> str:
        """``text`` as ``resolve`` should take it (a trusted file's path made absolute), or
        SourceError (an InvalidRequest: exit 2) saying why it may not run."""
        if not isinstance(text, str) or not text.strip():
            raise SourceError(f"{self.where}: the model must be a MODEL text, found "
                              f"{type(text).__name__} {_shown(text)}; accepted: {ACCEPTED}")
        if len(text) > MAX_RECORDED_CHARS:
            raise SourceError(f"{self.where}: the model text has {len(text):,} characters, "
                              f"more than the {MAX_RECORDED_CHARS:,} any MODEL needs")
        match = _PLAIN_PREFIXES.match(text.strip())
        assert match is not None  # the pattern matches any text
        prefix, inner = match.groups()
        try:
            base, _ = builder_arguments(inner)
        except (RecursionError, MemoryError):
            raise SourceError(f"{self.where}: the builder arguments of {_shown(text)} nest too "
                              f"deeply; values are Python literals such as 42, 0.1, 'name'"
                              ) from None
        except SourceError as error:
            raise SourceError(f"{self.where}: {error}") from None
        if base.startswith((TORCHVISION, TIMM)) or ":" not in base:
            return text  # a library's model, a zoo name or a spec text
        location, _, function = base.rpartition(":")
        if not is_file_location(location):
            raise SourceError(
                f"{self.where}: {_shown(text)} would import the Python module {location!r} "
                f"and call its {function!r}; a model read from a file never imports a module "
                f"(nothing was imported). Accepted: {ACCEPTED}; or, with {TRUST_FLAG}, a "
                f"FILE.py:factory inside {self.folder!r}")
        if not self.trust_sources:
            raise SourceError(
                f"{self.where}: {_shown(text)} would run the code in {location!r}, and a "
                f"model read from a file runs no code unless you say so (nothing ran). "
                f"Accepted: {ACCEPTED}. To run a FILE.py:factory that lies inside "
                f"{self.folder!r}, pass {TRUST_FLAG}")
        path = self._inside(location)
        return f"{prefix}{path}{inner[len(location):]}"

    def _inside(self, location: str) -> Path:
        """The real path of a trusted FILE.py: inside ``base_dir``, no ``.``/``..`` parts, no
        symlink on the way."""
        parts = location.replace("\\", "/").split("/")
        if Path(location).is_absolute():
            parts = parts[1:]
        if ".." in parts:
            raise SourceError(
                f"{self.where}: {location!r} climbs out through '..'; even with "
                f"{TRUST_FLAG}, a FILE.py:factory read from a file must lie inside "
                f"{self.folder!r}")
        if not location.endswith(".py") or any(p in ("", ".") for p in parts):
            raise SourceError(
                f"{self.where}: {location!r} is not a path to a .py file without '.' or empty "
                f"parts; a FILE.py:factory read from a file names a file inside "
                f"{self.folder!r}")
        given = Path(location)
        try:
            real = contained(self.base_dir, given, "the factory file")
        except OutsideError as error:
            raise SourceError(f"{self.where}: {error}; even with {TRUST_FLAG}, a "
                              f"FILE.py:factory read from a file must lie inside "
                              f"{self.folder!r}") from None
        if not real.is_file():
            raise SourceError(f"{self.where}: no such file {str(real)!r}")
        return real


def resolve_recorded(text: Any, where: str, *, base_dir: str | Path,
                     trust_sources: bool = False, in_channels: int | None = None,
                     input_size: int | None = None, inputs: InputSpec | None = None
                     ) -> ModelSource:
    """A MODEL text read from a file, resolved once it is known to be data (the module
    docstring); ``where`` names the file and field for every refusal."""
    recorded = Recorded(where, Path(base_dir), trust_sources)
    return resolve(recorded.checked(text), in_channels, input_size, inputs=inputs)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["ACCEPTED", "MAX_RECORDED_CHARS", "Recorded", "resolve_recorded"]
