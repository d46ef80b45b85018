"""The main job's training as 2 single-thread Ray workers against 1 process with 2 threads.

`compare resnet34 plain34` trains four nets per seed (the pair and their shallower siblings,
resnet18 and plain18) with the compare recipe. Here each of those runs is shortened to --steps
(the recipe's batch, lr schedule shape and final evaluation kept), so the per-step work is the
main job's and the benchmark takes minutes, not the section's half hour. Both ways train the
same runs from no run cache, alternating over --rounds:

  * in-process: one process, torch with 2 threads, the runs one after another (the default);
  * --workers 2: a local Ray with 2 workers, each run on 1 thread, two runs at a time; timed
    with Ray's start (what a user waits for) and without it.

Prints the wall times, the ratio (above 1: the workers are faster) and the machine.

    python benchmarks/ray_workers.py [--steps 20] [--seeds 0] [--rounds 1]   (needs ray)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from resnet_probe.data import load_dataset
from resnet_probe.jobs.compare import CompareOptions, Plan
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.executors import IN_PROCESS, RayExecutor
from resnet_probe.train.fitted_data import fit_dataset_to


def sweep_seconds(config, dataset, sources, executor) -> float:
    with tempfile.TemporaryDirectory(prefix="ray-workers-bench-") as out:
        started = time.perf_counter()
        run_degradation(config, Path(out), dataset=dataset, sources=sources, executor=executor)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2, help="threads of the one process, "
                        "and workers (of 1 thread each) of the local Ray")
    args = parser.parse_args()
    import ray

    options = CompareOptions.choose(device="cpu", train_steps=args.steps, latency=False)
    plan = Plan.build(["resnet34", "plain34"], options)
    sources = {source.text: source for source in plan.trained}
    dataset = fit_dataset_to(load_dataset("digits"), list(plan.trained))
    seeds = tuple(int(s) for s in args.seeds.split(","))
    assert options.train is not None
    config = DegradationConfig(models=tuple(sources), train=options.train, seeds=seeds)
    runs = len(sources) * len(seeds)
    print(f"compare resnet34 plain34's training runs: {', '.join(sources)}; seeds "
          f"{args.seeds}; {args.steps} steps of batch {options.train.batch_size} each "
          f"({runs} runs), digits at {dataset.image_size} px")
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{len(os.sched_getaffinity(0))} cores, torch {torch.__version__}, "
          f"ray {ray.__version__}")
    in_process, with_start, without_start = [], [], []
    for _ in range(args.rounds):
        torch.set_num_threads(args.cores)
        in_process.append(sweep_seconds(config, dataset, sources, IN_PROCESS))
        started = time.perf_counter()
        executor = RayExecutor(workers=args.cores, threads_per_run=1)
        executor.connect()
        ray.get([ray.remote(lambda: None).remote() for _ in range(args.cores)])  # workers up
        start = time.perf_counter() - started
        without_start.append(sweep_seconds(config, dataset, sources, executor))
        with_start.append(start + without_start[-1])
        ray.shutdown()
    here, there = statistics.median(in_process), statistics.median(with_start)
    bare = statistics.median(without_start)
    print(f"{'way':42} {'median s':>9}  rounds")
    print(f"{f'1 process x {args.cores} threads (in-process)':42} {here:9.1f}  "
          f"{', '.join(f'{s:.1f}' for s in in_process)}")
    print(f"{f'{args.cores} Ray workers x 1 thread, with Ray start':42} {there:9.1f}  "
          f"{', '.join(f'{s:.1f}' for s in with_start)}")
    print(f"{f'{args.cores} Ray workers x 1 thread, without it':42} {bare:9.1f}  "
          f"{', '.join(f'{s:.1f}' for s in without_start)}")
    ratio = here / there
    print(f"==> {args.cores} single-thread Ray workers vs 1 process with {args.cores} threads: "
          f"ratio {ratio:.2f} with Ray's start ({here / bare:.2f} without it); above 1 the "
          f"workers are faster")
    print(f"==> --workers {'pays off' if ratio > 1.05 else 'does not pay off'} on this "
          f"machine, so it {'could become' if ratio > 1.05 else 'stays off by'} the default")


if __name__ == "__main__":
    main()
