"""The degradation experiment as `resnet-probe degradation` runs it: data, recipe, run folder,
and the report rewritten after every finished run (so an interruption loses nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from resnet_probe.analysis import Analysis, AnalysisOptions, WhyPart, cached_why_part
from resnet_probe.analysis.trained import collect
from resnet_probe.data import ImageDataset, load_dataset
from resnet_probe.environment import current_environment
from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.parts import CacheReport, InProgress, TrainingPart
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import check_writable_dir
from resnet_probe.sources import resolve
from resnet_probe.train.degradation import (
    DEFAULT_DEPTHS,
    DEFAULT_SEEDS,
    DegradationConfig,
    DegradationResult,
    intervention_for,
)
from resnet_probe.train.executors import IN_PROCESS, Executor
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.loop import Distributed, check_batch_fits_dataset, setup_distributed
from resnet_probe.train.recipes import degradation_recipe
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.run_folder import RUNS

__all__ = ["DEFAULT_DEPTHS", "DEFAULT_SEEDS", "DegradationExperiment"]

WHY_AFTER_TRAINING = ("The analyses of the trained nets run when every run has finished; this "
                      "page is rewritten then.")


@dataclass(frozen=True)
class DegradationExperiment:
    config: DegradationConfig
    dataset: ImageDataset  # already fitted to the models' strides
    out: Path
    environment: dict[str, Any]
    title: str
    world: Distributed
    cache: RunCache
    inline_plotly: bool = False
    why: AnalysisOptions | None = AnalysisOptions()  # analyses of the trained nets
    executor: Executor = IN_PROCESS  # where the runs train (train.executors)

    @classmethod
    def prepare(cls, family: str = "cifar", depths: tuple[int, ...] | None = None,
                preact: bool = False, dataset: str = "digits", data_dir: Path | None = None,
                seeds: tuple[int, ...] = DEFAULT_SEEDS, out: Path = Path("reports/degradation"),
                command_line: str | None = None, inline_plotly: bool = False,
                steps: int | None = None, epochs: float | None = None, fresh: bool = False,
                why: bool = True, intervene: bool = False,
                executor: Executor = IN_PROCESS, **recipe: Any) -> DegradationExperiment:
        """Validate everything before any training; ``recipe`` takes TrainConfig's fields."""
        depths = depths or DEFAULT_DEPTHS[family]
        config = DegradationConfig(family=family, depths=depths, dataset=dataset, seeds=seeds,
                                   data_dir=str(data_dir) if data_dir else None, preact=preact,
                                   intervene=intervene)
        names = config.model_names()  # validates depths and seeds before data is loaded
        out = check_writable_dir(out)
        world = setup_distributed(str(recipe.get("device", "cpu")))
        if world.world_size > 1 and executor is not IN_PROCESS:
            raise InvalidRequest(f"the Ray executor sends whole runs elsewhere, while under "
                                 f"torchrun every process trains one run together (DDP): "
                                 f"world_size={world.world_size}; use one or the other")
        data = fit_dataset_to(load_dataset(dataset, data_dir), [resolve(n) for n in names])
        train = degradation_recipe(steps, epochs, len(data.train_y), **recipe)
        check_batch_fits_dataset(train.batch_size, data)
        config = replace(config, train=train)
        environment = {"dataset": data.description, "recipe": asdict(train),
                       "world_size": world.world_size, "seeds": list(seeds),
                       "tuning_seeds": list(config.tuning_seeds),
                       "executor": executor.describe(),
                       **dict(current_environment(command_line).rows())}
        title = (f"resnet-probe degradation: {family}{', pre-activation' if preact else ''}, "
                 f"depths {', '.join(map(str, depths))}")
        return cls(config, data, out, environment, title, world, RunCache(fresh=fresh),
                   inline_plotly, AnalysisOptions() if why else None, executor)

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def total_steps(self) -> int:
        runs = len(self.config.model_names()) * len(self.config.seeds)
        why = self.why.work(tuple(Analysis), runs) if self.why is not None else 0
        intervened = 2 * len(self.config.seeds) * intervention_for(self.config).steps \
            if self.config.intervene else 0
        return runs * self.config.train.steps + intervened + why

    @property
    def report_path(self) -> Path:
        return self.out / "degradation.html"

    def run(self, resume: bool = False, progress: Progress = NO_PROGRESS,
            on_snapshot: Callable[[TrainingPart], Any] | None = None) -> TrainingPart:
        """Train, then analyse the trained nets. ``on_snapshot`` gets the part as it stands
        after every finished run (training in progress: no Why part yet) and the final part
        (the caller writes the report; only the main process of a distributed run calls it)."""
        started = time.perf_counter()
        snapshot = on_snapshot if on_snapshot is not None and self.is_main else None

        def after_run(result: DegradationResult) -> None:
            if snapshot is not None:
                why = InProgress(WHY_AFTER_TRAINING) if self.why is not None else None
                snapshot(self.part(result, why))

        result = run_degradation(self.config, self.out, resume=resume, progress=progress,
                                 on_run_done=after_run, dataset=self.dataset,
                                 cache=self.cache, executor=self.executor)
        why = None
        if self.why is not None and self.is_main:
            nets = collect(sorted((self.out / RUNS).glob("*.pt")), self.dataset,
                           f"degradation run {self.out}")
            why = cached_why_part(nets, result.cached_runs, tuple(Analysis), self.why,
                                 progress, fresh=self.cache.fresh)
        part = self.part(result, why, round(time.perf_counter() - started, 1))
        if snapshot is not None:
            snapshot(part)
        return part

    def part(self, result: DegradationResult, why: WhyPart | InProgress | None,
             seconds: float = 0.0) -> TrainingPart:
        return TrainingPart(
            degradation=result.tables(), why=why, dataset=self.dataset.description,
            recipe=self.config.train, seeds=tuple(self.config.seeds),
            cache=CacheReport(str(self.cache.path), tuple(result.reused),
                              tuple(result.cache_problems), str(self.cache.usage())),
            source=f"trained into {self.out}", seconds=seconds, executor=result.executor,
            failed_runs=tuple(result.failed_runs))
