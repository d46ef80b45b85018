"""What else the machine was doing: the run queue, load average, CPU frequency, and the
warnings and thread counts they give, by stated rules; the environment table of a latency run.

Threads on a busy machine. Timing with more threads than there are free cores makes the
threads wait for each other behind other work: a forward that takes 14 ms at 1 thread took
1,063 ms at every core beside another job. So, unless ``--threads`` says otherwise, timing
counts the other runnable tasks (the run queue of /proc/loadavg, less this process's own
running threads) before it starts and between rounds, and times at the free cores (at
least 1) when other work holds some. Where no run queue can be read (not Linux), the
1-minute load average only warns.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

BUSY_SPREAD_FRACTION = 0.5


def machine_load() -> dict[str, Any]:
    """Load average and CPU frequency now, where the platform tells them."""
    load: dict[str, Any] = {"load_average_1min": None, "cpu_mhz": None,
                            "cores": os.cpu_count()}
    with contextlib.suppress(OSError, AttributeError):
        load["load_average_1min"] = os.getloadavg()[0]
    with contextlib.suppress(OSError, ValueError):
        mhz = [float(line.split(":")[1]) for line in
               Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("cpu MHz")]
        load["cpu_mhz"] = statistics.fmean(mhz) if mhz else None
    return load


def spread_warning(name: str, models: list[dict[str, Any]]) -> str | None:
    """Rule: rounds are far noisier than normal when the whole-model forward's IQR exceeds
    BUSY_SPREAD_FRACTION of its median."""
    row = next((r for r in models if r["model"] == name), None)
    if row is None or not row["forward_ms_iqr"]:
        return None
    relative = row["forward_ms_iqr"] / row["forward_ms"]
    if relative > BUSY_SPREAD_FRACTION:
        return (f"{name}'s forward varied by {relative:.0%} of its median across rounds (IQR), "
                f"far above an idle machine's spread; its times are unreliable")
    return None


def busy_warning(load: dict[str, Any], threads: int) -> str | None:
    """Rule: the machine is busy when the 1-minute load average, taken before timing, exceeds
    the number of threads timing uses; other work then shares the cores being measured."""
    average = load.get("load_average_1min")
    if average is not None and average > threads:
        return (f"the machine was busy before timing (1-minute load average {average:.1f} "
                f"with {threads} thread(s) timing on {load.get('cores')} cores); other work "
                f"shared the cores, so these times are inflated and unreliable")
    return None


# Readings of the run queue at the start, a short interval apart: their median, so that a
# task that runs for an instant does not halve the threads.
START_READINGS = 5
START_INTERVAL_S = 0.02
# Between rounds, one reading per round; the threads drop when this many rounds in a row
# saw fewer free cores.
BUSY_ROUNDS = 3


def others_running(readings: int = 1, interval_s: float = 0.0) -> int | None:
    """Runnable tasks of other processes (the median over ``readings``): the running count of
    /proc/loadavg less this process's running threads; None where it cannot be read."""
    counts = []
    for index in range(readings):
        if index:
            time.sleep(interval_s)
        system, own = _system_running(), _own_running()
        if system is None or own is None:
            return None
        counts.append(max(system - own, 0))
    return int(statistics.median_low(counts))


def _system_running() -> int | None:
    try:  # "0.52 0.58 0.59 3/153 9435": runnable / all scheduling entities
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _own_running() -> int | None:
    """This process's threads in state R (running or runnable), the reader among them."""
    running = 0
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        with contextlib.suppress(OSError, IndexError):  # a thread may end meanwhile
            stat = (task / "stat").read_text()
            running += stat[stat.rindex(")") + 2] == "R"  # after "pid (comm) "
    return running


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    warning: str | None = None


def timing_threads(requested: int | None, cores: int, others: int | None) -> ThreadChoice:
    """Rule: with no ``requested`` count, time at the free cores, ``cores - others`` and at
    least 1, when other runnable tasks hold some of them; else at every core. A requested
    count is kept, with a warning when it cannot all run beside the other work."""
    others = others or 0  # unknown reads as idle: no run queue, no protection
    if requested is not None:
        if others and requested + others > cores:
            return ThreadChoice(requested, (
                f"the machine is busy ({_others(others, cores)}) and --threads {requested} "
                f"was asked for: its threads share the cores with that work, so these times "
                f"are inflated; --threads {max(cores - others, 1)} (the free cores) or a quiet "
                f"machine gives steadier ones"))
        return ThreadChoice(requested)
    if not others:
        return ThreadChoice(cores)
    free = max(cores - others, 1)
    if free >= cores:
        return ThreadChoice(cores)
    return ThreadChoice(free, (
        f"the machine is busy ({_others(others, cores)}): timed at {free} thread(s) instead "
        f"of {cores}, the cores left free, so the timing does not wait behind that work; "
        f"--threads N overrides"))


def _others(others: int | None, cores: int) -> str:
    return f"{others} other runnable task(s) on {cores} cores"


@dataclass
class ThreadGuard:
    """Watches the run queue between timing rounds: with the default thread count, the
    threads drop to the free cores once BUSY_ROUNDS rounds in a row saw fewer of them (never
    back up, so later rounds stay comparable); a requested count is only warned about.
    ``notes`` say what happened, ``threads`` is the count in use."""

    requested: int | None
    cores: int
    threads: int
    notes: list[str] = field(default_factory=list)
    _recent: list[int] = field(default_factory=list)
    _warned: bool = False

    def between_rounds(self, where: str, others: int | None = None) -> int:
        """Read the run queue (or take ``others``) before ``where`` ("forward round 3"),
        adjust, and return the thread count."""
        others = others_running() if others is None else others
        if others is None:
            return self.threads
        free = max(self.cores - others, 1)
        self._recent = [*self._recent, free][-BUSY_ROUNDS:]
        if len(self._recent) < BUSY_ROUNDS or max(self._recent) >= self.threads:
            return self.threads
        if self.requested is not None:
            if not self._warned:
                self._warned = True
                self.notes.append(
                    f"the machine turned busy during the timing rounds (from {where}, "
                    f"{_others(others, self.cores)}) and --threads "
                    f"{self.requested} was asked for: later rounds are inflated")
            return self.threads
        before, self.threads = self.threads, max(self._recent)
        self.notes.append(
            f"the machine turned busy during the timing rounds ({_others(others, self.cores)}"
            f"): from {where} on, timed at {self.threads} thread(s) instead of "
            f"{before}; --threads N overrides")
        return self.threads


def environment(device, config, threads, peak) -> dict[str, Any]:
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    return {"device": device.type, "device_name": name, "threads": threads,
            "torch_version": torch.__version__, "dtype": config.dtype,
            "channels_last": config.channels_last, "engine": config.engine, **peak,
            **machine_load(),
            "config": asdict(config)}
