"""The two latency engines side by side, from one run: hooks (perf_counter or CUDA events
between pre- and post-hooks) and profiler (torch.profiler's operator and kernel events).

For each model (default resnet50 and plain50 at batch 8 on this CPU): the plain un-hooked
forward (the raw-torch reference), each engine's instrumented pass and its overhead over the
reference, the sum of each engine's per-module forward times against the reference, and per
stage the two engines' times with their ratio. The goals on a CPU: the profiler engine's
per-module sum within 10% of the un-hooked pass, and the two engines within 15% of each other
per stage on resnet50 at batch 8. On a GPU (--device cuda) the same table shows the
profiler's launch-bound fraction; benchmarks/gpu_check.sh runs it there.

    python benchmarks/latency_engines.py [--models resnet50 plain50] [--batch-size 8]
        [--device cpu] [--repeats 10]
"""

from __future__ import annotations

import argparse

from resnet_probe.measure.latency import LatencyConfig, measure_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "plain50"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    results = {engine: measure_latency(args.models, LatencyConfig(
        engine=engine, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
        repeats=args.repeats, warmup=3, backward=False)) for engine in ("hooks", "profiler")}
    env = results["hooks"].environment
    print(f"{env['device']} ({env['device_name']}), {env['threads']} threads, {args.dtype}, "
          f"batch {args.batch_size}, torch {env['torch_version']}")
    print("\n| model | plain forward ms (reference) | engine | instrumented ms | overhead "
          "| sum of modules ms | sum / plain | sum / busy | launch-bound |\n"
          "|---|---|---|---|---|---|---|---|---|")
    goals = []
    for engine, result in results.items():
        for row in result.models:
            plain = row["forward_ms"]
            ratio = row["layer_sum_forward_ms"] / plain
            if engine == "profiler":
                goals.append((f"{row['model']}: profiler sum within 10% of plain",
                              abs(ratio - 1) <= 0.10))
            bound = row.get("forward_launch_bound_fraction")
            busy = row.get("forward_busy_ms")
            of_busy = row["layer_sum_forward_ms"] / busy if busy else None
            if of_busy is not None and env["device"] == "cuda":
                goals.append((f"{row['model']}: kernel times sum within 2% of busy time",
                              abs(of_busy - 1) <= 0.02))
                goals.append((f"{row['model']}: profiled wall within 10% of the plain pass",
                              abs(row["hook_overhead_ratio"] - 1) <= 0.10))
            print(f"| {row['model']} | {plain:.2f} | {engine} | {row['hooked_forward_ms']:.2f} "
                  f"| {row['hook_overhead_ratio']:.2f}x | {row['layer_sum_forward_ms']:.2f} | "
                  f"{ratio:.3f} | {f'{of_busy:.3f}' if of_busy else '—'} | "
                  f"{f'{bound:.1%}' if bound is not None else '—'} |")
    # Like for like: the hook engine times leaf modules only, so the profiler's stages are
    # summed over the same modules; its rows for blocks (their own code: the residual add)
    # are shown beside, as what the hook engine cannot see.
    import pandas as pd

    hooks_layers = pd.DataFrame(results["hooks"].layers)
    profiler_layers = pd.DataFrame(results["profiler"].layers)
    forward = "direction == 'forward'"
    print("\n| model | stage | hooks ms | profiler ms, same modules | profiler / hooks "
          "| profiler, blocks' own code ms |\n|---|---|---|---|---|---|")
    for model in args.models:
        ours = hooks_layers.query(f"model == @model and {forward}")
        theirs = profiler_layers.query(f"model == @model and {forward}")
        leaves = theirs["module"].isin(ours["module"])
        hooks = ours.groupby("stage", sort=False)["median_ms"].sum()
        profiler = theirs[leaves].groupby("stage", sort=False)["median_ms"].sum()
        own_code = theirs[~leaves].groupby("stage", sort=False)["median_ms"].sum()
        worst = 0.0
        for stage in hooks.index:
            if stage not in profiler:
                continue
            ratio = profiler[stage] / hooks[stage]
            worst = max(worst, abs(ratio - 1))
            print(f"| {model} | {stage} | {hooks[stage]:.3f} | {profiler[stage]:.3f} | "
                  f"{ratio:.3f} | {own_code.get(stage, 0.0):.3f} |")
        goals.append((f"{model}: engines within 15% per stage (same modules)", worst <= 0.15))
    print()
    for goal, met in goals:
        print(f"goal {goal}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
