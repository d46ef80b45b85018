"""Tune compare's training recipe on the tuning seeds only (COMPARE_TUNING_SEEDS).

Each candidate trains the four nets of the main job's verdict (resnet18, plain18, resnet34,
plain34) on every tuning seed and appends one JSON row per run to OUT. The recipe in
``resnet_probe/jobs/compare/plan.py`` is the cheapest candidate whose every tuning plain34 run
trained (final training error below 3/4 of chance); the held-out seeds (COMPARE_SEEDS) were
run once, after the choice, by `compare` itself. This session's rows are in
benchmarks/tuning/compare_recipe.jsonl.

    python benchmarks/tune_compare_recipe.py OUT.jsonl '{"batch": 64, "steps": 100, "lr": 0.02}'

A candidate's keys: batch, steps, lr, and optionally warmup (steps at lr 0.01, default 10) and
milestones (fractions of the budget where lr drops x0.1, default [0.75]).
"""

from __future__ import annotations

import argparse
import json
import time

from resnet_probe.data import load_dataset
from resnet_probe.jobs.compare.plan import COMPARE_TUNING_SEEDS
from resnet_probe.sources import resolve
from resnet_probe.train.degradation import fit_dataset_to
from resnet_probe.train.loop import TrainConfig, final_metrics, train_run

NETS = ("resnet18", "plain18", "resnet34", "plain34")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="JSON-lines file the rows are appended to")
    parser.add_argument("candidates", nargs="+", help="one JSON object per candidate")
    parser.add_argument("--seeds", default=",".join(map(str, COMPARE_TUNING_SEEDS)),
                        help="tuning seeds only (default: all of COMPARE_TUNING_SEEDS)")
    parser.add_argument("--nets", default=",".join(NETS))
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if not set(seeds) <= set(COMPARE_TUNING_SEEDS):
        parser.error(f"--seeds {args.seeds}: tune on COMPARE_TUNING_SEEDS "
                     f"{COMPARE_TUNING_SEEDS} only, never on the held-out ones")
    data = fit_dataset_to(load_dataset("digits"), [resolve(net) for net in NETS])
    with open(args.out, "a") as out:
        for candidate in map(json.loads, args.candidates):
            steps = candidate["steps"]
            config = TrainConfig(steps=steps, batch_size=candidate["batch"], lr=candidate["lr"],
                                 warmup_steps=candidate.get("warmup", 10),
                                 milestones=tuple(candidate.get("milestones", [0.75])),
                                 eval_every=steps, grad_norm_every=steps,
                                 checkpoint_every=steps)
            for seed in seeds:
                for net in args.nets.split(","):
                    started = time.perf_counter()
                    metrics = final_metrics(train_run(net, data, config, seed=seed))
                    row = {**candidate, "seed": seed, "net": net,
                           "final_train_error": metrics["final_train_error"],
                           "final_train_error_eval": metrics["final_train_error_eval"],
                           "test": metrics["final_test_error"],
                           "seconds": round(time.perf_counter() - started, 1)}
                    print(json.dumps(row), flush=True)
                    out.write(json.dumps(row) + "\n")
                    out.flush()


if __name__ == "__main__":
    main()
