"""Tolerances, drift, and the check: a fresh count of every entry against its pinned values.

A value drifts when it moves by more than its tolerance (relative; per metric; optionally only
increases fail). ``check_baseline`` rebuilds and counts each entry from its record; an entry
that cannot be rebuilt (a missing file or library, a factory that now fails) is named with its
reason and the other entries are still checked. ``CheckResult.exit_code``: 0 all match, 1 a
value drifted, 2 the baseline or an entry is unusable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.regression.baseline_file import BaselineError, load_baseline
from resnet_probe.jobs.regression.entry import GROUP_METRICS, METRICS, Request, entry_of
from resnet_probe.measure.costs import CostResult
from resnet_probe.progress import Progress


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
