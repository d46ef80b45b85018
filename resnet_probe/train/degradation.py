"""The degradation experiment: plain and residual twins at several depths, several seeds.

Each (model, seed) run has its own checkpoint under ``OUT/runs/``; the caller's ``on_run_done``
rewrites the result tables after every run, so an interrupted sweep keeps everything already
measured and ``resume=True`` continues where it stopped. Models arrive resolved (``sources``):
names are resolved once, at the edge.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.contained import contained, remove_inside
from resnet_probe.data import DATASETS, DEFAULT_DATASET, ImageDataset, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import atomic_write_bytes, frame, table
from resnet_probe.settings import check_settings, setting
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train import run_folder
from resnet_probe.train.causal import CausalTest, causal_test
from resnet_probe.train.dynamics import dynamics_summary
from resnet_probe.train.executors import (
    IN_PROCESS,
    BatchCallbacks,
    Executor,
    PendingRun,
    Trainer,
)
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.interventions import Intervention
from resnet_probe.train.loop import (
    ENDED,
    Distributed,
    NothingToResume,
    RunResult,
    TrainConfig,
    final_metrics,
    load_checkpoint,
    train_run,
)
from resnet_probe.train.recipes import (
    DEGRADATION_INTERVENTION,
    DEGRADATION_SEEDS,
    DEGRADATION_STEPS,
    DEGRADATION_TUNING_SEEDS,
)
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.verdict import (
    DegradationVerdict,
    StoppedEarly,
    TwinVerdict,
    error_auc,
    judge,
    judge_twins,
    settled_early,
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


RUNS = "runs"  # OUT/runs/NAME-seedN.pt: one checkpoint per (model, seed)
TRAIN_RUNS = "train_runs"  # the table naming each run's cache entry


def runs_folder(out_dir: Path) -> Path:
    """``OUT/runs``, once ``contained`` confirms it (and ``runs/rescaled``) lie inside OUT
    through no symlink: checkpoints are deleted and written there."""
    contained(out_dir, Path(out_dir) / RUNS / "rescaled", "the checkpoint folder")
    return Path(out_dir) / RUNS


def has_checkpoints(out_dir: Path) -> bool:
    """Whether a run folder holds a checkpoint, the one thing a resume continues from."""
    return any((Path(out_dir) / RUNS).glob("*.pt"))


def discard_checkpoints(out_dir: Path) -> None:
    """Delete a run folder's checkpoints (weights and optimizer state), keeping its tables;
    only inside OUT (a checkpoint that is a symlink is unlinked, never followed)."""
    runs = runs_folder(out_dir)
    for folder in (runs, runs / "rescaled"):
        for checkpoint in folder.glob("*.pt"):
            remove_inside(out_dir, checkpoint)


def run_degradation(
    config: DegradationConfig,
    out_dir: Path,
    resume: bool = False,
    progress: Progress = NO_PROGRESS,
    on_run_done: Callable[[DegradationResult], Any] | None = None,
    dataset: ImageDataset | None = None,
    cache: RunCache | None = None,
    sources: Mapping[str, ModelSource] | None = None,
    executor: Executor = IN_PROCESS,
) -> DegradationResult:
    """Train every (model, seed). ``on_run_done`` is called after each run (to save tables).
    With a ``cache``, a run finished before with the same content is reused, and every newly
    finished run is stored there. ``sources`` are the models already resolved, by label
    (default: each of the config's names resolved here). ``executor`` says where each seed's
    runs train (``train.executors``: in this process, or as Ray tasks)."""
    names = config.model_names()
    resolved = dict(sources or {})
    for name in names:
        resolved.setdefault(name, resolve(name))
    data = fit_dataset_to(dataset or load_dataset(config.dataset, config.data_dir),
                          [resolved[name] for name in names])
    world = Distributed.from_env()
    with (run_folder.locked(out_dir) if world.is_main else contextlib.nullcontext()):
        return _train_all(config, [resolved[name] for name in names], data, Path(out_dir),
                          resume, progress, on_run_done, world, cache, executor)


def _train_all(config, sources, data, out_dir: Path, resume, progress, on_run_done, world,
               cache: RunCache | None, executor: Executor = IN_PROCESS) -> DegradationResult:
    runs_dir = runs_folder(out_dir)  # refused before anything is deleted or written
    wanted = run_folder.manifest(config, data.description)
    if resume:
        if not has_checkpoints(out_dir):
            raise NothingToResume(f"nothing to resume in {str(out_dir)!r}: no checkpoints "
                                  f"under {str(runs_dir)!r}; start a fresh run first")
        run_folder.check_resume(out_dir, wanted)
    elif world.is_main:
        discard_checkpoints(out_dir)  # another run's checkpoints must not be resumed
        run_folder.write_manifest(out_dir, wanted)
    result = DegradationResult(dataset_description=data.description, config=config,
                               num_classes=data.num_classes, executor=executor.describe())
    done = (lambda: on_run_done(result)) if on_run_done is not None and world.is_main \
        else (lambda: None)
    # Seed by seed, so an interruption or an early stop leaves whole seeds of every model.
    for position, seed in enumerate(config.seeds):
        batch = [PendingRun(source, seed, config.train, _checkpoint(runs_dir, source, seed),
                            resume) for source in sources]
        if config.intervene:
            intervened = replace(config.train, intervention=intervention_for(config))
            batch += [PendingRun(source, seed, intervened,
                                 _checkpoint(runs_dir, source, seed, True), resume, True)
                      for source in deepest_twins(sources)]
        try:
            executor.train_batch(batch, data, _callbacks(
                config, data, runs_dir, resume, progress, done, world, cache, result), progress)
        finally:  # runs recorded as they finished: back in the order of an in-process sweep
            _in_sweep_order(result, config.seeds, sources)
        remaining = len(config.seeds) - position - 1
        if config.stop_when_settled and remaining and world.world_size == 1:
            reason = settled_early(result.final_rows(), result.chance_error)
            if reason is not None:
                result.stopped_early = StoppedEarly(seed, remaining, reason)
                progress.update(remaining * len(sources) * config.train.steps)
                break
    return result


def deepest_twins(sources: list[ModelSource]) -> list[ModelSource]:
    """The causal test's two: the deepest plain net and, as its control, the residual net of
    its depth (else the deepest residual net)."""
    nets = [(depth, shortcut, s) for s in sources for depth, shortcut in [s.traits()] if depth]
    plain = [(depth, s) for depth, shortcut, s in nets if not shortcut]
    residual = [(depth, s) for depth, shortcut, s in nets if shortcut]
    chosen = []
    if plain:
        deepest = max(plain, key=lambda pair: pair[0])
        chosen.append(deepest[1])
        twin = [s for depth, s in residual if depth == deepest[0]]
        if twin:
            return [*chosen, twin[0]]
    if residual:
        chosen.append(max(residual, key=lambda pair: pair[0])[1])
    return chosen


def _checkpoint(runs_dir: Path, source: ModelSource, seed: int, intervened: bool = False
                ) -> Path:
    suffix = "-intervened" if intervened else ""
    return (runs_dir / "intervened" if intervened else runs_dir) / \
        f"{_safe(source.text)}-seed{seed}{suffix}.pt"


def _callbacks(config, data, runs_dir, resume, progress, done, world, cache,
               result: DegradationResult) -> BatchCallbacks:
    """What an executor does with a batch's runs: each recorded by ``_train_one``."""
    def record(run: PendingRun, trainer: Trainer) -> None:
        _train_one(run.source, run.seed, replace(config, train=run.recipe), data, runs_dir,
                   resume, progress, done, world, cache, result, run.intervened, trainer)

    def failed(run: PendingRun, reason: str) -> None:
        result.failed_runs.append(f"{run.label}: {reason}")
        done()

    def settled(run: PendingRun) -> bool:
        if run.resume and run.checkpoint.exists() and \
                load_checkpoint(run.checkpoint)["result"].status in ENDED:
            return True
        return cache is not None and cache.holds(
            cache.content(run.source, data, run.recipe, run.seed, world.world_size))

    return BatchCallbacks(record, failed, settled)


def _in_sweep_order(result: DegradationResult, seeds, sources) -> None:
    order = {(seed, source.text): index for index, (seed, source) in
             enumerate((seed, source) for seed in seeds for source in sources)}
    for runs in (result.runs, result.intervened_runs):
        runs.sort(key=lambda run: order.get((run.seed, run.model), len(order)))


def _train_one(source: ModelSource, seed, config, data, runs_dir, resume, progress, done,
               world, cache, result: DegradationResult, intervened: bool = False,
               trainer: Trainer = train_run) -> None:
    """One (model, seed): from the cache if it holds the run, else trained by ``trainer``
    (``train_run``, or an executor's hand-back of a run trained elsewhere) and cached."""
    checkpoint = _checkpoint(runs_dir, source, seed, intervened)
    runs = result.intervened_runs if intervened else result.runs

    def train() -> tuple[RunResult, Path]:
        progress.set_description(f"train {source.text} seed {seed}"
                                 + " (intervened)" * intervened)
        try:
            run = trainer(source, data, config.train, seed=seed, checkpoint=checkpoint,
                          resume=resume and checkpoint.exists(), progress=progress)
        except KeyboardInterrupt:
            if checkpoint.exists():  # the loop's last whole checkpoint: its partial history
                runs.append(load_checkpoint(checkpoint)["result"])
            done()
            raise
        return run, checkpoint

    if cache is None:
        runs.append(train()[0])
        done()
        return
    cached = cache.get_or_train(cache.content(source, data, config.train, seed,
                                              world.world_size), train)
    result.cache_problems = list(cache.problems)
    run, path = cached.value
    if cached.reused:
        if world.is_main:
            atomic_write_bytes(checkpoint, path.read_bytes())  # the analyses read it there
        result.reused.append(f"{source.text} seed {seed}" + " (intervened)" * intervened)
        progress.update(config.train.end_step)
    if run.status in ENDED and not intervened:
        result.cached_runs.append({"model": source.text, "seed": seed, "dataset": data.name,
                                   "cache_key": cached.key})
    runs.append(run)
    done()


def cache_record(result: DegradationResult, cache: RunCache) -> dict[str, Any]:
    """What the report says about the run cache: where, what was reused, what was damaged."""
    return {"path": str(cache.path), "reused": list(result.reused),
            "problems": list(result.cache_problems), "usage": str(cache.usage())}


def _safe(name: str) -> str:
    """A model's label as a file name; a long one (a factory's full path) keeps its start and
    a digest of the whole, so it stays distinct and within the file system's 255 bytes."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    if len(safe.encode()) <= SAFE_NAME_BYTES:
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return safe.encode()[:SAFE_NAME_BYTES - 17].decode(errors="ignore") + "-" + digest


SAFE_NAME_BYTES = 160  # leaves room for "-seedN-rescaled.pt" and a temporary file's affixes


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
    if not table_path.exists() or not (directory / RUNS).is_dir():
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
        checkpoint = directory / RUNS / f"{_safe(row['model'])}-seed{row['seed']}.pt"
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
