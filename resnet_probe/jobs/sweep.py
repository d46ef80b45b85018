"""The degradation sweep: every (model, seed) of a ``DegradationConfig`` trained into
``OUT/runs/``, through the run cache and an executor (in this process, or as Ray tasks).

Both jobs train through here: ``degradation`` and the training part of ``compare``; so do the
analysis commands when they are given no RUN (``train_default``). Each run has its own
checkpoint; the caller's ``on_run_done`` rewrites the result tables after every run, so an
interrupted sweep keeps everything already measured and ``resume=True`` continues where it
stopped. Models arrive resolved (``sources``): names are resolved once, at the edge.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resnet_probe.analysis.trained import TrainedRuns, collect
from resnet_probe.data import ImageDataset, load_dataset
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import atomic_write_bytes
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train import run_folder
from resnet_probe.train.degradation import DegradationConfig, DegradationResult, intervention_for
from resnet_probe.train.executors import (
    IN_PROCESS,
    BatchCallbacks,
    Executor,
    PendingRun,
    Trainer,
)
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.loop import (
    ENDED,
    Distributed,
    NothingToResume,
    RunResult,
    load_checkpoint,
    train_run,
)
from resnet_probe.train.recipes import degradation_recipe
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.verdict import StoppedEarly, settled_early


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


@dataclass(frozen=True)
class _Sweep:
    """What every run of one sweep shares."""

    config: DegradationConfig
    data: ImageDataset
    runs_dir: Path
    resume: bool
    progress: Progress
    world: Distributed
    cache: RunCache | None
    result: DegradationResult
    done: Callable[[], None]  # after each run: the caller's on_run_done, on the main rank


def _train_all(config: DegradationConfig, sources: list[ModelSource], data: ImageDataset,
               out_dir: Path, resume: bool, progress: Progress,
               on_run_done: Callable[[DegradationResult], Any] | None, world: Distributed,
               cache: RunCache | None, executor: Executor = IN_PROCESS) -> DegradationResult:
    runs_dir = run_folder.runs_folder(out_dir)  # refused before anything is deleted or written
    wanted = run_folder.manifest(config, data.description)
    if resume:
        if not run_folder.has_checkpoints(out_dir):
            raise NothingToResume(f"nothing to resume in {str(out_dir)!r}: no checkpoints "
                                  f"under {str(runs_dir)!r}; start a fresh run first")
        run_folder.check_resume(out_dir, wanted)
    elif world.is_main:
        run_folder.discard_checkpoints(out_dir)  # another run's checkpoints must not be resumed
        run_folder.write_manifest(out_dir, wanted)
    result = DegradationResult(dataset_description=data.description, config=config,
                               num_classes=data.num_classes, executor=executor.describe())

    def done() -> None:
        if on_run_done is not None and world.is_main:
            on_run_done(result)

    sweep = _Sweep(config, data, runs_dir, resume, progress, world, cache, result, done)
    # Seed by seed, so an interruption or an early stop leaves whole seeds of every model.
    for position, seed in enumerate(config.seeds):
        batch = [PendingRun(source, seed, config.train,
                            run_folder.checkpoint_path(runs_dir, source.text, seed), resume)
                 for source in sources]
        if config.intervene:
            intervened = replace(config.train, intervention=intervention_for(config))
            batch += [PendingRun(source, seed, intervened, run_folder.checkpoint_path(
                runs_dir, source.text, seed, True), resume, True)
                for source in deepest_twins(sources)]
        try:
            executor.train_batch(batch, data, _callbacks(sweep), progress)
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


def _callbacks(sweep: _Sweep) -> BatchCallbacks:
    """What an executor does with a batch's runs: each recorded by ``_train_one``."""
    def record(run: PendingRun, trainer: Trainer) -> None:
        _train_one(sweep, run, trainer)

    def failed(run: PendingRun, reason: str) -> None:
        sweep.result.failed_runs.append(f"{run.label}: {reason}")
        sweep.done()

    def settled(run: PendingRun) -> bool:
        if run.resume and run.checkpoint.exists() and \
                load_checkpoint(run.checkpoint)["result"].status in ENDED:
            return True
        return sweep.cache is not None and sweep.cache.holds(sweep.cache.content(
            run.source, sweep.data, run.recipe, run.seed, sweep.world.world_size))

    return BatchCallbacks(record, failed, settled)


def _in_sweep_order(result: DegradationResult, seeds: tuple[int, ...],
                    sources: list[ModelSource]) -> None:
    order = {(seed, source.text): index for index, (seed, source) in
             enumerate((seed, source) for seed in seeds for source in sources)}
    for runs in (result.runs, result.intervened_runs):
        runs.sort(key=lambda run: order.get((run.seed, run.model), len(order)))


def _train_one(sweep: _Sweep, pending: PendingRun, trainer: Trainer = train_run) -> None:
    """One (model, seed): from the cache if it holds the run, else trained by ``trainer``
    (``train_run``, or an executor's hand-back of a run trained elsewhere) and cached."""
    source, seed, recipe, intervened = (pending.source, pending.seed, pending.recipe,
                                        pending.intervened)
    checkpoint = run_folder.checkpoint_path(sweep.runs_dir, source.text, seed, intervened)
    result, progress, cache = sweep.result, sweep.progress, sweep.cache
    runs = result.intervened_runs if intervened else result.runs

    def train() -> tuple[RunResult, Path]:
        progress.set_description(f"train {source.text} seed {seed}"
                                 + " (intervened)" * intervened)
        try:
            run = trainer(source, sweep.data, recipe, seed=seed, checkpoint=checkpoint,
                          resume=sweep.resume and checkpoint.exists(), progress=progress)
        except KeyboardInterrupt:
            if checkpoint.exists():  # the loop's last whole checkpoint: its partial history
                runs.append(load_checkpoint(checkpoint)["result"])
            sweep.done()
            raise
        return run, checkpoint

    if cache is None:
        runs.append(train()[0])
        sweep.done()
        return
    cached = cache.get_or_train(cache.content(source, sweep.data, recipe, seed,
                                              sweep.world.world_size), train)
    result.cache_problems = list(cache.problems)
    run, path = cached.value
    if cached.reused:
        if sweep.world.is_main:
            atomic_write_bytes(checkpoint, path.read_bytes())  # the analyses read it there
        result.reused.append(f"{source.text} seed {seed}" + " (intervened)" * intervened)
        progress.update(recipe.end_step)
    if run.status in ENDED and not intervened:
        result.cached_runs.append({"model": source.text, "seed": seed,
                                   "dataset": sweep.data.name, "cache_key": cached.key})
    runs.append(run)
    sweep.done()


def train_default(progress: Progress = NO_PROGRESS, cache: RunCache | None = None,
                  config: DegradationConfig | None = None) -> TrainedRuns:
    """The default degradation run's trained nets, for an analysis given no RUN: trained here,
    or reused from the run cache where it holds the runs."""
    config = config or DegradationConfig(train=degradation_recipe())
    dataset = fit_dataset_to(load_dataset(config.dataset, config.data_dir),
                             [resolve(name) for name in config.model_names()])
    with tempfile.TemporaryDirectory(prefix="resnet-probe-analysis-") as folder:
        run_degradation(config, Path(folder), progress=progress, dataset=dataset,
                        cache=cache or RunCache())
        return collect(sorted((Path(folder) / run_folder.RUNS).glob("*.pt")), dataset,
                       "the default degradation run (trained on demand, kept in the run "
                       "cache)")
