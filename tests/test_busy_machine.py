"""Timing on a busy machine protects itself: with other work runnable, the default thread count
drops to the cores left free (at least 1) and says so; --threads overrides, with a warning;
a machine that turns busy between rounds lowers the threads from then on. The rule is tested
with the run queue monkeypatched, and once beside a real CPU hog."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_probe.device import CPU_CORES
from resnet_probe.measure import latency as latency_module
from resnet_probe.measure.latency import LatencyConfig, machine, measure_latency
from resnet_probe.measure.latency.machine import (
    BUSY_ROUNDS,
    ThreadGuard,
    others_running,
    timing_threads,
)

TINY = dict(device="cpu", input_size=8, repeats=2, warmup=0, backward=False,
            peak_gflops=100.0, peak_gbytes_per_s=10.0)


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


@pytest.mark.parametrize("requested, cores, others, threads", [
    (None, 8, 0, 8),     # an idle machine: every core
    (None, 8, 3, 5),     # 3 other tasks: the 5 free cores
    (None, 2, 5, 1),     # more tasks than cores: 1 thread, never 0
    (None, 8, None, 8),  # no run queue to read (not Linux): every core
    (6, 8, 3, 6),        # asked for: kept, busy or not
    (2, 8, 0, 2),
])
def test_the_default_thread_count_is_the_free_cores(requested, cores, others, threads):
    assert timing_threads(requested, cores, others).threads == threads


def test_the_warning_says_what_was_done_and_what_to_do():
    dropped = timing_threads(None, 8, 3).warning
    assert dropped is not None
    assert "busy (3 other runnable task(s) on 8 cores)" in dropped
    assert "timed at 5 thread(s) instead of 8" in dropped and "--threads N overrides" in dropped
    asked = timing_threads(8, 8, 3).warning
    assert asked is not None and "--threads 8 was asked for" in asked
    assert "--threads 5 (the free cores)" in asked
    assert timing_threads(5, 8, 3).warning is None  # 5 threads fit beside 3 tasks
    assert timing_threads(None, 8, 0).warning is None


def test_between_rounds_the_threads_drop_only_after_busy_rounds_in_a_row():
    guard = ThreadGuard(requested=None, cores=8, threads=8)
    assert guard.between_rounds("forward round 0", others=6) == 8  # a blip: kept
    assert guard.between_rounds("forward round 1", others=0) == 8
    for index in range(2, 2 + BUSY_ROUNDS - 1):
        assert guard.between_rounds(f"forward round {index}", others=4) == 8
    assert guard.between_rounds("forward round 9", others=5) == 4  # the most free of the run
    assert guard.between_rounds("forward round 10", others=0) == 4  # never back up
    assert guard.notes == ["the machine turned busy during the timing rounds (5 other runnable "
                           "task(s) on 8 cores): from forward round 9 on, timed at 4 "
                           "thread(s) instead of 8; --threads N overrides"]
    asked = ThreadGuard(requested=8, cores=8, threads=8)
    for index in range(BUSY_ROUNDS + 2):
        assert asked.between_rounds(f"forward round {index}", others=4) == 8
    assert len(asked.notes) == 1 and "--threads 8 was asked for" in asked.notes[0]


def _busy(monkeypatch, cores: int, others: int) -> None:
    monkeypatch.setattr(latency_module, "CPU_CORES", cores)
    monkeypatch.setattr(latency_module, "others_running", lambda *args: others)
    monkeypatch.setattr(machine, "others_running", lambda *args: others)  # between rounds


def test_a_busy_machine_times_at_the_free_cores_and_says_so(monkeypatch):
    _busy(monkeypatch, cores=4, others=3)
    before = torch.get_num_threads()
    result = measure_latency([tiny_net()], LatencyConfig(**TINY))
    assert result.environment["threads"] == 1 and result.environment["others_running"] == 3
    assert result.models[0]["threads"] == 1
    assert {r["threads"] for r in result.rounds} == {1}
    assert any("timed at 1 thread(s) instead of 4" in w for w in result.warnings)
    assert torch.get_num_threads() == before  # put back afterwards


def test_explicit_threads_override_the_protection(monkeypatch):
    _busy(monkeypatch, cores=4, others=3)
    result = measure_latency([tiny_net()], LatencyConfig(**{**TINY, "threads": 1}))
    assert result.environment["threads"] == 1 and result.environment["threads_requested"] == 1
    assert not any("busy" in w for w in result.warnings)  # 1 thread fits the free core


def test_an_idle_machine_times_at_every_core(monkeypatch):
    _busy(monkeypatch, cores=CPU_CORES, others=0)
    result = measure_latency([tiny_net()], LatencyConfig(**TINY))
    assert result.environment["threads"] == CPU_CORES
    assert not any("busy" in w for w in result.warnings)


def test_the_cli_prints_the_busy_warning(invoke, monkeypatch, tmp_path):
    _busy(monkeypatch, cores=2, others=2)
    model = tmp_path / "tiny.py"
    model.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential("
                     "nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    result = invoke("latency", f"{model}:build", "--input-size", "8", "--repeats", "2",
                    "--warmup", "0", "--forward-only", "--device", "cpu", "--format", "json")
    assert result.exit_code == 0, result.output
    assert ("warning: the machine is busy (2 other runnable task(s) on 2 cores): timed at 1 "
            "thread(s) instead of 2") in result.stderr
    assert json.loads(result.stdout)[0]["threads"] == 1


def test_threads_beyond_the_cores_are_refused_with_the_range(invoke):
    result = invoke("latency", "resnet8", "--threads", str(CPU_CORES + 1))
    assert result.exit_code == 2 and "--threads" in result.stderr
    assert f"1<=x<={CPU_CORES}" in result.stderr and "Traceback" not in result.output


HOG = "import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"


@pytest.mark.skipif(CPU_CORES < 2, reason="one core: the default is 1 thread already")
@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="no run queue to read")
def test_beside_a_real_cpu_hog_the_default_drops_to_one_thread():
    """One spinning process per core: the run queue shows them, so the default leaves
    every-core timing for 1 thread (no core is free) and the warning says so."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=20)])
            for _ in range(CPU_CORES)]
    try:
        deadline = time.time() + 10
        while (others_running(5, 0.02) or 0) < CPU_CORES and time.time() < deadline:
            time.sleep(0.1)  # until the hogs are spinning
        result = measure_latency([tiny_net()], LatencyConfig(**TINY))
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.environment["others_running"] >= CPU_CORES
    assert result.environment["threads"] == 1 and result.models[0]["threads"] == 1
    assert any(f"timed at 1 thread(s) instead of {CPU_CORES}" in w and "busy" in w
               for w in result.warnings)
