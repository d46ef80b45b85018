"""Counting cost against running cost: the whole zoo at standard inputs.

For every registered model, prints the time to count a built model with the default engine
(params, MACs in every convention, backward FLOPs, and the v1 recount for bottleneck nets)
next to the median time of one real forward pass of the same built model at batch 1 on this
CPU, measured in the same run, and their ratio: the goal is <= 2x. Both sides exclude building
the model; the time to build it on the meta device is printed beside them, with the ratio it
would give if it counted too. Each round counts a freshly built model (nothing is cached
between rounds). Then the whole-zoo baseline check, the CI path, is timed from a cold start,
builds included (goal <= 10 s).

    python benchmarks/flops_census.py [--include 'resnet*'] [--engine torch|fvcore]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

import torch
import torch.utils.benchmark as torch_benchmark

from resnet_probe.jobs.regression import check_baseline
from resnet_probe.measure.costs import count_costs, count_model_costs
from resnet_probe.zoo import build_model, build_on_meta, get_spec, list_models

BASELINE = Path(__file__).parents[1] / "reports" / "baselines" / "flops.json"


def forward_seconds(name: str, threads: int) -> float:
    model = build_model(name).eval()
    size = get_spec(name).default_input_size
    x = torch.randn(1, 3, size, size)
    timer = torch_benchmark.Timer("model(x)", globals={"model": model, "x": x},
                                  num_threads=threads)
    with torch.no_grad():
        return timer.blocked_autorange(min_run_time=0.5).median


def count_seconds(name: str, engine: str, rounds: int = 3) -> tuple[float, float]:
    """Median seconds to build the model on meta, and to count the built model. The garbage
    collector is off while timing, as timeit (under torch's Timer, the forward side) does."""
    builds, counts = [], []
    for _ in range(rounds):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            model = build_on_meta(name)
            built = time.perf_counter()
            count_model_costs(model, name=name, engine=engine)
            counted = time.perf_counter()
        finally:
            gc.enable()
        builds.append(built - start)
        counts.append(counted - built)
    return statistics.median(builds), statistics.median(counts)


def zoo_check_seconds() -> float:
    """The CI path: `flops --check` of the committed baseline, whole zoo, from a cold start
    """
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
    print(f"{'model':22} {'count s':>8} {'forward s':>10} {'ratio':>6} {'build s':>8} "
          f"{'ratio with build':>17}")
    ratios, with_build = [], []
    for name in list_models(include=args.include):
        building, counting = count_seconds(name, args.engine)
        running = forward_seconds(name, threads)
        ratios.append(counting / running)
        with_build.append((building + counting) / running)
        print(f"{name:22} {counting:8.4f} {running:10.4f} {ratios[-1]:6.1f} {building:8.4f} "
              f"{with_build[-1]:17.1f}")
    print(f"==> count / forward: median {statistics.median(ratios):.1f}x, max "
          f"{max(ratios):.1f}x; {sum(r <= 2 for r in ratios)}/{len(ratios)} models within the "
          f"2x goal")
    print(f"==> (build + count) / forward: median {statistics.median(with_build):.1f}x, max "
          f"{max(with_build):.1f}x; {sum(r <= 2 for r in with_build)}/{len(with_build)} "
          f"within 2x")
    if args.include is None:
        seconds = zoo_check_seconds()
        print(f"==> whole-zoo baseline check: {seconds:.1f} s in-process "
              f"({'within' if seconds <= 10 else 'OVER'} the 10 s goal)")


if __name__ == "__main__":
    main()
