"""The degradation experiment: plain and residual twins at several depths, several seeds.

Each (model, seed) run has its own checkpoint under ``OUT/runs/``; result tables are rewritten
after every run, so an interrupted sweep keeps everything already measured and ``resume=True``
continues where it stopped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.data import DATASETS, DEFAULT_DATASET, ImageDataset, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import Progress
from resnet_probe.results import atomic_write_bytes, frame, load_table
from resnet_probe.settings import check_settings, setting
from resnet_probe.sources import resolve
from resnet_probe.train import run_folder
from resnet_probe.train.cache import RunCache
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
from resnet_probe.train.verdict import DegradationVerdict, depth_gaps, judge, settled_early
from resnet_probe.zoo import Family, get_spec, name_of
from resnet_probe.zoo.registry import IMAGENET_LAYERS

FAMILIES = tuple(family.value for family in Family)
DEFAULT_DEPTHS = {"cifar": (20, 56), "imagenet": (18, 34)}
# Three seeds: the verdict needs two, and a third keeps one odd seed from deciding it. The
# default held on seeds 3, 4 and 5, which nothing was tuned on (README).
DEFAULT_SEEDS = (0, 1, 2)


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


DEFAULT_STEPS = 300


def degradation_recipe(steps: int | None = None, epochs: float | None = None,
                       train_size: int | None = None, **fields: object) -> TrainConfig:
    """The degradation recipe for a budget in steps or epochs (default 300 steps); evaluation,
    gradient-norm logging and checkpoints scale with the budget. ``fields`` are TrainConfig's."""
    if steps is not None and epochs is not None:
        raise InvalidRequest(f"give a budget in steps or in epochs, not both: steps={steps}, "
                         f"epochs={epochs}")
    if epochs is not None:
        if train_size is None:
            raise ValueError("a budget in epochs needs the training set's size")
        batch_size = int(fields.get("batch_size", TrainConfig.batch_size))
        steps = max(1, round(epochs * train_size / batch_size))
    budget = DEFAULT_STEPS if steps is None else steps
    return TrainConfig(steps=budget, eval_every=max(1, budget // 10),
                       grad_norm_every=max(1, budget // 12),
                       checkpoint_every=max(1, budget // 10), **fields)


def fit_dataset_to(dataset: ImageDataset, models: list[str]) -> ImageDataset:
    """Upscale when a model's stride stack needs more pixels (ImageNet stems need 32), and
    give the images the channels a foreign model takes (zoo models adapt to the data)."""
    sources = [resolve(name) for name in models]
    needed = max(source.min_input_size for source in sources)
    dataset = dataset.resized(needed) if dataset.image_size < needed else dataset
    foreign = {source.in_channels for source in sources if not source.is_zoo}
    return dataset.with_channels(max(foreign)) if foreign else dataset


@dataclass(frozen=True)
class DegradationConfig:
    family: str = setting("cifar", "Which twins: CIFAR-style (depth 6n+2) or ImageNet-style.",
                          choices=FAMILIES)
    depths: tuple[int, ...] = DEFAULT_DEPTHS["cifar"]
    dataset: str = setting(DEFAULT_DATASET, "digits (embedded, offline), fashion-mnist or "
                           "cifar10 (downloaded once).", choices=DATASETS)
    seeds: tuple[int, ...] = setting(DEFAULT_SEEDS, "Comma-separated seeds; the verdict needs "
                                     "at least two.")
    train: TrainConfig = TrainConfig()
    data_dir: str | None = None
    models: tuple[str, ...] = ()  # explicit models instead of family/depth twins
    preact: bool = setting(False, "Pre-activation twins (He et al. 2016b): BN-ReLU before "
                           "each conv, a clean identity path.")
    # Skip the remaining seeds once the verdict cannot change (train.verdict.settled_early).
    stop_when_settled: bool = False

    def __post_init__(self) -> None:
        check_settings(self)

    def model_names(self) -> list[str]:
        if self.models:
            return list(self.models)
        if not self.depths:
            raise ValueError("give at least one depth: depths=()")
        if not self.seeds:
            raise ValueError("give at least one seed: seeds=()")
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
    stopped_early: str | None = None  # why the remaining seeds were skipped
    # (model, seed, dataset, cache_key) of every run the cache holds: the analyses find
    # a compare's trained weights through them.
    cached_runs: list[dict[str, Any]] = field(default_factory=list)

    def final_rows(self) -> list[dict[str, Any]]:
        rows = []
        for run in self.runs:
            depth, shortcut = resolve(run.model).traits()
            rows.append({"model": run.model, "depth": depth, "shortcut": shortcut,
                         "seed": run.seed, "chance_error": 1 - 1 / self.num_classes,
                         **final_metrics(run),
                         "diverged_at": run.diverged_at,
                         "diverged_because": run.diverged_because,
                         "processes": len(run.samples_per_rank),
                         "samples_per_rank": ",".join(map(str, run.samples_per_rank))})
        return rows

    def history_rows(self) -> list[dict[str, Any]]:
        return [row for run in self.runs for row in run.history]

    def eval_rows(self) -> list[dict[str, Any]]:
        return [row for run in self.runs for row in run.evals]

    def grad_rows(self) -> list[dict[str, Any]]:
        return [row for run in self.runs for row in run.grad_norms]

    def gap_rows(self) -> list[dict[str, Any]]:
        """Deep minus shallow final training error, for plain and residual, across seeds."""
        return [asdict(gap) for gap in depth_gaps(self.final_rows())]

    def verdict(self) -> DegradationVerdict:
        return judge(self.final_rows(), chance_error=1 - 1 / self.num_classes)


RUNS = "runs"  # OUT/runs/NAME-seedN.pt: one checkpoint per (model, seed)
TRAIN_RUNS = "train_runs"  # the table naming each run's cache entry


def discard_checkpoints(out_dir: Path) -> None:
    """Delete a run folder's checkpoints (weights and optimizer state), keeping its tables."""
    for checkpoint in (Path(out_dir) / RUNS).glob("*.pt"):
        checkpoint.unlink()


def run_degradation(
    config: DegradationConfig,
    out_dir: Path,
    resume: bool = False,
    progress: Progress | None = None,
    on_run_done: Callable[[DegradationResult], None] | None = None,
    dataset: ImageDataset | None = None,
    cache: RunCache | None = None,
) -> DegradationResult:
    """Train every (model, seed). ``on_run_done`` is called after each run (to save tables).
    With a ``cache``, a run finished before with the same content is reused, and every newly
    finished run is stored there."""
    names = config.model_names()
    data = dataset or load_dataset(config.dataset, config.data_dir)
    data = fit_dataset_to(data, names)
    world = Distributed.from_env()
    with (run_folder.locked(out_dir) if world.is_main else contextlib.nullcontext()):
        return _train_all(config, names, data, Path(out_dir), resume, progress, on_run_done,
                          world, cache)


def _train_all(config, names, data, out_dir: Path, resume, progress, on_run_done, world,
               cache: RunCache | None) -> DegradationResult:
    runs_dir = out_dir / RUNS
    wanted = run_folder.manifest(config, data.description)
    if resume:
        if not any(runs_dir.glob("*.pt")):
            raise NothingToResume(f"nothing to resume in {str(out_dir)!r}: no checkpoints "
                                  f"under {str(runs_dir)!r}; start a fresh run first")
        run_folder.check_resume(out_dir, wanted)
    elif world.is_main:
        discard_checkpoints(out_dir)  # another run's checkpoints must not be resumed
        run_folder.write_manifest(out_dir, wanted)
    result = DegradationResult(dataset_description=data.description, config=config,
                               num_classes=data.num_classes)
    # Seed by seed, so an interruption or an early stop leaves whole seeds of every model.
    for position, seed in enumerate(config.seeds):
        for name in names:
            _train_one(name, seed, config, data, runs_dir, resume, progress, on_run_done,
                       world, cache, result)
        remaining = len(config.seeds) - position - 1
        if config.stop_when_settled and remaining and world.world_size == 1:
            reason = settled_early(result.final_rows(), 1 - 1 / result.num_classes)
            if reason is not None:
                result.stopped_early = (f"stopped after seed {seed}, skipping {remaining} more: "
                                        f"{reason}")
                if progress is not None:
                    progress.update(remaining * len(names) * config.train.steps)
                break
    return result


def _train_one(name, seed, config, data, runs_dir, resume, progress, on_run_done, world,
               cache, result: DegradationResult) -> None:
    """One (model, seed): from the cache if it holds the run, else trained (and cached)."""
    checkpoint = runs_dir / f"{_safe(name)}-seed{seed}.pt"
    key = content = None
    if cache is not None:
        key, content = cache.key(name, data, config.train, seed, world.world_size)
        cached = cache.lookup(key)
        result.cache_problems = list(cache.problems)
        if cached is not None:
            result.cached_runs.append(_cache_row(name, seed, data, key))
            if world.is_main:
                atomic_write_bytes(checkpoint, cached.read_bytes())  # keep its weights
            result.runs.append(load_run(cached))
            result.reused.append(f"{name} seed {seed}")
            if progress is not None:
                progress.update(config.train.steps)
            if on_run_done is not None and world.is_main:
                on_run_done(result)
            return
    if progress is not None:
        progress.set_description(f"train {name} seed {seed}")
    try:
        run = train_run(name, data, config.train, seed=seed, checkpoint=checkpoint,
                        resume=resume and checkpoint.exists(), progress=progress)
    except KeyboardInterrupt:
        if checkpoint.exists():  # the loop saved its partial history there
            result.runs.append(load_run(checkpoint))
        if on_run_done is not None and world.is_main:
            on_run_done(result)
        raise
    result.runs.append(run)
    if cache is not None and world.is_main and run.status in ENDED:
        cache.store(key, content, checkpoint)
        result.cached_runs.append(_cache_row(name, seed, data, key))
    if on_run_done is not None and world.is_main:
        on_run_done(result)


def _cache_row(name: str, seed: int, data: ImageDataset, key: str) -> dict[str, Any]:
    return {"model": name, "seed": seed, "dataset": data.name, "cache_key": key}


def cache_record(result: DegradationResult, cache: RunCache) -> dict[str, Any]:
    """What the report says about the run cache: where, what was reused, what was damaged."""
    return {"path": str(cache.path), "reused": list(result.reused),
            "problems": list(result.cache_problems), "usage": str(cache.usage())}


def load_run(checkpoint: Path) -> RunResult:
    return load_checkpoint(checkpoint)["result"]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def verdict_table(verdict: DegradationVerdict, stopped_early: str | None = None
                  ) -> pd.DataFrame:
    """One row: the verdict, its reasons, and the plain and residual gaps it rests on."""
    reasons = verdict.reasons + ([stopped_early] if stopped_early else [])
    row: dict[str, Any] = {"verdict": verdict.verdict.value,
                           "reasons": json.dumps(reasons), "rule": verdict.rule}
    for gap in verdict.gaps:
        row.update({f"{gap.kind}_gap_mean": gap.gap_mean, f"{gap.kind}_gap_se": gap.gap_se,
                    f"{gap.kind}_seeds": gap.seeds})
    return frame([row])


def degradation_tables(result: DegradationResult) -> dict[str, pd.DataFrame]:
    return {
        "train_verdict": verdict_table(result.verdict(), result.stopped_early),
        "train_history": frame(result.history_rows()),
        "train_evals": frame(result.eval_rows()),
        "train_final": frame(result.final_rows()),
        "train_gaps": frame(result.gap_rows()),
        "train_grad_norms": frame(result.grad_rows()),
        TRAIN_RUNS: frame(result.cached_runs),
    }


DEGRADATION_TABLES = ("train_history", "train_evals", "train_final", "train_gaps",
                      "train_grad_norms")


DEGRADATION_COLUMNS = {"train_history": ("model", "seed", "step", "train_error"),
                       "train_final": ("model", "depth", "seed", "shortcut",
                                       "final_train_error", "status")}


def load_degradation_tables(directory: Path) -> dict[str, pd.DataFrame]:
    """A finished `degradation --out DIR` run's tables; any problem names the file."""
    data = Path(directory) / "data"
    missing = [name for name in DEGRADATION_TABLES if not (data / f"{name}.json").exists()]
    if missing:
        raise ValueError(f"{str(data)!r} does not hold a finished degradation run "
                         f"(missing {', '.join(missing)}); make one with a degradation run "
                         f"first")
    tables = {}
    for name in DEGRADATION_TABLES:
        path = data / f"{name}.json"
        try:
            tables[name] = load_table(path)
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(f"{str(path)!r} is not a readable table ({error}); rerun "
                             f"the degradation run into {str(directory)!r}") from None
        needed = [c for c in DEGRADATION_COLUMNS.get(name, ()) if c not in tables[name]]
        if needed:
            raise ValueError(f"{str(path)!r} lacks the columns {', '.join(needed)}: it is not "
                             f"a resnet-probe degradation table")
    unfinished = tables["train_final"].query("status != 'finished'")
    if not unfinished.empty:
        runs = ", ".join(f"{r.model} seed {r.seed} ({r.status})" for r in unfinished.itertuples())
        raise ValueError(f"{str(directory)!r} holds runs that did not finish: {runs}; "
                         f"resume it to the end first")
    finals = tables["train_final"]
    chance = float(finals["chance_error"].iloc[0]) if "chance_error" in finals else 0.9
    tables["train_verdict"] = verdict_table(judge(finals.to_dict("records"), chance))
    return tables
