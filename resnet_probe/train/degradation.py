"""The degradation experiment: plain and residual twins at several depths, several seeds.

Here live its records: the configuration, the result a sweep fills in (``jobs.sweep`` runs it),
the tables and verdicts made from it, and the reading back of a finished run's folder for
``compare --from-degradation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.data import DATASETS, DEFAULT_DATASET
from resnet_probe.errors import InvalidRequest
from resnet_probe.results import frame, table
from resnet_probe.settings import check_settings, setting
from resnet_probe.train import run_folder
from resnet_probe.train.causal import CausalTest, causal_test
from resnet_probe.train.dynamics import dynamics_summary
from resnet_probe.train.interventions import Intervention
from resnet_probe.train.loop import (
    ENDED,
    RunResult,
    TrainConfig,
    final_metrics,
    load_checkpoint,
)
from resnet_probe.train.recipes import (
    DEGRADATION_INTERVENTION,
    DEGRADATION_SEEDS,
    DEGRADATION_STEPS,
    DEGRADATION_TUNING_SEEDS,
)
from resnet_probe.train.verdict import (
    DegradationVerdict,
    StoppedEarly,
    TwinVerdict,
    error_auc,
    judge,
    judge_twins,
)
from resnet_probe.untrusted import UntrustedFileError, checked, read_json
from resnet_probe.zoo import Family, get_spec, name_of
from resnet_probe.zoo.registry import IMAGENET_LAYERS

FAMILIES = tuple(family.value for family in Family)
DEFAULT_DEPTHS = {"cifar": (20, 56), "imagenet": (18, 34)}
TUNING_SEEDS = DEGRADATION_TUNING_SEEDS
DEFAULT_SEEDS = DEGRADATION_SEEDS


def twin_names(family: str, depth: int, preact: bool = False) -> tuple[str, str]:
    """(plain, residual) model names for a depth, validated for the family: registered names
    where they exist, ``BASE[field=value,...]`` texts otherwise."""
    if family == "cifar":
        if depth < 8 or (depth - 2) % 6:
            raise InvalidRequest(f"CIFAR-family depth must be 6n+2 (8, 14, 20, 32, 44, 56, "
                                 f"110, ...): depth={depth}")
        n = (depth - 2) // 6
        residual = get_spec("resnet20").replace(layers=(n, n, n), preact=preact)
    elif family == "imagenet":
        if depth not in IMAGENET_LAYERS:
            raise InvalidRequest(f"ImageNet-family depth must be one of "
                                 f"{', '.join(map(str, IMAGENET_LAYERS))}: depth={depth}")
        residual = get_spec(f"resnet{depth}").replace(preact=preact)
    else:
        raise InvalidRequest(f"unknown family {family!r}; choose one of: {', '.join(FAMILIES)}")
    base = "cifar" if family == "cifar" else f"resnet{depth}"
    texts = []
    for spec in (residual.replace(shortcut=False), residual):
        fields = [f"layers={'-'.join(map(str, spec.layers))}"] if family == "cifar" else []
        fields += ["preact=true"] * preact + ["shortcut=false"] * (not spec.shortcut)
        texts.append(name_of(spec) or f"{base}[{','.join(fields)}]")
    return texts[0], texts[1]


DEFAULT_STEPS = DEGRADATION_STEPS


@dataclass(frozen=True)
class DegradationConfig:
    family: str = setting("cifar", "Which twins: CIFAR-style (depth 6n+2) or ImageNet-style.",
                          choices=FAMILIES)
    depths: tuple[int, ...] = DEFAULT_DEPTHS["cifar"]
    dataset: str = setting(DEFAULT_DATASET, "digits (embedded, offline), fashion-mnist or "
                           "cifar10 (downloaded once).", choices=DATASETS)
    seeds: tuple[int, ...] = setting(DEFAULT_SEEDS, "Comma-separated seeds; the verdict needs "
                                     "at least three.")
    train: TrainConfig = TrainConfig()
    data_dir: str | None = None
    models: tuple[str, ...] = ()  # explicit models instead of family/depth twins
    preact: bool = setting(False, "Pre-activation twins (He et al. 2016b): BN-ReLU before "
                           "each conv, a clean identity path.")
    # Skip the remaining seeds once the verdict cannot change (train.verdict.settled_early).
    stop_when_settled: bool = False
    tuning_seeds: tuple[int, ...] = TUNING_SEEDS  # the seeds the recipe was chosen on
    # The causal test of the early-layer freeze (resnet_probe.train.causal): per seed, the
    # deepest plain net and its residual twin trained again with ``intervention``.
    intervene: bool = setting(False, "Also train the deepest plain net and its residual twin "
                              "with each conv that feeds a BN projected back to its norm at "
                              "init after every step, for the first steps: the causal test "
                              "of the early-layer freeze.")
    intervention: Intervention = DEGRADATION_INTERVENTION

    def __post_init__(self) -> None:
        check_settings(self)
        if len(set(self.seeds)) != len(self.seeds):
            raise InvalidRequest(f"seeds must be distinct: seeds={self.seeds!r}")

    def model_names(self) -> list[str]:
        if self.models:
            return list(self.models)
        if not self.depths:
            raise InvalidRequest("give at least one depth: depths=()")
        if not self.seeds:
            raise InvalidRequest("give at least one seed: seeds=()")
        names: list[str] = []
        for depth in self.depths:
            names.extend(twin_names(self.family, depth, self.preact))
        return names


@dataclass
class DegradationResult:
    runs: list[RunResult] = field(default_factory=list)
    dataset_description: str = ""
    config: DegradationConfig | None = None
    num_classes: int = 10  # of the dataset, for the chance error the verdict compares with
    reused: list[str] = field(default_factory=list)  # "MODEL seed N" taken from the run cache
    cache_problems: list[str] = field(default_factory=list)  # damaged entries, recomputed
    stopped_early: StoppedEarly | None = None  # why the remaining seeds were skipped
    # (model, seed, dataset, cache_key) of every run the cache holds: the analyses find
    # a compare's trained weights through them.
    cached_runs: list[dict[str, Any]] = field(default_factory=list)
    intervened_runs: list[RunResult] = field(default_factory=list)  # the causal test's runs
    # "MODEL seed N: why" of each run whose task failed twice (an executor's); the others stand
    failed_runs: list[str] = field(default_factory=list)
    executor: str = ""  # where the runs trained, with how many threads

    @property
    def chance_error(self) -> float:
        return 1 - 1 / self.num_classes

    @property
    def budget(self) -> int | None:
        return self.config.train.steps if self.config is not None else None

    def final_rows(self) -> list[dict[str, Any]]:
        return [final_row(run, self.chance_error, self.budget) for run in self.runs]

    def verdict(self) -> DegradationVerdict:
        tuning = self.config.tuning_seeds if self.config is not None else ()
        return judge(self.final_rows(), self.chance_error, tuning)

    def causal_test(self) -> CausalTest | None:
        """The causal test on this run's normal and intervened runs (None: not run)."""
        if self.config is None or not self.config.intervene:
            return None
        return causal_test(self.runs, self.intervened_runs, intervention_for(self.config),
                           self.chance_error)

    def twin_verdict(self) -> TwinVerdict | None:
        """The twin verdict, when the runs are of one model and its plain twin."""
        tuning = self.config.tuning_seeds if self.config is not None else ()
        return judge_twins(self.final_rows(), self.chance_error, tuning)

    def tables(self) -> DegradationTables:
        return degradation_tables(self.runs, self.verdict(), self.cached_runs,
                                  self.stopped_early, self.causal_test(), self.budget,
                                  self.twin_verdict())


def intervention_for(config: DegradationConfig) -> Intervention:
    """The config's intervention, its K steps within the budget."""
    steps = min(config.intervention.steps, config.train.steps)
    return replace(config.intervention, steps=steps)


def final_row(run: RunResult, chance_error: float, budget: int | None = None
              ) -> dict[str, Any]:
    """A run's final numbers, and the verdict's endpoint over ``budget`` steps (default: the
    steps it recorded, which is the budget for every run that did not diverge)."""
    errors = [row["train_error"] for row in run.history]
    steps = budget or len(errors)
    return {"model": run.model, "depth": run.depth, "shortcut": run.shortcut,
            "seed": run.seed, "chance_error": chance_error, **final_metrics(run),
            "train_error_auc": error_auc(errors, steps, chance_error) if steps else math.nan,
            "diverged_at": run.diverged_at, "diverged_because": run.diverged_because,
            "processes": len(run.samples_per_rank),
            "samples_per_rank": ",".join(map(str, run.samples_per_rank))}


@dataclass(frozen=True)
class DegradationTables:
    """What a degradation run measured, as the report reads it: every table is declared, and
    the verdict is the typed object the rule returned (also saved as ``verdict.json``)."""

    history: pd.DataFrame = table("train_history")  # one row per model, seed and step
    evals: pd.DataFrame = table("train_evals")  # eval-mode errors
    final: pd.DataFrame = table("train_final")  # one row per model and seed
    estimates: pd.DataFrame = table("train_gaps")  # the verdict's comparisons, with intervals
    grad_norms: pd.DataFrame = table("train_grad_norms")
    runs: pd.DataFrame = table("train_runs")  # each run's cache key
    dynamics: pd.DataFrame = table("train_dynamics")  # per layer at the recorded steps
    joins: pd.DataFrame = table("train_joins")  # the whole-net ratio at the recorded steps
    dynamics_summary: pd.DataFrame = table("dynamics_summary")  # per model, over seeds
    verdict: DegradationVerdict = field(
        default_factory=lambda: judge([], 0.9))
    stopped_early: StoppedEarly | None = None
    causal: CausalTest | None = None  # the causal test, when it was run
    # one model against its plain twin (no second depth): the question the pair asks
    twin_verdict: TwinVerdict | None = None


def degradation_tables(runs: list[RunResult], verdict: DegradationVerdict,
                       cached_runs: list[dict[str, Any]] | None = None,
                       stopped_early: StoppedEarly | None = None,
                       causal: CausalTest | None = None, budget: int | None = None,
                       twin_verdict: TwinVerdict | None = None) -> DegradationTables:
    chance = verdict.chance_error
    estimates = [{"comparison": e.name, "seeds": e.seeds, "mean": e.estimate,
                  "ci95_low": e.low, "ci95_high": e.high, "in_words": e.text(),
                  "per_seed": ", ".join(f"{s}: {v:+.3f}" for s, v in e.per_seed.items())}
                 for e in verdict.estimates]
    if twin_verdict is not None:
        estimates += [{"comparison": e.name, "seeds": e.seeds, "mean": e.estimate,
                       "ci95_low": e.low, "ci95_high": e.high, "in_words": e.text(),
                       "per_seed": ", ".join(f"{s}: {v:+.3f}" for s, v in e.per_seed.items())}
                      for e in (twin_verdict.twin_gap, twin_verdict.final_twin_gap)
                      if e is not None]
    return DegradationTables(
        history=frame([row for run in runs for row in run.history]),
        evals=frame([row for run in runs for row in run.evals]),
        final=frame([final_row(run, chance, budget) for run in runs]),
        estimates=frame(estimates),
        grad_norms=frame([row for run in runs for row in run.grad_norms]),
        runs=frame(cached_runs or []),
        dynamics=(dynamics := frame([row for run in runs for row in run.dynamics])),
        joins=frame([row for run in runs for row in run.joins]),
        dynamics_summary=dynamics_summary(dynamics),
        verdict=verdict, stopped_early=stopped_early, causal=causal,
        twin_verdict=twin_verdict)


# --- an earlier run's folder, for compare --from-degradation ---------------------------------

FINAL_FIELDS = {"model": str, "seed": int, "final_train_error": (float, "nan"),
                "status": str, "chance_error": float}
MAX_TABLE_ROWS = 100_000  # runs in one degradation folder; more is not a file we wrote


def load_degradation_run(directory: Path) -> tuple[DegradationTables, list[RunResult]]:
    """A finished `degradation --out DIR` run, rebuilt from its checkpoints' records (loaded as
    data only): its ``data/train_final.json`` must agree with them, run by run, or the file
    and the differing value are named."""
    directory = Path(directory)
    table_path = directory / "data" / "train_final.json"
    if not table_path.exists() or not (directory / run_folder.RUNS).is_dir():
        raise ValueError(f"{str(directory)!r} does not hold a finished degradation run (no "
                         f"data/train_final.json or runs/); make one with a degradation run "
                         f"first")
    try:
        rows = read_json(table_path, "degradation table")
    except UntrustedFileError as error:
        raise UntrustedFileError(f"{error}: it is not a readable table; rerun the degradation "
                                 f"run into {str(directory)!r}") from None
    if not isinstance(rows, list) or len(rows) > MAX_TABLE_ROWS:
        raise UntrustedFileError(f"{str(table_path)!r} is not a readable table (expected a "
                                 f"JSON array of at most {MAX_TABLE_ROWS:,} row objects); "
                                 f"rerun the degradation run into {str(directory)!r}")
    for index, row in enumerate(rows):
        checked(row, FINAL_FIELDS, f"{str(table_path)!r} row {index + 1}",
                optional=("chance_error",))
    unfinished = [f"{row['model']} seed {row['seed']} ({row['status']})" for row in rows
                  if row["status"] not in ENDED]
    if unfinished:
        raise ValueError(f"{str(directory)!r} holds runs that did not finish: "
                         f"{', '.join(unfinished)}; resume it to the end first")
    runs: list[RunResult] = []
    for row in rows:
        checkpoint = run_folder.checkpoint_path(directory / run_folder.RUNS, row["model"],
                                                row["seed"])
        if not checkpoint.exists():
            raise ValueError(f"{str(table_path)!r} names {row['model']} seed {row['seed']}, "
                             f"but {str(checkpoint)!r} is missing, so the table cannot be "
                             f"checked; rerun the degradation run")
        run = load_checkpoint(checkpoint)["result"]
        if run.status not in ENDED:
            raise ValueError(f"{str(directory)!r} holds runs that did not finish: "
                             f"{run.model} seed {run.seed} ({run.status}); resume it to the "
                             f"end first")
        recorded = final_metrics(run)["final_train_error"]
        if not _same(recorded, row["final_train_error"]):
            raise ValueError(f"{str(table_path)!r} says {row['model']} seed {row['seed']} "
                             f"ended at training error {row['final_train_error']!r}, but its "
                             f"checkpoint {str(checkpoint)!r} records {recorded!r}: the table "
                             f"was edited or belongs to another run")
        runs.append(run)
    manifest_path = directory / run_folder.MANIFEST
    manifest = read_json(manifest_path, "run manifest") if manifest_path.exists() else {}
    config = manifest.get("config") if isinstance(manifest, dict) else None
    tuning = (config or {}).get("tuning_seeds") if isinstance(config, dict) else None
    if tuning is not None and (not isinstance(tuning, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in tuning)):
        raise UntrustedFileError(f"{str(manifest_path)!r}: config.tuning_seeds must be a list "
                                 f"of integers, found {tuning!r:.60}")
    tuning = tuple(tuning or TUNING_SEEDS)
    chance = float(rows[0].get("chance_error", 0.9)) if rows else 0.9
    recorded = (manifest.get("config") or {}).get("train")
    budget = recorded.get("steps") if isinstance(recorded, dict) else None
    budget = budget if isinstance(budget, int) and budget > 0 else None
    finals = [final_row(run, chance, budget) for run in runs]
    return degradation_tables(runs, judge(finals, chance, tuning), budget=budget,
                              twin_verdict=judge_twins(finals, chance, tuning)), runs


def _same(a: float, b: float) -> bool:
    return (a != a and b != b) or abs(a - b) <= 1e-9 * max(1.0, abs(a))
