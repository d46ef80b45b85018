"""Cost gates inside a test suite: ``assert_costs`` fails a test with the drift table when a
model's pinned costs moved beyond their tolerance, as detectron2 and mmcv gate their models'
FLOPs with hand-written asserts, but against a baseline file that an update rewrites.

    from resnet_probe.testing import assert_costs

    def test_my_model_costs():
        assert_costs(build_my_model(), (torch.zeros(1, 3, 64, 64), mask),
                     baseline="tests/costs.json", name="my_model", rtol=["macs=0.5%"])

The pytest plugin (``resnet_probe.pytest_plugin``, installed with the package) wraps this as
the ``costs`` fixture with pytest-benchmark's conventions (``--costs-update``,
``--costs-compare-fail=macs:0.5%``, a ``costs`` marker for per-test tolerances).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from resnet_probe.jobs.regression import (
    DEFAULT_METRICS,
    Request,
    Tolerance,
    compare_entry,
    entry_of,
    load_baseline,
    merge_entries,
)
from resnet_probe.measure.costs import CostResult
from resnet_probe.sources import InputSpec

__all__ = ["CostGateError", "assert_costs", "drift_table", "measure_entry"]


class CostGateError(AssertionError):
    """A cost gate failed: the message is the drift table."""


def measure_entry(model: str | nn.Module, inputs: Any = None, *, input_size: int | None = None,
                  in_channels: int | None = None, batch_size: int = 1,
                  metrics: tuple[str, ...] = DEFAULT_METRICS, baseline_dir: Path = Path(".")
                  ) -> tuple[dict[str, Any], CostResult]:
    """A baseline entry for ``model`` on example ``inputs`` (a tensor, a tuple of positional
    tensors, or a dict of keyword tensors) or on one image of ``input_size``."""
    spec = InputSpec.of(inputs) if inputs is not None else None
    request = Request(model, input_size, in_channels, spec, batch_size, tuple(metrics),
                      example=inputs)
    result = request.measure()
    entry = entry_of(request, result, baseline_dir)
    if isinstance(model, nn.Module):  # no MODEL text to rebuild it from: the test checks it
        entry["checked_by"] = "pytest"
    return entry, result


def assert_costs(model: str | nn.Module, inputs: Any = None, *, baseline: str | Path,
                 name: str | None = None, input_size: int | None = None,
                 in_channels: int | None = None, batch_size: int = 1,
                 metrics: tuple[str, ...] = DEFAULT_METRICS,
                 rtol: tuple[str, ...] | list[str] | str = (), increase_only: bool = False,
                 update: bool = False) -> CostResult:
    """Count ``model`` and compare it with entry ``name`` of ``baseline`` (default name: the
    MODEL text, or the module's class name). Raises CostGateError with the drift table on a
    drift, or when the entry is missing; with ``update`` the entry is written (merged into
    the file) instead. ``rtol``: tolerances as ``flops --check`` takes them (``"0.5%"``,
    ``"macs=0.5%"``). Returns the count."""
    path = Path(baseline)
    entry, result = measure_entry(model, inputs, input_size=input_size,
                                  in_channels=in_channels, batch_size=batch_size,
                                  metrics=metrics, baseline_dir=path.parent)
    label = name or (model if isinstance(model, str) else type(model).__name__)
    if update:
        merge_entries(path, {label: entry})
        return result
    check_entry(path, label, entry, Tolerance.parse(
        [rtol] if isinstance(rtol, str) else list(rtol), increase_only))
    return result


def check_entry(path: Path, name: str, entry: dict[str, Any], tolerance: Tolerance) -> None:
    """Raise CostGateError unless ``entry`` matches the baseline's ``name`` within
    ``tolerance``."""
    if not path.exists():
        raise CostGateError(f"no cost baseline at {path}; write it with --costs-update (or "
                            f"assert_costs(..., update=True))")
    # No trust flag here, by design: a gate never rebuilds a model from the baseline. The
    # model is the one the test itself passes (the user's own code, like a command-line
    # MODEL); the baseline's "model" text is only compared as a label, never resolved, so
    # an entry naming os:system or ../evil.py runs nothing (tests/test_data_never_code.py).
    # `flops --check` of the same file does rebuild entries, and needs --trust-sources.
    entries = load_baseline(path).entries
    if name not in entries:
        raise CostGateError(f"{path} has no entry {name!r}; add it with --costs-update")
    rows, drifts = compare_entry(name, entries[name], entry, tolerance)
    if drifts:
        raise CostGateError(f"costs of {name!r} drifted from {path} ({tolerance.text()}):\n"
                            + drift_table([row for row in rows if not row["ok"]]))


def drift_table(rows: list[dict[str, Any]]) -> str:
    """The drifted values as an aligned text table: group, metric, old -> new, change."""
    shown = [(row["stage"], row["metric"], row["change"],
              f"{row['delta_pct']:+.3g}%" if row["delta_pct"] == row["delta_pct"] else "new")
             for row in rows]
    header = ("group", "metric", "old → new", "Δ%")
    widths = [max(len(str(r[i])) for r in [header, *shown]) for i in range(4)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths,
                                                                      strict=True)).rstrip()
             for line in [header, *shown]]
    return "\n".join(lines)
