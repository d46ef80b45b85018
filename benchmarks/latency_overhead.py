"""How much does per-layer timing perturb what it measures? (goal: hooked/un-hooked <= 1.05)

For resnet50 at 224 on CPU, batch 1 and 8, prints side by side from one run:
  * the un-hooked forward median (the interleaved rounds' forward passes, no hooks at all),
  * the hooked forward median (every leaf timed with perf_counter pre/post hooks),
  * their ratio, and the sum of per-layer medians against the hooked whole-model median.
Each batch size is measured in several rounds and the median ratio reported, because a shared
2-core machine drifts by +-10% between identical runs.

    python benchmarks/latency_overhead.py [--rounds 3] [--repeats 20] [--model resnet50]
"""

from __future__ import annotations

import argparse
import statistics

from resnet_probe.measure.latency import LatencyConfig, measure_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--with-backward", action="store_true",
                        help="also time backward passes (forward is still timed on its own)")
    args = parser.parse_args()
    print(f"{'model':10} {'batch':>5} {'round':>5} {'unhooked ms':>12} {'hooked ms':>10} "
          f"{'ratio':>6} {'layer sum ms':>13} {'sum/total':>9}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        ratios, coverage = [], []
        for round_index in range(args.rounds):
            config = LatencyConfig(device="cpu", batch_size=batch, repeats=args.repeats,
                                   warmup=args.warmup, backward=args.with_backward,
                                   peak_gflops=1.0, peak_gbytes_per_s=1.0)
            row = measure_latency([args.model], config).models[0]
            ratios.append(row["hook_overhead_ratio"])
            coverage.append(row["layer_sum_to_total"])
            print(f"{args.model:10} {batch:>5} {round_index:>5} {row['forward_ms']:>12.2f} "
                  f"{row['hooked_forward_ms']:>10.2f} {row['hook_overhead_ratio']:>6.3f} "
                  f"{row['layer_sum_forward_ms']:>13.2f} {row['layer_sum_to_total']:>9.3f}")
        median = statistics.median(ratios)
        verdict = "meets the goal" if median <= 1.05 else "ABOVE the 1.05 goal"
        print(f"==> {args.model} batch {batch}: median hooked/un-hooked = {median:.3f} "
              f"({verdict}); per-layer sum covers {statistics.median(coverage):.1%} of the "
              f"hooked total (the rest is Python between layers: the residual add, flatten)")


if __name__ == "__main__":
    main()
