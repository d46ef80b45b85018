"""Per-layer CUDA timing check: do per-module device times add up to the whole forward?

Times resnet50 and plain50 per layer on CUDA (events recorded in the hooks, one synchronize per
pass) and prints, per model, batch and dtype: the sum of per-module forward medians, the
event-timed whole forward with the hooks in place, an event-timed whole forward with no hooks
at all (measured in the same run), and whether the per-module sum is within 10% of the
un-hooked forward. Needs a CUDA device; exits 2 without one.

    python benchmarks/gpu_latency.py [--batch-sizes 1,32] [--dtypes fp32,bf16]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from resnet_probe.device import DTYPES
from resnet_probe.measure.latency import LatencyConfig, measure_latency
from resnet_probe.zoo import build_model


def event_timed_forward_ms(name: str, batch: int, dtype: str, repeats: int = 30) -> float:
    model = build_model(name).cuda().to(DTYPES[dtype]).eval()
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=DTYPES[dtype])
    times = []
    for index in range(repeats + 10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(x)
        end.record()
        torch.cuda.synchronize()
        if index >= 10:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,plain50")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: the CUDA path cannot be checked on this machine", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'model':9} {'batch':>5} {'dtype':>5} {'layer sum':>10} {'hooked':>8} "
          f"{'unhooked':>9} {'sum/unhooked':>12}  within 10%")
    failures = 0
    for dtype in args.dtypes.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            config = LatencyConfig(device="cuda", batch_size=batch, repeats=args.repeats,
                                   warmup=10, dtype=dtype, backward=True)
            result = measure_latency(args.models.split(","), config)
            for row in result.models:
                plain = event_timed_forward_ms(row["model"], batch, dtype)
                share = row["layer_sum_forward_ms"] / plain
                ok = abs(share - 1) <= 0.10
                failures += not ok
                print(f"{row['model']:9} {batch:>5} {dtype:>5} "
                      f"{row['layer_sum_forward_ms']:>9.3f}ms {row['hooked_forward_ms']:>7.3f}ms "
                      f"{plain:>8.3f}ms {share:>12.3f}  {'yes' if ok else 'NO'}   "
                      f"(backward {row['backward_ms']:.3f} ms, layer sum "
                      f"{row['layer_sum_backward_ms']:.3f} ms)")
    print(f"==> {failures} configuration(s) outside 10%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
