"""The cost-baseline file: its format, read as untrusted data, and written under a lock.

A baseline may come from anyone (a pull request edits it), so ``load_baseline`` treats it as
data: every field is checked, its size bounded (the limits below), and an error names the
first bad field and what is accepted. Format 1 files (zoo models, params and MACs per stage)
are read too. ``Baseline.request`` rebuilds an entry's ``Request`` with its MODEL text
resolved as recorded data (``sources.recorded``): a zoo name, a spec text, ``torchvision:`` or
``timm:`` (and their ``plain:`` twins) rebuild from library code, while a ``FILE.py:factory``
runs only with ``trust_sources`` and only from inside the baseline's folder.
``merge_entries`` writes entries in, merged with what is there, atomically and under an
exclusive lock on the folder (pytest-xdist workers update one file).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.regression.entry import DEFAULT_METRICS, METRICS, Request
from resnet_probe.jobs.regression.portability import local
from resnet_probe.results import atomic_write_text, cannot_write
from resnet_probe.sources import InputSpec
from resnet_probe.sources.recorded import Recorded
from resnet_probe.untrusted import UntrustedFileError, read_json

BASELINE_FORMAT = 2
MAX_VALUE = 2**63 - 1  # a count beyond int64 is a corrupt file, not a model
# What a baseline may hold: beyond these it is not a file resnet-probe wrote, and is refused
# before any entry is measured. The whole zoo's baseline is 48 kB, 56 entries and 732 values;
# a foreign model's groups are its top-level modules (a few dozen). The values bound the rows
# a check compares and the drift table it can print.
MAX_BASELINE_BYTES = 16 << 20
MAX_BASELINE_ENTRIES = 5_000
MAX_BASELINE_GROUPS = 2_000  # per entry
MAX_BASELINE_VALUES = 500_000  # pinned values over all entries and groups
ABOUT = ("resnet-probe cost baseline: per entry the model and what it was fed, and its pinned "
         "costs (params; MACs = conv + linear + attention multiply-accumulates, convention "
         "(a); flops = 2 x MACs; memory in bytes), for the whole model and per group.")


class BaselineError(InvalidRequest):
    """The baseline file is missing or malformed (the whole check is unusable: exit 2)."""


@dataclass
class Baseline:
    """A loaded baseline: its file and its entries by name, every field checked."""

    path: Path
    entries: dict[str, dict[str, Any]]

    def request(self, name: str, trust_sources: bool = False) -> Request:
        """The request an entry was measured with, its file paths made local again; its
        MODEL text is resolved as recorded data (``trust_sources``: a FILE.py:factory inside
        the baseline's folder may run)."""
        entry = self.entries[name]
        inputs = entry.get("inputs")
        where = f"baseline {str(self.path)!r} entry {name!r} field 'model'"
        return Request(local(entry["model"], self.path.parent), entry.get("input_size"),
                       entry.get("in_channels"),
                       InputSpec.from_record(inputs, f"{self.path} entry {name!r}")
                       if inputs else None, entry.get("batch_size", 1),
                       tuple(entry["metrics"]) or DEFAULT_METRICS,
                       Recorded(where, self.path.parent, trust_sources))


def load_baseline(path: str | Path) -> Baseline:
    """A baseline file, every field checked (it may come from anyone); format 1 files (zoo
    models, params and MACs per stage) are read too."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"baseline file {str(path)!r} does not exist; create it with "
                            f"an update (resnet-probe flops --update-baseline {path} MODEL)")
    try:
        data = read_json(path, "baseline file", MAX_BASELINE_BYTES)
    except UntrustedFileError as error:
        raise BaselineError(f"{error}; a baseline holds at most {MAX_BASELINE_BYTES >> 20} "
                            f"MiB of JSON") from None
    version = data.get("format") if isinstance(data, dict) else None
    if version == 1:
        data = _from_format_1(path, data)
    elif version != BASELINE_FORMAT:
        raise BaselineError(f"baseline file {str(path)!r} has format {version!r}; this version "
                            f"of resnet-probe reads formats 1 and {BASELINE_FORMAT}; regenerate "
                            f"it with --update-baseline --replace")
    entries = data.get("entries")
    if not isinstance(entries, dict) or not entries:
        raise BaselineError(f"baseline file {str(path)!r} has no \"entries\" object; expected "
                            f"{{\"entries\": {{name: {{model, metrics, groups, ...}}}}}}")
    if len(entries) > MAX_BASELINE_ENTRIES:
        raise BaselineError(f"baseline file {str(path)!r} has {len(entries):,} entries, more "
                            f"than the {MAX_BASELINE_ENTRIES:,} a baseline may hold; split it")
    values = 0
    for name, entry in entries.items():
        values += _check_entry(path, name, entry)
        if values > MAX_BASELINE_VALUES:
            raise BaselineError(f"baseline file {str(path)!r} pins more than "
                                f"{MAX_BASELINE_VALUES:,} values (at entry {name!r}); a check "
                                f"compares each, so a baseline may hold at most that many; "
                                f"split it")
    return Baseline(path, entries)


def _from_format_1(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise BaselineError(f"baseline file {str(path)!r} has no \"models\" object; expected "
                            f"{{\"models\": {{name: {{params, macs, stages}}}}}}")
    entries = {}
    for name, entry in models.items():
        if not isinstance(entry, dict) or not all(k in entry for k in ("params", "macs",
                                                                        "stages")):
            raise BaselineError(f"baseline entry {name!r} in {str(path)!r} needs the keys "
                                f"params, macs and stages")
        entries[name] = {"model": name, "input_size": entry.get("input_size"),
                         "in_channels": None, "inputs": None, "batch_size": 1,
                         "versions": {"torch": data.get("torch_version", "unknown")},
                         "metrics": {"params": entry["params"], "macs": entry["macs"]},
                         "grouped_by": "stage", "groups": entry["stages"]}
    return {"format": BASELINE_FORMAT, "entries": entries}


def _check_entry(path: Path, name: str, entry: Any) -> int:
    """Raise BaselineError naming the first bad field; returns how many values it pins."""
    where = f"baseline {str(path)!r} entry {name!r}"
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} is {type(entry).__name__}, not an object")
    if not isinstance(entry.get("model"), str) or not entry["model"].strip():
        raise BaselineError(f"{where}: \"model\" must be the MODEL text, e.g. \"resnet50\"")
    versions = entry.get("versions", {})
    if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()):
        raise BaselineError(f"{where}: \"versions\" must be an object of library -> version "
                            f"strings, e.g. {{\"torch\": \"2.13.0\"}}; found "
                            f"{_shown(versions)}")
    for key in ("grouped_by", "checked_by"):
        if key in entry and not isinstance(entry[key], str):
            raise BaselineError(f"{where}: {key!r} holds {_shown(entry[key])}; expected a "
                                f"string")
    for key in ("input_size", "in_channels"):
        value = entry.get(key)
        if value is not None and not _is_count(value, minimum=1):
            raise BaselineError(f"{where}: {key!r} holds {value!r}; expected a positive "
                                f"integer or null")
    if not _is_count(entry.get("batch_size", 1), minimum=1):
        raise BaselineError(f"{where}: 'batch_size' holds {entry.get('batch_size')!r}; "
                            f"expected a positive integer")
    metrics = entry.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise BaselineError(f"{where}: \"metrics\" must be an object of pinned values, e.g. "
                            f"{{\"params\": 25557032, \"macs\": 4089184256}}")
    _check_values(where, metrics)
    groups = entry.get("groups", {})
    if not isinstance(groups, dict):
        raise BaselineError(f"{where}: \"groups\" must be an object of group -> values")
    if len(groups) > MAX_BASELINE_GROUPS:
        raise BaselineError(f"{where}: {len(groups):,} groups, more than the "
                            f"{MAX_BASELINE_GROUPS:,} an entry may pin")
    for group, values in groups.items():
        if not isinstance(values, dict):
            raise BaselineError(f"{where} group {group!r}: expected an object of values")
        _check_values(f"{where} group {group!r}", values)
    inputs = entry.get("inputs")
    if inputs is not None:
        try:
            InputSpec.from_record(inputs, where)
        except InvalidRequest as error:
            raise BaselineError(str(error)) from None
    return len(metrics) + sum(len(values) for values in groups.values())


def _check_values(where: str, values: dict[str, Any]) -> None:
    for metric, value in values.items():
        if metric not in METRICS:
            raise BaselineError(f"{where}: unknown metric {metric!r}; a baseline pins "
                                f"{', '.join(METRICS)}")
        if not _is_count(value):
            raise BaselineError(f"{where}: {metric} holds {_shown(value)}; expected a whole "
                                f"number from 0 to {MAX_VALUE:,}")


def _is_count(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and \
        minimum <= value <= MAX_VALUE


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def merge_entries(path: Path, fresh: dict[str, dict[str, Any]], replace: bool = False) -> None:
    """Write ``fresh`` into the baseline at ``path``, merged with what is there, under an
    exclusive lock (pytest-xdist workers update one file) and atomically."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The folder is the lock: the file is replaced atomically, so its inode changes.
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        existing = {} if replace or not path.exists() else load_baseline(path).entries
        baseline = {"format": BASELINE_FORMAT, "about": ABOUT,
                    "entries": dict(sorted({**existing, **fresh}.items()))}
        atomic_write_text(path, json.dumps(baseline, indent=2) + "\n")
    finally:
        os.close(folder)  # and the lock with it
