"""Wall time of the default main job, `resnet-probe compare resnet34 plain34` (goal: < 5 min).

Runs the real command in a subprocess on this machine, into a temporary directory, and prints
the wall time against the 300 s budget. Progress goes to stderr as usual.

    python benchmarks/compare_walltime.py [extra compare arguments...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

BUDGET_S = 300


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "resnet_probe", "compare", "resnet34", "plain34",
                   "--out", out, *sys.argv[1:]]
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        print(done.stdout)
    verdict = "within" if seconds < BUDGET_S else "OVER"
    print(f"==> compare resnet34 plain34: {seconds:.0f} s wall on {os.cpu_count()} cores "
          f"({verdict} the {BUDGET_S} s budget); exit {done.returncode}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
