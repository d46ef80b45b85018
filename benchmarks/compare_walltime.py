"""Wall time of the main job, `resnet-probe compare resnet34 plain34`, cold and rerun.

Runs the real command twice in subprocesses on this machine, into a temporary report folder
and a temporary, initially empty run cache: the first run is cold (it trains), the second
reuses the cached runs. Prints each run's wall time and per-section split side by side with
the goals (cold <= 300 s, rerun <= 60 s), the training verdict, and what the report folder
holds afterwards (it must hold no checkpoints). Progress goes to stderr as usual.

    python benchmarks/compare_walltime.py [extra compare arguments...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_BUDGET_S = 300
RERUN_BUDGET_S = 60
SECTIONS = ("costs", "latency", "gradients", "training", "training_why")  # why: inside training


def run_once(out: Path, cache: Path) -> tuple[float, int, dict[str, str]]:
    command = [sys.executable, "-m", "resnet_probe", "compare", "resnet34", "plain34",
               "--out", str(out), *sys.argv[1:]]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "RESNET_PROBE_CACHE_DIR": str(cache)})
    seconds = time.perf_counter() - start
    print(done.stdout)
    environment = {}
    table = out / "compare-resnet34-vs-plain34-data" / "environment.json"
    if table.exists():
        environment = {row["key"]: row["value"] for row in json.loads(table.read_text())}
    return seconds, done.returncode, environment


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        out, cache = Path(scratch) / "reports", Path(scratch) / "cache"
        cold = run_once(out, cache)
        rerun = run_once(out, cache)
        checkpoints = sorted(str(p.relative_to(out)) for p in out.rglob("*.pt"))
        report_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        cache_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
        verdict_file = out / "compare-resnet34-vs-plain34-data" / "verdict.json"
        verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    print(f"machine: {os.cpu_count()} cores; section split (s):")
    print(f"{'section':<12} {'cold':>8} {'rerun':>8}")
    for section in SECTIONS:
        print(f"{section:<12} {cold[2].get(f'{section}_seconds', '-'):>8} "
              f"{rerun[2].get(f'{section}_seconds', '-'):>8}")
    print(f"{'wall':<12} {cold[0]:>8.0f} {rerun[0]:>8.0f}")
    print(f"==> cold {cold[0]:.0f} s ({'within' if cold[0] <= COLD_BUDGET_S else 'OVER'} "
          f"{COLD_BUDGET_S} s), rerun {rerun[0]:.0f} s ("
          f"{'within' if rerun[0] <= RERUN_BUDGET_S else 'OVER'} {RERUN_BUDGET_S} s), "
          f"rerun/cold {rerun[0] / cold[0]:.2f}; exit {cold[1]}, {rerun[1]}")
    print(f"==> training verdict: {verdict.get('verdict', 'none')}: "
          f"{'; '.join(verdict.get('reasons', []))}")
    print(f"==> report folder {report_mb:.1f} MB, checkpoints in it: {checkpoints or 'none'}; "
          f"run cache {cache_mb:.1f} MB")
    return cold[1] or rerun[1]


if __name__ == "__main__":
    sys.exit(main())
