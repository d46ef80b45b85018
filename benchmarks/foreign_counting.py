"""Counting any model: resnet-probe against its peers, and the meta path against counting at
full size on the CPU. Runs in the second environment (torch 2.14.1, torchvision, timm) with the
peers installed: ``pip install ptflops calflops``.

Part 1, speed, from one run: per model the median of 3 timed counts after a warm-up (gc off, a
fresh copy of the built model per count; the peers get the model already built), in seconds,
for resnet-probe by zoo name (where the zoo has the net), on the built nn.Module, and by
``torchvision:``/``timm:`` name (its build on the meta device included), and for ptflops
(pytorch and aten backends), calflops, FlopCounterMode and fvcore, each counting its single
convention. resnet-probe counts every convention, forward and backward, in that time. The
goals: on a built module resnet-probe takes no longer than ptflops (pytorch) on every model
(ratio <= 1), and a zoo name stays the fastest of all.

Part 2, memory, each count in a fresh process: the peak RSS the count adds over the process
after its imports, and the seconds, for ``torchvision:resnet50``, ``torchvision:vit_b_16`` and
``timm:resnet50d`` counted on the meta device (resnet-probe now) against building the model on
the CPU and running FlopCounterMode over its forward and backward at full size (resnet-probe's
path for foreign models before this round). The goal: counting adds under 1.2x the model's own
parameter bytes.

    python benchmarks/foreign_counting.py [--rounds 3] [--skip-memory]
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings

import torch

MODELS = [  # (library name, zoo name or None)
    ("torchvision:resnet18", "resnet18"), ("torchvision:resnet50", "resnet50"),
    ("torchvision:resnet152", "resnet152"), ("torchvision:resnext50_32x4d", "resnext50_32x4d"),
    ("torchvision:regnet_y_400mf", None), ("timm:resnet50d", "resnet50d"),
]
MEMORY_MODELS = ["torchvision:resnet50", "torchvision:vit_b_16", "timm:resnet50d"]


def _build(text: str) -> torch.nn.Module:
    from resnet_probe.sources import resolve

    return resolve(text).build(structure=False).eval()


def _methods(text: str, zoo: str | None):
    """name -> callable(model) counting once; model is a fresh copy of the built module."""
    from resnet_probe.measure.costs import count_costs, count_module_costs

    x = torch.zeros(1, 3, 224, 224)

    def ptflops(backend):
        from ptflops import get_model_complexity_info

        return lambda m: get_model_complexity_info(
            m, (3, 224, 224), as_strings=False, print_per_layer_stat=False, backend=backend)

    def calflops(m):
        from calflops import calculate_flops

        return calculate_flops(m, input_shape=(1, 3, 224, 224), output_as_string=False,
                               print_results=False, print_detailed=False)

    def flop_counter_mode(m):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter, torch.no_grad():
            m(x)
        return counter.get_total_flops()

    def fvcore(m):
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(m, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return analysis.total()

    methods = {}
    if zoo is not None:
        methods["resnet-probe (zoo name)"] = lambda m: count_costs(zoo)
    methods["resnet-probe (built module)"] = lambda m: count_module_costs(m, x, text)
    methods["resnet-probe (torchvision:/timm: name)"] = \
        lambda m: count_costs(text, structure=False)
    methods["ptflops (pytorch)"] = ptflops("pytorch")
    methods["ptflops (aten)"] = ptflops("aten")
    methods["calflops"] = calflops
    methods["FlopCounterMode"] = flop_counter_mode
    methods["fvcore"] = fvcore
    return methods


def time_counts(rounds: int) -> None:
    print(f"Part 1: seconds per count (median of {rounds} after a warm-up); torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for text, zoo in MODELS:
        built = _build(text)
        row = {"model": text}
        for name, method in _methods(text, zoo).items():
            samples = []
            for index in range(rounds + 1):
                model = copy.deepcopy(built)
                gc.collect()
                gc.disable()
                try:
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        method(model)
                    elapsed = time.perf_counter() - start
                finally:
                    gc.enable()
                if index:  # the first is the warm-up
                    samples.append(elapsed)
            row[name] = statistics.median(samples)
        rows.append(row)
        print(json.dumps(row), flush=True)
    names = [k for k in rows[0] if k != "model" and not k.startswith("resnet-probe (zoo")]
    header = ["model", "resnet-probe (zoo name)", *names, "module / ptflops(pytorch)",
              "zoo / fastest peer"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    met = True
    for row in rows:
        module = row["resnet-probe (built module)"]
        ratio = module / row["ptflops (pytorch)"]
        peers = min(v for k, v in row.items() if k not in ("model",)
                    and not k.startswith("resnet-probe"))
        zoo = row.get("resnet-probe (zoo name)")
        met &= ratio <= 1 and (zoo is None or zoo < peers)
        cells = [row["model"], f"{zoo:.4f}" if zoo is not None else "—",
                 *(f"{row[n]:.4f}" for n in names), f"{ratio:.2f}",
                 f"{zoo / peers:.2f}" if zoo is not None else "—"]
        print("| " + " | ".join(cells) + " |")
    print(f"\ngoal (module <= ptflops pytorch on every model; zoo name fastest): "
          f"{'met' if met else 'MISSED'}")


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024  # kB


def _one(method: str, text: str) -> None:
    """In a fresh process: the peak RSS one count adds, and its seconds (JSON on stdout)."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.sources import resolve

    warnings.simplefilter("ignore")
    source = resolve(text)
    # imports and a tiny count first, so the baseline RSS holds the libraries
    count_costs("resnet8")
    gc.collect()
    # ru_maxrss is the peak since the process began, which the imports may already have set:
    # reset the kernel's high-water mark (VmHWM) to the current RSS instead (Linux).
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    if method == "meta":
        result = count_costs(source, structure=False)
        params = result.summary["params"]
    else:  # the previous path: a CPU build, FlopCounterMode over forward and backward
        from torch.utils.flop_counter import FlopCounterMode

        model = source.build(structure=False).eval()
        params = sum(p.numel() for p in model.parameters())
        with FlopCounterMode(display=False):
            model(torch.zeros(1, 3, 224, 224)).sum().backward()
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    print(json.dumps({"seconds": seconds, "added_bytes": max(0, peak - before),
                      "param_bytes": params * 4}))


def memory() -> None:
    print("\nPart 2: one count per fresh process: seconds, peak RSS added (MB), and that over "
          "the model's parameter bytes")
    print("| model | method | seconds | RSS added (MB) | params (MB) | added / params |\n"
          "|---|---|---|---|---|---|")
    met = True
    for text in MEMORY_MODELS:
        for method, label in (("meta", "meta device (now)"),
                              ("cpu", "CPU build + FlopCounterMode (before)")):
            out = subprocess.run([sys.executable, __file__, "--one", method, text],
                                 capture_output=True, text=True, check=True).stdout
            found = json.loads(out.strip().splitlines()[-1])
            ratio = found["added_bytes"] / found["param_bytes"]
            if method == "meta":
                met &= ratio < 1.2
            print(f"| {text} | {label} | {found['seconds']:.3f} | "
                  f"{found['added_bytes'] / 2**20:.0f} | {found['param_bytes'] / 2**20:.0f} | "
                  f"{ratio:.2f} |", flush=True)
    print(f"\ngoal (counting on meta adds < 1.2x the parameter bytes): "
          f"{'met' if met else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        _one(*args.one)
        return
    time_counts(args.rounds)
    if not args.skip_memory:
        memory()


if __name__ == "__main__":
    main()
