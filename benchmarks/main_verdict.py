"""The main job's verdict and causal test on its held-out seeds, with the frozen recipe, into
a results file the docs include.

`resnet-probe compare resnet34 plain34` trains resnet34, plain34 and their shallower siblings
resnet18 and plain18 on the held-out seeds (COMPARE_SEEDS) with compare's own training
recipe, and the causal test trains plain34 and resnet34 again with the intervention for its K
steps (COMPARE_INTERVENTION). This script does exactly that training, fresh (no run cache),
and writes the verdict record (report/words.verdict_record: the endpoint, its test, the sign
test, the supporting numbers, the controls and the causal test), the seeds and their roles,
the wall time of every run, the machine (CPU model, cores, raw resnet34 speed) and the date.

    python benchmarks/main_verdict.py                    # -> docs/results/main_verdict.json
    python benchmarks/main_verdict.py --budget-factor 4  # -> docs/results/sensitivity.json

The sensitivity run trains the four nets at 4x the budget on the same held-out seeds: it tunes
nothing, so it may use them. It skips the intervention: an intervened run follows the
budget's schedule only for its K steps, which is the same at 4x the budget (the first lr
milestone stays past K), so its runs would be the main run's again.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

from compare_walltime import raw_steps_per_second

from resnet_probe.data import load_dataset
from resnet_probe.jobs.compare.plan import CompareOptions
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.report.words import recipe_text, verdict_line, verdict_record
from resnet_probe.results import atomic_write_text
from resnet_probe.sources import resolve
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.recipes import COMPARE_INTERVENTION, COMPARE_SEEDS, COMPARE_TUNING_SEEDS
from resnet_probe.train.run_folder import json_safe

NETS = ("resnet34", "plain34", "resnet18", "plain18")
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-factor", type=int, default=1,
                        help="train at this multiple of the budget (4: the sensitivity run)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sensitivity = args.budget_factor != 1
    out = args.out or RESULTS / ("sensitivity.json" if sensitivity else "main_verdict.json")
    train = CompareOptions.choose(device="cpu").train
    assert train is not None
    if sensitivity:
        steps = train.steps * args.budget_factor
        train = replace(train, steps=steps, eval_every=steps, checkpoint_every=steps)
    data = fit_dataset_to(load_dataset("digits"), [resolve(net) for net in NETS])
    config = DegradationConfig(models=NETS, train=train, seeds=COMPARE_SEEDS,
                               tuning_seeds=COMPARE_TUNING_SEEDS, intervene=not sensitivity,
                               intervention=COMPARE_INTERVENTION)
    speed = raw_steps_per_second("resnet34", train.batch_size, data.image_size)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="main-verdict-") as folder:
        result = run_degradation(config, Path(folder), dataset=data)
    seconds = time.perf_counter() - started
    verdict, causal = result.verdict(), result.causal_test()
    record = {
        "what": ("the main job's training verdict at 4x the budget (sensitivity run)"
                 if sensitivity else "the main job's training verdict and causal test"),
        "command": "resnet-probe compare resnet34 plain34 (its training section)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seeds": list(COMPARE_SEEDS), "tuning_seeds": list(COMPARE_TUNING_SEEDS),
        "seeds_note": ("held out: never run before the recipe was frozen" if not sensitivity
                       else "the held-out seeds again; this run tunes nothing"),
        "recipe": json_safe(asdict(train)), "recipe_in_words": recipe_text(train),
        "budget_factor": args.budget_factor,
        "intervention": json_safe(asdict(COMPARE_INTERVENTION)) if not sensitivity else None,
        "data": data.description,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "threads": os.environ.get("OMP_NUM_THREADS"),
                    "raw_resnet34_steps_per_s": round(speed, 3),
                    "python": sys.version.split()[0], "platform": platform.platform()},
        "runs": [{"model": run.model, "seed": run.seed, "status": str(run.status),
                  "seconds": round(run.seconds, 1)} for run in result.runs],
        "intervened_runs": [{"model": run.model, "seed": run.seed, "status": str(run.status),
                             "steps": len(run.history), "seconds": round(run.seconds, 1)}
                            for run in result.intervened_runs],
        "seconds": {"total": round(seconds, 1),
                    "normal_runs": round(sum(r.seconds for r in result.runs), 1),
                    "intervention": round(sum(r.seconds for r in result.intervened_runs), 1)},
        "verdict_line": verdict_line(verdict),
        "verdict": verdict_record(verdict, causal),
    }
    atomic_write_text(out, json.dumps(_json_ready(record), indent=2) + "\n")
    print(verdict_line(verdict))
    if causal is not None:
        print(record["verdict"]["causal_test"]["in_words"])
    print(f"{out}: {seconds:.0f} s")


def _json_ready(value):
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


if __name__ == "__main__":
    main()
