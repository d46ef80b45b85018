"""Pinning costs: measure requests and merge their entries into a baseline file.

``update_baseline`` measures the requests given (or re-measures a file's own entries from
their records, or the whole zoo for a new file) and merges them in; a MODEL that ``--check``
could never rebuild from the file (a ``package.module:factory``, a ``FILE.py`` outside the
baseline's folder) is refused before anything is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.regression.baseline_file import (
    BaselineError,
    load_baseline,
    merge_entries,
)
from resnet_probe.jobs.regression.entry import Request, entry_of
from resnet_probe.jobs.regression.portability import local, portable
from resnet_probe.progress import Progress
from resnet_probe.sources.recorded import Recorded
from resnet_probe.zoo import list_models


@dataclass(frozen=True)
class BaselineUpdate:
    path: Path
    added: list[str]
    replaced: list[str]
    kept: list[str]  # entries already in the file that this update did not touch


def measure_entries(requests: dict[str, Request], baseline_dir: Path,
                    progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    entries = {}
    for name, request in requests.items():
        entries[name] = entry_of(request, request.measure(), baseline_dir)
        if progress is not None:
            progress.update(1)
    return entries


def update_baseline(path: str | Path, requests: list[Request] | None = None,
                   replace: bool = False, progress: Progress | None = None,
                   trust_sources: bool = False) -> BaselineUpdate:
    """Measure ``requests`` and merge them into the baseline at ``path`` (``replace``: start
    the file afresh). With no requests, an existing file's own entries are re-measured from
    their records (the whole zoo for a new file), resolved as data (``trust_sources`` as in
    ``check_baseline``). A request whose MODEL a check could never rebuild from the file (a
    package.module:factory, a FILE.py outside the baseline's folder) is refused first."""
    path = Path(path)
    existing = {} if replace or not path.exists() else load_baseline(path).entries
    if requests:
        named = {request.label: request for request in requests}
        for request in requests:
            _check_recordable(request, path)
    elif existing:
        baseline = load_baseline(path)
        named = {name: baseline.request(name, trust_sources) for name in existing}
    else:
        named = {name: Request(name) for name in list_models()}
    fresh = measure_entries(named, path.parent, progress)
    merge_entries(path, fresh, replace=replace)
    return BaselineUpdate(path, added=[n for n in fresh if n not in existing],
                          replaced=[n for n in fresh if n in existing],
                          kept=[n for n in existing if n not in fresh])


def _check_recordable(request: Request, path: Path) -> None:
    """Refuse to pin a MODEL that ``--check`` could never rebuild from the baseline (with
    --trust-sources at most): its text as the file would record it must pass as data."""
    if not isinstance(request.model, str):
        return
    text = portable(request.model, path.parent)
    where = f"--update-baseline {str(path)!r}: {request.model!r}"
    try:
        Recorded(where, path.parent, trust_sources=True).checked(local(text, path.parent))
    except InvalidRequest as error:
        raise BaselineError(f"{error}. --check rebuilds each entry from the file, so record a "
                            f"zoo, torchvision: or timm: model, or a FILE.py:factory inside "
                            f"{str(path.parent)!r}") from None


def write_baseline(path: str | Path, models: list[str] | None = None,
                   replace: bool = False) -> BaselineUpdate:
    """Zoo names (default: the whole zoo) pinned at their defaults."""
    return update_baseline(path, [Request(m) for m in models or list_models()], replace)
