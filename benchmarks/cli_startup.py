"""How long does `resnet-probe --help` take? (goal: under 1 s on this project's 2-core machine)

Prints, side by side from one run, the median wall time over N runs of:
  * `python -c pass` (the interpreter's own start: the machine's raw speed),
  * `python -c "import torch"` (what a command that measures must pay),
  * `resnet-probe --help` and `resnet-probe compare --help`,
and each one's ratio to the bare interpreter.

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = [sys.executable]
    commands = {
        "python -c pass": [*python, "-c", "pass"],
        "python -c 'import torch'": [*python, "-c", "import torch"],
        "resnet-probe --help": [*python, "-m", "resnet_probe", "--help"],
        "resnet-probe compare --help": [*python, "-m", "resnet_probe", "compare", "--help"],
    }
    seconds = {name: median_seconds(command, args.runs) for name, command in commands.items()}
    bare = seconds["python -c pass"]
    print(f"{'command':32} {'median s':>9} {'x bare python':>14}")
    for name, value in seconds.items():
        print(f"{name:32} {value:9.3f} {value / bare:14.1f}")
    goal = seconds["resnet-probe --help"]
    print(f"\nresnet-probe --help: {goal:.3f} s (goal < 1 s: {'met' if goal < 1 else 'missed'})")


if __name__ == "__main__":
    main()
