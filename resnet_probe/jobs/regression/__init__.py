"""Cost regression checks: a committed baseline of any model's costs, per model and per group.

A baseline entry records everything that changes a count, so ``--check`` can rebuild the model
from it alone: the MODEL as given (a ``FILE.py:factory`` path relative to the baseline file),
its input (``--input-size``/``--in-channels``, or an ``--input`` spec), the batch size, the
metrics pinned, and the library versions it was measured with. Values are pinned for the whole
model and per group: per stage for zoo nets, per top-level module for any other model.

A baseline may come from anyone (a pull request edits it), so it is data: every field is
checked, its size bounded, and its MODEL texts are resolved as recorded data; a
``FILE.py:factory`` runs only with ``trust_sources`` (``--trust-sources``) and only from inside
the baseline's folder; a ``package.module:factory`` entry is never rebuilt from the file.

A check compares every pinned value; a value drifts when it moves by more than its tolerance.
Exit status: 0 all match, 1 a value drifted, 2 the baseline or an entry is unusable.

One concept per module:

- ``entry``: the metrics a baseline pins, ``Request`` (what one entry measures), ``entry_of``
  (the record kept, per model and per group);
- ``portability``: MODEL texts made relative to the baseline's folder and back, and the
  library versions an entry records;
- ``baseline_file``: the file format, ``load_baseline`` (checked as untrusted data, with its
  size limits) and ``merge_entries`` (the locked, atomic write);
- ``drift``: ``Tolerance``, ``Drift``, ``compare_entry`` and ``check_baseline``;
- ``update``: ``update_baseline`` and ``write_baseline``, which measure and pin.

This package re-exports the names its callers use, so they import from
``resnet_probe.jobs.regression`` alone.
"""

from __future__ import annotations

from resnet_probe.jobs.regression.baseline_file import (
    BASELINE_FORMAT,
    MAX_BASELINE_BYTES,
    MAX_BASELINE_ENTRIES,
    MAX_BASELINE_GROUPS,
    MAX_BASELINE_VALUES,
    Baseline,
    BaselineError,
    load_baseline,
    merge_entries,
)
from resnet_probe.jobs.regression.drift import (
    CheckResult,
    Drift,
    Tolerance,
    check_baseline,
    compare_entry,
)
from resnet_probe.jobs.regression.entry import DEFAULT_METRICS, METRICS, Request, entry_of
from resnet_probe.jobs.regression.update import BaselineUpdate, update_baseline, write_baseline

__all__ = [
    "BASELINE_FORMAT",
    "DEFAULT_METRICS",
    "MAX_BASELINE_BYTES",
    "MAX_BASELINE_ENTRIES",
    "MAX_BASELINE_GROUPS",
    "MAX_BASELINE_VALUES",
    "METRICS",
    "Baseline",
    "BaselineError",
    "BaselineUpdate",
    "CheckResult",
    "Drift",
    "Request",
    "Tolerance",
    "check_baseline",
    "compare_entry",
    "entry_of",
    "load_baseline",
    "merge_entries",
    "update_baseline",
    "write_baseline",
]
