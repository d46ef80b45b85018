"""resnet-probe's pytest plugin: the ``costs`` fixture, a cost gate per test.

    def test_backbone_costs(costs):
        costs(build_backbone(), torch.zeros(1, 3, 224, 224))     # or costs("my.py:build",
                                                                 #          input_size=64)

    pytest --costs-update                      # write or refresh the entries
    pytest                                     # fail a test whose model's costs drifted
    pytest --costs-compare-fail=macs:0.5%      # tolerances, as pytest-benchmark's flag

    @pytest.mark.costs(rtol=["macs=1%"], increase_only=True, metrics=["params", "macs"])
    def test_head_costs(costs): ...

Entries are keyed by the test's node id (and the model, when a test gates several), in
``--costs-baseline`` (default: the ``costs_baseline`` ini value, ``costs-baseline.json`` at
the root). Under pytest-xdist every worker merges its updates into the file under a lock.
The plugin imports torch only when a test uses the fixture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

_UPDATES = pytest.StashKey[dict]()
_OUTCOME = pytest.StashKey[str]()  # what became of the updates, for the terminal summary
DAMAGED_SUFFIX = ".damaged"  # where --costs-update moves a baseline it cannot read


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resnet-probe", "cost gates (resnet-probe's costs fixture)")
    group.addoption("--costs-baseline", default=None, metavar="FILE",
                    help="The cost baseline the costs fixture checks against [default: the "
                         "costs_baseline ini value].")
    group.addoption("--costs-update", action="store_true",
                    help="Write each gated model's costs into the baseline instead of "
                         "checking them.")
    group.addoption("--costs-compare-fail", action="append", default=[], metavar="METRIC:TOL",
                    help="Tolerance for a metric, e.g. macs:0.5%% (repeatable); a bare 1%% "
                         "applies to every metric [default: exact].")
    parser.addini("costs_baseline", "The cost baseline file, relative to the root.",
                  default="costs-baseline.json")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "costs(rtol=[...], increase_only=False, metrics=[...]): "
                                       "this test's cost-gate tolerances and metrics")
    config.stash[_UPDATES] = {}
    if config.getoption("--costs-update"):
        problem = _unwritable(_baseline(config))
        if problem:  # said before any test runs, so no measurement is made for nothing
            raise pytest.UsageError(f"--costs-update: {problem}; give a writable file with "
                                    f"--costs-baseline FILE")


def _unwritable(path: Path) -> str | None:
    """Why the baseline at ``path`` cannot be written, or None."""
    if path.is_dir():
        return f"the cost baseline {str(path)!r} is a directory, not a file"
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    if folder is None or not folder.is_dir():
        return f"the cost baseline {str(path)!r} cannot be created: no folder to hold it"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {str(folder)!r} of the cost baseline is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the cost baseline {str(path)!r} is not writable"
    return None


def _baseline(config: pytest.Config) -> Path:
    given = config.getoption("--costs-baseline") or config.getini("costs_baseline")
    path = Path(given)
    return path if path.is_absolute() else Path(config.rootpath) / path


class CostGate:
    """What the ``costs`` fixture returns: call it once per model the test gates."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.config = request.config
        marker = request.node.get_closest_marker("costs")
        self.options: dict[str, Any] = dict(marker.kwargs) if marker else {}
        self.calls = 0

    def __call__(self, model, inputs=None, *, name: str | None = None, **count: Any):
        from resnet_probe.errors import InvalidRequest
        from resnet_probe.jobs.regression import DEFAULT_METRICS, Tolerance
        from resnet_probe.testing import CostGateError, check_entry, measure_entry

        self.calls += 1
        path = _baseline(self.config)
        metrics = tuple(self.options.get("metrics", DEFAULT_METRICS))
        entry, result = measure_entry(model, inputs, metrics=metrics,
                                      baseline_dir=path.parent, **count)
        key = self.request.node.nodeid + (f"::{name}" if name else
                                          f"::{self.calls}" if self.calls > 1 else "")
        if self.config.getoption("--costs-update"):
            self.config.stash[_UPDATES][key] = entry
            return result
        rtol = [*self.config.getoption("--costs-compare-fail"),
                *self.options.get("rtol", ())]
        failure = None
        try:
            check_entry(path, key, entry, Tolerance.parse(
                rtol, bool(self.options.get("increase_only", False))))
        except CostGateError as error:
            failure = str(error)
        except (InvalidRequest, OSError, ValueError) as error:  # a damaged or unreadable file
            failure = (f"resnet-probe cost gate: the baseline {str(path)!r} cannot be used: "
                       f"{error}; fix it, or rewrite it with --costs-update")
        if failure is not None:  # outside `except`: failing inside it chains the drift table
            pytest.fail(failure, pytrace=False)  # under "During handling...", so twice
        return result


@pytest.fixture
def costs(request: pytest.FixtureRequest) -> CostGate:
    """``costs(model, inputs=None, *, name=None, input_size=..., in_channels=...,
    batch_size=...)``: count the model and fail the test when its pinned costs drifted from
    the baseline (``--costs-update`` writes them instead). Returns the CostResult."""
    return CostGate(request)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Merge the updates into the baseline, atomically. A baseline that cannot be read is
    moved aside (kept, never overwritten) and the updates start a new one; a write that
    fails is said in the summary and fails the session, never as a traceback."""
    config = session.config
    updates = config.stash.get(_UPDATES, {})
    if not updates:
        return
    from resnet_probe.errors import InvalidRequest
    from resnet_probe.jobs.regression import merge_entries

    path = _baseline(config)
    try:
        moved = _move_aside_if_damaged(path)
        merge_entries(path, updates)
    except (OSError, InvalidRequest) as error:
        config.stash[_OUTCOME] = (f"resnet-probe: the {len(updates)} updated cost entries were "
                                  f"NOT written: {error}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    config.stash[_OUTCOME] = f"resnet-probe: {len(updates)} cost entries written to {path}"
    if moved is not None:
        config.stash[_OUTCOME] += (f"; the baseline there could not be read ({moved[1]}), so it "
                                   f"was moved to {moved[0]} and the entries start a new file "
                                   f"(entries of tests not run now are only in the old one)")


def _move_aside_if_damaged(path: Path) -> tuple[Path, str] | None:
    """Under the lock merge_entries takes (the baseline's folder), move a baseline that does
    not load to ``NAME.damaged``: (where it went, why), or None when it loads or is absent."""
    import fcntl

    from resnet_probe.errors import InvalidRequest
    from resnet_probe.jobs.regression import load_baseline

    if not path.exists():
        return None
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # another worker may be rewriting it
        if not path.exists():
            return None
        try:
            load_baseline(path)
            return None
        except (InvalidRequest, ValueError, RecursionError) as error:
            aside = path.with_name(path.name + DAMAGED_SUFFIX)
            os.replace(path, aside)
            return aside, str(error)
    finally:
        os.close(folder)  # and the lock with it


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    outcome = config.stash.get(_OUTCOME, None)
    if outcome:
        terminalreporter.write_line(outcome)
