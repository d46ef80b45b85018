"""Cost regression checks: a committed baseline of any model's costs, per model and per group.

A baseline entry records everything that changes a count, so ``--check`` can rebuild the model
from it alone: the MODEL as given (a ``FILE.py:factory`` path relative to the baseline file),
its input (``--input-size``/``--in-channels``, or an ``--input`` spec), the batch size, the
metrics pinned, and the library versions it was measured with. Values are pinned for the whole
model and per group: per stage for zoo nets (their structure is known), per top-level module
for any other model (no graph tracing needed, so a check stays fast).

A baseline may come from anyone (a pull request edits it), so it is data: every field is
checked, its size bounded (the limits below), and its MODEL texts are resolved as recorded
data (``sources.recorded``): a zoo name, a spec text, ``torchvision:`` or ``timm:`` (and their
``plain:`` twins) rebuild from library code, while a ``FILE.py:factory`` runs only with
``trust_sources`` (``--trust-sources``) and only from inside the baseline's folder; a
``package.module:factory`` entry is never rebuilt from the file.

A check compares every pinned value; a value drifts when it moves by more than its tolerance
(relative; per metric; optionally only increases fail). An entry that cannot be rebuilt (a
missing file or library, a factory that now fails) is named with its reason and the other
entries are still checked. Exit status: 0 all match, 1 a value drifted, 2 the baseline or an
entry is unusable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resnet_probe._version import __version__
from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.costs import CostResult, count_costs
from resnet_probe.measure.memory import MEMORY_COLUMNS
from resnet_probe.progress import Progress
from resnet_probe.results import atomic_write_text, cannot_write
from resnet_probe.sources import InputSpec, ModelSource, SourceKind, resolve
from resnet_probe.sources.recorded import Recorded
from resnet_probe.untrusted import UntrustedFileError, read_json
from resnet_probe.zoo import list_models

BASELINE_FORMAT = 2
DEFAULT_METRICS = ("params", "macs")
# What a baseline can pin: the summary's counts (every convention) and memory (bytes).
COUNT_METRICS = ("params", "trainable_params", "macs", "flops", "macs_with_elementwise",
                 "macs_fvcore_default", "backward_flops")
MEMORY_METRICS = tuple(c for c in MEMORY_COLUMNS if c != "cuda_measured_peak_bytes")
METRICS = COUNT_METRICS + MEMORY_METRICS
# The metrics each module row carries, so a group's value is the sum of its rows.
GROUP_METRICS = ("params", "trainable_params", "macs", "flops", "macs_with_elementwise",
                 "macs_fvcore_default", "backward_flops", "activation_bytes")
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


@dataclass(frozen=True)
class Request:
    """What one entry measures: the model and every input that changes its counts."""

    model: Any  # MODEL text, or an nn.Module (the pytest plugin's; no text to rebuild it)
    input_size: int | None = None
    in_channels: int | None = None
    inputs: InputSpec | None = None
    batch_size: int = 1
    metrics: tuple[str, ...] = DEFAULT_METRICS
    # Where ``model`` was read, when a file named it: then it is resolved as data.
    recorded: Recorded | None = None
    # The tensors ``inputs`` was taken from (the pytest fixture's): counted as given, values
    # too (a sorted lengths tensor stays sorted), rather than redrawn from the spec.
    example: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise InvalidRequest(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                                 f"choose from: {', '.join(METRICS)}")

    @property
    def label(self) -> str:
        if isinstance(self.model, str):
            return self.model
        return getattr(self.model, "name", None) or type(self.model).__name__

    def source(self) -> ModelSource:
        model = self.recorded.checked(self.model) if self.recorded is not None else self.model
        return resolve(model, self.in_channels, self.input_size, inputs=self.inputs)

    def measure(self) -> CostResult:
        memory = any(m in MEMORY_METRICS for m in self.metrics)
        if self.example is not None:
            return count_costs(self.source(), structure=False, memory=memory,
                               example=self.example)
        return count_costs(self.source(), None if self.inputs else self.input_size,
                           self.batch_size, structure=False, memory=memory)


# --- entries ----------------------------------------------------------------------------


def entry_of(request: Request, result: CostResult, baseline_dir: Path) -> dict[str, Any]:
    """The record a baseline keeps for ``request``, measured as ``result``."""
    grouped_by, groups = _groups(result, request.metrics)
    return {
        "model": portable(request.label, baseline_dir) if isinstance(request.model, str)
        else request.label,
        "input_size": result.summary["input_size"] if request.inputs is None else None,
        "in_channels": request.in_channels,
        "inputs": request.inputs.record() if request.inputs is not None else None,
        "batch_size": request.batch_size,
        "versions": versions(result.summary["family"]),
        "metrics": {m: result.summary[m] for m in request.metrics
                    if result.summary.get(m) is not None},
        "grouped_by": grouped_by,
        "groups": groups,
    }


def _groups(result: CostResult, metrics: tuple[str, ...]
            ) -> tuple[str, dict[str, dict[str, Any]]]:
    """Per stage for a zoo net, else per top-level module: the sum of its rows."""
    pinned = [m for m in metrics if m in GROUP_METRICS]
    staged = result.summary["family"] not in FOREIGN_KINDS
    group_of = {}
    for row in result.modules:
        name = row["module"]
        group_of[name] = (row["stage"] or "model") if staged else \
            ("(model)" if name == "(model)" else name.split(".")[0])
    groups: dict[str, dict[str, int]] = {}
    for row in result.modules:
        totals = groups.setdefault(group_of[row["module"]], {})
        for metric in pinned:
            if metric != "activation_bytes" and row.get(metric) is not None:
                totals[metric] = totals.get(metric, 0) + row[metric]
    if "activation_bytes" in pinned:
        for row in result.memory[:-1]:  # per module, then the model's row
            module = row["module"]
            group = group_of.get(module) or ("(model)" if module.startswith("(") else
                                             module.split(".")[0])
            totals = groups.setdefault(group, {})
            totals["activation_bytes"] = totals.get("activation_bytes", 0) + \
                row["activation_bytes"]
    return ("stage" if staged else "top-level module"), groups


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


# --- loading, checked as untrusted data ----------------------------------------------------


@dataclass
class Baseline:
    path: Path
    entries: dict[str, dict[str, Any]]
    data: dict[str, Any] = field(default_factory=dict)

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
    return Baseline(path, entries, data)


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


# --- tolerances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """A relative tolerance per metric (``default`` for the rest); ``increase_only``: only a
    rise beyond it fails (a model that got cheaper passes, and is shown)."""

    default: float = 0.0
    per_metric: tuple[tuple[str, float], ...] = ()
    increase_only: bool = False

    @classmethod
    def parse(cls, texts: tuple[str, ...] | list[str] = (), increase_only: bool = False
              ) -> Tolerance:
        """``0.5%``, ``0.005``, ``macs=0.5%`` or pytest-benchmark's ``macs:0.5%``; a bad one
        is named with the accepted forms."""
        default, per_metric = 0.0, {}
        for text in texts:
            metric, sep, value = re.split(r"([=:])", text, maxsplit=1) if re.search(
                r"[=:]", text) else ("", "", text)
            fraction = _fraction(value.strip(), text)
            if sep:
                if metric.strip() not in METRICS:
                    raise InvalidRequest(f"tolerance {text!r}: unknown metric "
                                         f"{metric.strip()!r}; choose from: "
                                         f"{', '.join(METRICS)}")
                per_metric[metric.strip()] = fraction
            else:
                default = fraction
        return cls(default, tuple(sorted(per_metric.items())), increase_only)

    def of(self, metric: str) -> float:
        return dict(self.per_metric).get(metric, self.default)

    def passes(self, metric: str, expected: int, got: int) -> bool:
        limit = self.of(metric) * abs(expected)
        if self.increase_only:
            return got - expected <= limit
        return abs(got - expected) <= limit

    def text(self) -> str:
        parts = [f"{self.default:.4g}"] + [f"{m}={v:.4g}" for m, v in self.per_metric]
        return "rtol " + ", ".join(parts) + (", increases only" if self.increase_only else "")


def _fraction(value: str, text: str) -> float:
    try:
        fraction = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        fraction = math.nan
    if not math.isfinite(fraction) or fraction < 0:
        raise InvalidRequest(f"tolerance {text!r} is not a finite non-negative number; give "
                             f"e.g. 0.5%, 0.005, or per metric macs=0.5%")
    return fraction


# --- checking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    model: str
    group: str  # "model" for the whole model, else a stage or top-level module
    metric: str
    expected: int | None  # None: the group is new
    got: int | None  # None: the group is gone

    @property
    def delta_pct(self) -> float:
        if self.expected is None or self.got is None:
            return math.nan
        if self.expected == 0:
            return 0.0 if self.got == 0 else math.inf
        return (self.got - self.expected) / self.expected * 100


@dataclass
class CheckResult:
    path: Path
    tolerance: Tolerance
    rows: list[dict[str, Any]] = field(default_factory=list)  # every value compared
    drifts: list[Drift] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # entry -> why it was not checked
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 1 if self.drifts else 0

    def drift_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if not row["ok"]]


def compare_entry(name: str, expected: dict[str, Any], got: dict[str, Any],
                  tolerance: Tolerance, metrics: tuple[str, ...] | None = None
                  ) -> tuple[list[dict[str, Any]], list[Drift]]:
    """Every pinned value of entry ``expected`` against a fresh record ``got``."""
    wanted = [m for m in expected["metrics"] if metrics is None or m in metrics]
    pairs = [("model", m, expected["metrics"].get(m), got["metrics"].get(m)) for m in wanted]
    groups = list(dict.fromkeys([*expected.get("groups", {}), *got.get("groups", {})]))
    for group in groups:
        old = expected.get("groups", {}).get(group)
        new = got.get("groups", {}).get(group)
        for metric in wanted:
            if metric not in GROUP_METRICS:
                continue
            before = old.get(metric) if old is not None else None
            after = new.get(metric) if new is not None else None
            if before is None and after is None:
                continue
            pairs.append((group, metric, before, after))
    rows, drifts = [], []
    for group, metric, before, after in pairs:
        ok = before is not None and after is not None and \
            tolerance.passes(metric, before, after)
        drift = Drift(name, group, metric, before, after)
        rows.append({"model": name, "stage": group, "metric": metric, "expected": before,
                     "got": after, "change": _arrow(before, after),
                     "delta_pct": drift.delta_pct, "ok": ok})
        if not ok:
            drifts.append(drift)
    return rows, drifts


def _arrow(before: int | None, after: int | None) -> str:
    shown = [f"{v:,}" if v is not None else "(none)" for v in (before, after)]
    return f"{shown[0]} → {shown[1]}"


def check_baseline(path: str | Path, models: list[str] | None = None,
                   tolerance: Tolerance = Tolerance(),
                   counted: dict[str, CostResult] | None = None,
                   metrics: tuple[str, ...] | None = None, progress: Progress | None = None,
                   trust_sources: bool = False) -> CheckResult:
    """Rebuild and count every entry (or those named in ``models``) and compare; ``counted``
    reuses counts already made, by entry name. ``trust_sources``: an entry's FILE.py:factory
    inside the baseline's folder may run (without it such an entry is named, unchecked)."""
    baseline = load_baseline(path)
    names = models or list(baseline.entries)
    missing = [name for name in names if name not in baseline.entries]
    if missing:
        raise BaselineError(f"baseline {str(path)!r} has no entry for {', '.join(missing)}; "
                            f"add it with --update-baseline {path} {' '.join(missing)}")
    result = CheckResult(Path(path), tolerance)
    for name in names:
        expected = baseline.entries[name]
        if expected.get("checked_by") == "pytest":
            result.errors[name] = ("written by resnet-probe's pytest plugin for a module "
                                   "object, which no MODEL text rebuilds; its test checks it")
            continue
        try:
            request = baseline.request(name, trust_sources)
            reused = (counted or {}).get(name)
            measured = reused if reused is not None and _same_setting(reused, request) \
                else request.measure()
            got = entry_of(request, measured, baseline.path.parent)
        except (KeyboardInterrupt, BaselineError):
            raise
        except Exception as error:  # noqa: BLE001 - an entry's failure is named, not raised
            result.errors[name] = _reason(error)
            continue
        finally:
            if progress is not None:
                progress.update(1)
        rows, drifts = compare_entry(name, expected, got, tolerance, metrics)
        result.rows += rows
        result.drifts += drifts
        if drifts:
            changed = {lib: (old, got["versions"].get(lib))
                       for lib, old in expected.get("versions", {}).items()
                       if got["versions"].get(lib) not in (None, old)}
            if changed:
                result.notes.append(f"{name}: measured with " + ", ".join(
                    f"{lib} {old}, now {new}" for lib, (old, new) in changed.items()) +
                    "; a library's new version can change a count")
    return result


def _same_setting(result: CostResult, request: Request) -> bool:
    summary = result.summary
    return request.inputs is None and summary["batch_size"] == request.batch_size and \
        summary["input_size"] == (request.input_size or summary["input_size"]) and \
        all(summary.get(m) is not None for m in request.metrics)


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, InvalidRequest | FileNotFoundError | OSError | ValueError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- updating -----------------------------------------------------------------------------


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


def write_baseline(path: str | Path, models: list[str] | None = None,
                   replace: bool = False) -> BaselineUpdate:
    """Zoo names (default: the whole zoo) pinned at their defaults."""
    return update_baseline(path, [Request(m) for m in models or list_models()], replace)
