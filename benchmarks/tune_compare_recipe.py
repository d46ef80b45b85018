"""Tune compare's training recipe and the causal test's K on the tuning seeds only
(COMPARE_TUNING_SEEDS); every run is appended to benchmarks/tuning/compare_recipe.jsonl.

Train: each candidate trains the four nets of the main job's verdict (resnet18, plain18,
resnet34, plain34) on every tuning seed, one JSON row per run with its per-step train-mode
errors (so the verdict's endpoint, the area under the training-error curve, can be computed
over any prefix). A candidate with "intervene": K also trains plain34 and resnet34 with the
intervention (train.interventions, projected after each step) for K steps; an intervened
run's first k steps are the same for every K >= k, so one run serves every smaller K.

    python benchmarks/tune_compare_recipe.py train OUT.jsonl \
        '{"batch": 64, "steps": 60, "lr": 0.02, "intervene": 40}'

Summarise: per candidate budget, the verdict (train.verdict.judge) on all tuning seeds and on
every three-seed subset of them (a compare run has three seeds), and the causal test
(train.causal) per K, the same way.

    python benchmarks/tune_compare_recipe.py summarise benchmarks/tuning/compare_recipe.jsonl

A candidate's keys: batch, steps, lr, and optionally warmup (steps at lr 0.01, default 10),
milestones (fractions of the budget where lr drops x0.1, default [0.75]), intervene (K) and
round (a label). Rows from rounds 1-5 (before issue 37) hold final errors only and are skipped
by the summary.

Other designs of the intervention, explored on tuning seeds against the primary one (rows with
"design"; the summary lists them apart): "design": "lr" (the learning-rate variant),
"momentum-keep" / "momentum-clear" (the projection with the momentum buffer left as it is, or
cleared, instead of divided by c), "early" (the projection on the stem's and first stage's
convs only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections import defaultdict
from typing import Any

from resnet_probe.data import load_dataset
from resnet_probe.sources import resolve
from resnet_probe.train.causal import causal_test
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.interventions import Intervention
from resnet_probe.train.loop import RunResult, RunStatus, TrainConfig, final_metrics, train_run
from resnet_probe.train.recipes import COMPARE_TUNING_SEEDS
from resnet_probe.train.verdict import Verdict, error_auc, judge

NETS = ("resnet18", "plain18", "resnet34", "plain34")
INTERVENED = ("plain34", "resnet34")
CHANCE = 0.9  # ten digit classes


def recipe(candidate: dict[str, Any]) -> TrainConfig:
    steps = candidate["steps"]
    return TrainConfig(steps=steps, batch_size=candidate["batch"], lr=candidate["lr"],
                       warmup_steps=candidate.get("warmup", 10),
                       milestones=tuple(candidate.get("milestones", [0.75])),
                       eval_every=steps, grad_norm_every=steps, checkpoint_every=steps,
                       eval_images=512)


def designed(candidate: dict[str, Any], steps: int) -> Intervention:
    """The intervention a candidate asks for; the exploratory designs patch the loop's hook
    for this process only."""
    from resnet_probe.train import interventions, loop

    design = candidate.get("design", "primary")
    if design == "lr":
        return Intervention(steps, interventions.InterventionVariant.LEARNING_RATE)
    if design.startswith("momentum-"):
        def project(model, optimizer, convs, norms):
            buffers = {p: optimizer.state[p]["momentum_buffer"].clone()
                       for p in model.parameters()
                       if optimizer.state.get(p, {}).get("momentum_buffer") is not None}
            interventions.project_to_norms(model, optimizer, convs, norms)
            for parameter, buffer in buffers.items():
                kept = buffer if design == "momentum-keep" else buffer.zero_()
                optimizer.state[parameter]["momentum_buffer"].copy_(kept)
        loop.project_to_norms = project
    elif design == "early":
        def early(model):
            info = getattr(model, "layer_info", {}) or {}
            first = min((i.stage for i in info.values() if i.stage.startswith("stage")),
                        default=None)
            return {conv: bn for conv, bn in interventions.bn_fed_convs(model).items()
                    if conv in info and info[conv].stage in ("stem", first)}
        loop.bn_fed_convs = early
    elif design != "primary":
        raise SystemExit(f"unknown design {design!r}")
    return Intervention(steps)


def train(args: argparse.Namespace) -> None:
    seeds = [int(seed) for seed in args.seeds.split(",")]
    if not set(seeds) <= set(COMPARE_TUNING_SEEDS):
        raise SystemExit(f"--seeds {args.seeds}: tune on COMPARE_TUNING_SEEDS "
                         f"{COMPARE_TUNING_SEEDS} only, never on the held-out ones")
    data = fit_dataset_to(load_dataset("digits"), [resolve(net) for net in NETS])
    with open(args.out, "a") as out:
        for candidate in map(json.loads, args.candidates):
            config = recipe(candidate)
            runs = [] if args.only_intervened else [(net, None) for net in args.nets.split(",")]
            if candidate.get("intervene"):
                intervention = designed(candidate, int(candidate["intervene"]))
                runs += [(net, intervention) for net in INTERVENED
                         if net in args.nets.split(",")]
            for seed in seeds:
                for net, intervention in runs:
                    started = time.perf_counter()
                    run = train_run(net, data, TrainConfig(**{**config.__dict__,
                                                              "intervention": intervention}),
                                    seed=seed)
                    metrics = final_metrics(run)
                    row = {**candidate, "seed": seed, "net": net,
                           "intervention": intervention.steps if intervention else None,
                           "status": str(run.status), "diverged_at": run.diverged_at,
                           "final_train_error": metrics["final_train_error"],
                           "final_train_error_eval": metrics["final_train_error_eval"],
                           "test": metrics["final_test_error"],
                           "auc": error_auc([r["train_error"] for r in run.history],
                                            intervention.steps if intervention
                                            else config.steps, CHANCE),
                           "train_errors": [round(r["train_error"], 6) for r in run.history],
                           "seconds": round(time.perf_counter() - started, 1),
                           "threads": os.environ.get("OMP_NUM_THREADS")}
                    print(json.dumps({k: v for k, v in row.items() if k != "train_errors"}),
                          flush=True)
                    out.write(json.dumps(row) + "\n")
                    out.flush()


# --- the summary -------------------------------------------------------------------------------

def as_run(row: dict[str, Any]) -> RunResult:
    depth, shortcut = resolve(row["net"]).traits()
    history = [{"step": i, "train_error": e, "train_loss": 0.0}
               for i, e in enumerate(row["train_errors"])]
    return RunResult(model=row["net"], seed=row["seed"], status=RunStatus(row["status"]),
                     history=history, depth=depth, shortcut=shortcut,
                     diverged_at=row.get("diverged_at"), seconds=row.get("seconds", 0.0))


def final_row(run: RunResult, budget: int) -> dict[str, Any]:
    errors = [r["train_error"] for r in run.history]
    return {"model": run.model, "depth": run.depth, "shortcut": run.shortcut, "seed": run.seed,
            "status": run.status, **{k: v for k, v in final_metrics(run).items()
                                     if k == "final_train_error"},
            "train_error_auc": error_auc(errors, budget, CHANCE)}


def summarise(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in open(args.out) if line.strip()]
    rows = [r for r in rows if "train_errors" in r and r["seed"] in COMPARE_TUNING_SEEDS]
    by_budget: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        key = (row["batch"], row["steps"], row["lr"], row.get("warmup", 10),
               tuple(row.get("milestones", [0.75])))
        by_budget[key].append(row)
    for key, group in sorted(by_budget.items()):
        normal = {(r["net"], r["seed"]): as_run(r) for r in group if not r["intervention"]}
        seeds = sorted({seed for (_, seed) in normal
                        if all((net, seed) in normal for net in NETS)})
        if not seeds:
            continue
        steps = key[1]
        finals = [final_row(normal[(net, s)], steps) for s in seeds for net in NETS]
        verdict = judge(finals, CHANCE, COMPARE_TUNING_SEEDS)
        subsets = list(itertools.combinations(seeds, 3))
        outcomes = defaultdict(int)
        slower = 0
        for subset in subsets:
            v = judge([f for f in finals if f["seed"] in subset], CHANCE, COMPARE_TUNING_SEEDS)
            outcomes[v.verdict.value] += 1
            slower += v.slower_optimisation
        seconds = sum(r["seconds"] for r in group if not r["intervention"])
        print(f"batch {key[0]} steps {steps} lr {key[2]}: seeds {seeds}; "
              f"{seconds:.0f} s of training")
        worst = {net: max(f["final_train_error"] for f in finals if f["model"] == net)
                 for net in NETS}
        print(f"  worst final error per net: "
              f"{', '.join(f'{n} {e:.3f}' for n, e in worst.items())}")
        assert verdict.plain_gap is not None and verdict.final_plain_gap is not None
        print(f"  all seeds: {verdict.verdict.value}; plain gap {verdict.plain_gap.text()}, "
              f"lowest bound {verdict.lowest_low:+.3f}; final-error plain gap "
              f"{verdict.final_plain_gap.text()}; {verdict.sign_test}")
        print(f"  three-seed subsets ({len(subsets)}): {dict(outcomes)}; "
              f"'slower optimisation' in {slower}")
        intervened = [r for r in group if r["intervention"]]
        for design, k in sorted({(r.get("design", "primary"), r["intervention"])
                                 for r in intervened}):
            treated = [as_run(r) for r in intervened if r["intervention"] == k
                       and r.get("design", "primary") == design]
            treated_seeds = {r.seed for r in treated}
            runs = [r for r in normal.values() if r.seed in treated_seeds]
            subsets = list(itertools.combinations(sorted(treated_seeds), 3))
            for upto in sorted({5, 10, 20, 30, 40, k} - {0}):
                if upto > k:
                    continue
                test = causal_test(runs, treated, Intervention(upto), CHANCE)
                per_subset = defaultdict(int)
                for subset in subsets:
                    sub = causal_test([r for r in runs if r.seed in subset],
                                      [r for r in treated if r.seed in subset],
                                      Intervention(upto), CHANCE)
                    per_subset[sub.outcome.value] += 1
                assert test.plain_change and test.control_change and test.gap_before
                cost = sum(r.seconds for r in treated) * upto / k
                diverged = ", ".join(f"{r.model} s{r.seed}@{r.step}" for r in test.diverged)
                print(f"  causal test [{design}], K={upto} (from runs to {k}): "
                      f"{test.outcome.value}; diverged: {diverged or 'none'}; "
                      f"plain34 change {test.plain_change.text()}; resnet34 change "
                      f"{test.control_change.text()}; band +-{test.control_band:.3f}; plain "
                      f"gap at K {test.gap_before.text()}; subsets {dict(per_subset)}; "
                      f"~{cost:.0f} s for {len(treated)} runs")
        if verdict.verdict is not Verdict.OBSERVED:
            print(f"  reasons: {verdict.reasons}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train")
    run.add_argument("out", help="JSON-lines file the rows are appended to")
    run.add_argument("candidates", nargs="+", help="one JSON object per candidate")
    run.add_argument("--seeds", default=",".join(map(str, COMPARE_TUNING_SEEDS)),
                     help="tuning seeds only (default: all of COMPARE_TUNING_SEEDS)")
    run.add_argument("--nets", default=",".join(NETS))
    run.add_argument("--only-intervened", action="store_true",
                     help="train only the intervened runs (the normal ones are in OUT already)")
    summary = commands.add_parser("summarise")
    summary.add_argument("out")
    args = parser.parse_args()
    train(args) if args.command == "train" else summarise(args)


if __name__ == "__main__":
    main()
