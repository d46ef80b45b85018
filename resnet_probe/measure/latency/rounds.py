"""Whole-model times in interleaved rounds, and each model's difference against the first with
a bootstrap interval paired by round (``resnet_probe.stats``)."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

import torch

from resnet_probe.device import free_device_memory, synchronize
from resnet_probe.measure.latency.machine import ThreadGuard
from resnet_probe.measure.latency.setup import Fed, LatencyConfig, fed, scalar_loss
from resnet_probe.stats import Difference, difference_row, median_difference


def interleaved_rounds(prepared: dict[str, tuple[torch.nn.Module, Fed]],
                        config: LatencyConfig, device: torch.device,
                        guard: ThreadGuard | None = None
                        ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Un-hooked whole-model passes in rounds: each round times every model once, in a fresh
    random order (seeded), so drift on a shared machine hits every model alike and round r of
    one model pairs with round r of another. Forward rounds (eval mode, autograd on, output
    dropped) run first, then, if asked, backward rounds: as in the hooked passes, forward and
    backward are timed apart (a forward right after a backward runs ~15% slower on this CPU).
    ``guard`` reads the run queue before each round and may lower the threads (each row
    says how many it ran at). Returns the rows and the models dropped for running out of GPU
    memory (with the error)."""
    phases = ("forward", "backward") if config.backward else ("forward",)
    shuffle = random.Random(0)
    times: dict[tuple[str, int], dict[str, Any]] = {}
    lost: dict[str, str] = {}
    for phase in phases:
        order = list(prepared)
        for round_index in range(-config.warmup, config.repeats):
            if guard is not None:
                threads = guard.between_rounds(f"{phase} round {max(round_index, 0)}")
                if threads != torch.get_num_threads():
                    torch.set_num_threads(threads)
            shuffle.shuffle(order)
            for position, name in enumerate(order):
                if name in lost:
                    continue
                try:
                    ms = timed_pass(*prepared[name], phase, device)
                except torch.cuda.OutOfMemoryError as error:
                    lost[name] = f"out of GPU memory: {str(error).splitlines()[0]}"
                    continue
                if round_index >= 0:  # warm-up rounds are discarded
                    row = times.setdefault((name, round_index), {
                        "model": name, "round": round_index, "backward_ms": None,
                        "threads": torch.get_num_threads()})
                    row[f"{phase}_ms"] = ms
                    row[f"{phase}_position"] = position
            if lost:
                free_device_memory()
    rows = [row for (name, _), row in times.items() if name not in lost]
    return rows, lost


def timed_pass(model: torch.nn.Module, x: Fed | torch.Tensor, phase: str,
                device: torch.device) -> float:
    """A forward, or the backward of a fresh forward's output, between synchronizations."""
    x = fed(x)
    model.eval()
    out = x(model) if phase == "backward" else None
    synchronize(device)
    start = time.perf_counter()
    if out is None:
        out = x(model)
    else:
        scalar_loss(out).backward()
    synchronize(device)
    elapsed = (time.perf_counter() - start) * 1e3
    model.zero_grad(set_to_none=True)
    return elapsed


def latency_differences(rounds: list[dict[str, Any]], models: list[str], batch_size: int = 1
                        ) -> list[dict[str, Any]]:
    """Each model against the first: the change in median forward and backward time and in
    images/s, with a 95% interval from a bootstrap paired by round."""
    if len(models) < 2:
        return []
    by_model = {name: [r for r in rounds if r["model"] == name] for name in models}
    baseline = by_model[models[0]]
    rows = []
    for name in models[1:]:
        for metric in ("forward_ms", "backward_ms"):
            base = [r[metric] for r in baseline]
            other = [r[metric] for r in by_model[name]]
            if None in base or None in other:
                continue
            difference = median_difference(base, other, paired=True)
            base_median, median = statistics.median(base), statistics.median(other)
            rows.append(difference_row(name, models[0], metric, base_median, median,
                                       difference))
            if metric == "forward_ms":  # images/s is batch / forward time: the inverse change
                rows.append(difference_row(
                    name, models[0], "images_per_s", batch_size * 1e3 / base_median,
                    batch_size * 1e3 / median, _inverse(difference)))
    return rows


def _inverse(difference: Difference) -> Difference:
    """The change of 1/x from the change of x (both in percent): an interval's ends swap."""
    def flip(pct: float) -> float:
        return (100.0 / (100.0 + pct) - 1) * 100

    return Difference(flip(difference.pct), flip(difference.high_pct),
                      flip(difference.low_pct), difference.method)
