"""Counting cost against running cost: the whole zoo at standard inputs.

For every registered model, prints the time to count it with the default engine (FlopCounterMode
on the meta device: params, MACs in every convention, backward FLOPs, and the v1 recount for
bottleneck nets) next to the median time of one real forward pass of the same model at batch 1
on this CPU, measured in the same run, and their ratio. The goal is <= 2x. Each model is
counted on its own (nothing reused from another model's count). Then the whole-zoo baseline
check, the CI path, is timed from a cold start (goal <= 10 s).

    python benchmarks/flops_census.py [--include 'resnet*'] [--engine torch|fvcore]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.utils.benchmark as torch_benchmark

from resnet_probe.measure.costs import clear_piece_counts, count_costs
from resnet_probe.regression import check_baseline
from resnet_probe.zoo import build_model, get_spec, list_models

BASELINE = Path(__file__).parents[1] / "reports" / "baselines" / "flops.json"


def forward_seconds(name: str, threads: int) -> float:
    model = build_model(name).eval()
    size = get_spec(name).default_input_size
    x = torch.randn(1, 3, size, size)
    timer = torch_benchmark.Timer("model(x)", globals={"model": model, "x": x},
                                  num_threads=threads)
    with torch.no_grad():
        return timer.blocked_autorange(min_run_time=0.5).median


def count_seconds(name: str, engine: str, rounds: int = 3) -> float:
    """A model counted on its own: the per-piece counts shared across models are cleared
    before each round, so no round reuses another's work."""
    times = []
    for _ in range(rounds):
        clear_piece_counts()
        start = time.perf_counter()
        count_costs(name, engine=engine)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def zoo_check_seconds() -> float:
    """The CI path: `flops --check` of the committed baseline, whole zoo, from a cold start
    (blocks shared between models are counted once)."""
    clear_piece_counts()
    start = time.perf_counter()
    _, drifts = check_baseline(BASELINE)
    seconds = time.perf_counter() - start
    if drifts:
        raise SystemExit(f"the baseline check found {len(drifts)} drifts: counts changed")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--include", default=None, help="glob of model names")
    parser.add_argument("--engine", default="torch", choices=["torch", "fvcore"])
    args = parser.parse_args()
    threads = torch.get_num_threads()
    count_costs("resnet8")  # import and first-call costs are not the model's
    print(f"engine={args.engine}, threads={threads}, torch {torch.__version__}")
    print(f"{'model':12} {'count s':>8} {'forward s':>10} {'ratio':>7}")
    ratios = []
    for name in list_models(include=args.include):
        counting = count_seconds(name, args.engine)
        running = forward_seconds(name, threads)
        ratios.append(counting / running)
        print(f"{name:12} {counting:8.3f} {running:10.4f} {counting / running:7.1f}")
    within = sum(r <= 2 for r in ratios)
    print(f"==> median ratio {statistics.median(ratios):.1f}x; {within}/{len(ratios)} models "
          f"within the 2x goal")
    if args.include is None:
        seconds = zoo_check_seconds()
        print(f"==> whole-zoo baseline check: {seconds:.1f} s in-process "
              f"({'within' if seconds <= 10 else 'OVER'} the 10 s goal)")


if __name__ == "__main__":
    main()
