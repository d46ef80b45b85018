"""The pytest plugin's cost gates, run in a fresh pytest per case (pytester): a pass, a fail
with the drift table, an update, tolerances from the flag and the marker, and pytest-xdist."""

from __future__ import annotations

import json

import pytest

# Each case runs pytest in a subprocess: in-process, a second session re-registers torch's
# operator libraries, which fails depending on what ran before it.
pytest_plugins = ["pytester"]

GATED = """
import pytest
import torch
from torch import nn

WIDTH = {width}


def make():
    return nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 10))


def test_module(costs):
    costs(make(), torch.zeros(1, 3, 16, 16))


def test_zoo_net(costs):
    costs("resnet8")


def test_two_inputs(costs):
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = make()[:2]

        def forward(self, x, mask):
            return (self.body(x) * mask[:, None]).mean()

    costs(Masked(), {{"x": torch.zeros(1, 3, 16, 16), "mask": torch.ones(1, 16, 16)}})


@pytest.mark.costs(rtol=["macs=100%"], metrics=["macs"])
def test_loose(costs):
    costs(make(), torch.zeros(1, 3, 16, 16))
"""


def _write(pytester: pytest.Pytester, width: int) -> None:
    pytester.makepyfile(test_gated=GATED.format(width=width))


def test_update_then_pass_then_fail_with_the_table(pytester: pytest.Pytester):
    _write(pytester, 8)
    missing = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=4)
    missing.stdout.fnmatch_lines(["*no cost baseline at*--costs-update*"])

    pytester.runpytest_subprocess("--costs-update").assert_outcomes(passed=4)
    baseline = json.loads((pytester.path / "costs-baseline.json").read_text())
    assert set(baseline["entries"]) == {f"test_gated.py::{t}" for t in (
        "test_module", "test_zoo_net", "test_two_inputs", "test_loose")}
    module = baseline["entries"]["test_gated.py::test_module"]
    # conv 3*3*3*8*16*16 + linear 8*10, by hand; params 3*3*3*8+8 + 8*10+10
    assert module["metrics"] == {"params": 314, "macs": 55_376}
    assert module["checked_by"] == "pytest"
    pytester.runpytest_subprocess().assert_outcomes(passed=4)

    _write(pytester, 12)  # one layer wider
    drifted = pytester.runpytest_subprocess()
    drifted.assert_outcomes(passed=2, failed=2)  # the zoo net, and the loose marker
    drifted.stdout.fnmatch_lines([
        "*costs of 'test_gated.py::test_module' drifted from*",
        "*group*metric*old → new*",
        "*macs*55,376 → 83,064*+50%*",
    ])
    output = drifted.stdout.str()
    assert "Traceback" not in output
    # Each failing test prints its drift table once: not again under exception chaining.
    # (The short summary repeats the message in full when pytest sees $CI, so count above it.)
    failures = output.split("short test summary info")[0]
    assert failures.count("costs of 'test_gated.py::test_module' drifted from") == 1
    assert "During handling of the above exception" not in output


def test_compare_fail_sets_the_tolerance(pytester: pytest.Pytester):
    _write(pytester, 8)
    pytester.runpytest_subprocess("--costs-update").assert_outcomes(passed=4)
    _write(pytester, 9)  # +12.5% MACs, +12.5% params in the conv
    pytester.runpytest_subprocess("--costs-compare-fail=macs:20%").assert_outcomes(
        passed=2, failed=2)
    pytester.runpytest_subprocess("--costs-compare-fail=20%").assert_outcomes(passed=4)


def test_updates_merge_under_xdist(pytester: pytest.Pytester):
    _write(pytester, 8)
    pytester.runpytest_subprocess("-n", "2", "--costs-update").assert_outcomes(passed=4)
    entries = json.loads((pytester.path / "costs-baseline.json").read_text())["entries"]
    assert len(entries) == 4  # both workers' entries, merged under the lock
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)


def test_a_named_baseline_and_the_function_form(pytester: pytest.Pytester, tmp_path):
    from torch import nn

    from resnet_probe.testing import CostGateError, assert_costs

    path = tmp_path / "gates" / "costs.json"
    model = nn.Sequential(nn.Linear(4, 3))
    assert_costs(model, __import__("torch").zeros(2, 4), baseline=path, name="head",
                 update=True)
    assert_costs(model, __import__("torch").zeros(2, 4), baseline=path, name="head")
    with pytest.raises(CostGateError, match="24 → 48"):  # a batch of 4 is twice the MACs
        assert_costs(model, __import__("torch").zeros(4, 4), baseline=path, name="head")
    with pytest.raises(CostGateError, match="has no entry 'tail'"):
        assert_costs(model, __import__("torch").zeros(2, 4), baseline=path, name="tail")


def test_a_damaged_baseline_fails_the_gate_naming_the_file(pytester: pytest.Pytester):
    _write(pytester, 8)
    (pytester.path / "costs-baseline.json").write_text('{"format": 2, "entries": [1, 2')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*cost gate: the baseline*costs-baseline.json*cannot be used*"
                                 "not valid JSON*"])
    assert "Traceback" not in result.stdout.str() and "jobs/regression" not in result.stdout.str()


def test_costs_update_over_a_damaged_baseline_keeps_it_and_loses_no_update(
        pytester: pytest.Pytester):
    _write(pytester, 8)
    damaged = '{"format": 2, "entries": {"x": 1'
    (pytester.path / "costs-baseline.json").write_text(damaged)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--costs-update")
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*4 cost entries written to*costs-baseline.json; the "
                                 "baseline there could not be read*moved to*.damaged*"])
    assert (pytester.path / "costs-baseline.json.damaged").read_text() == damaged
    entries = json.loads((pytester.path / "costs-baseline.json").read_text())["entries"]
    assert len(entries) == 4  # every update written
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=4)


def test_costs_update_into_an_unwritable_baseline_is_a_usage_error(pytester: pytest.Pytester,
                                                                    tmp_path):
    _write(pytester, 8)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--costs-update",
                                f"--costs-baseline={tmp_path}")  # a directory
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--costs-update: the cost baseline*is a directory, not a "
                                 "file; give a writable file with --costs-baseline FILE*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_write_that_fails_at_the_end_is_said_and_fails_the_session(
        pytester: pytest.Pytester, monkeypatch):
    from resnet_probe.jobs import regression

    def full_disk(path, fresh, replace=False):
        raise OSError(f"cannot write {str(path)!r}: No space left on device")

    monkeypatch.setattr(regression, "merge_entries", full_disk)
    _write(pytester, 8)
    # in-process: the monkeypatched write must be the one the session calls
    result = pytester.runpytest("-p", "no:cacheprovider", "--costs-update")
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the 4 updated cost entries were NOT written: cannot write*"
                                 "No space left on device*"])
    assert "Traceback" not in result.stdout.str()
