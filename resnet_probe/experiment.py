"""The degradation experiment as `resnet-probe degradation` runs it: data, recipe, run folder,
and the report rewritten after every finished run (so an interruption loses nothing)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from resnet_probe.analysis import Analysis, AnalysisOptions, explain_cached
from resnet_probe.analysis.trained import collect
from resnet_probe.data import load_dataset
from resnet_probe.environment import environment_info
from resnet_probe.progress import Progress
from resnet_probe.report import write_degradation_report
from resnet_probe.results import check_writable_dir
from resnet_probe.train.cache import ResultCache, RunCache
from resnet_probe.train.degradation import (
    DEFAULT_DEPTHS,
    DEFAULT_SEEDS,
    RUNS,
    DegradationConfig,
    DegradationResult,
    cache_record,
    degradation_recipe,
    degradation_tables,
    fit_dataset_to,
    run_degradation,
)
from resnet_probe.train.loop import Distributed, setup_distributed


@dataclass(frozen=True)
class DegradationExperiment:
    config: DegradationConfig
    dataset: Any  # ImageDataset, already fitted to the models' strides
    out: Path
    environment: dict[str, Any]
    title: str
    world: Distributed
    cache: RunCache
    inline_plotly: bool = False
    why: AnalysisOptions | None = AnalysisOptions()  # analyses of the trained nets

    @classmethod
    def prepare(cls, family: str = "cifar", depths: tuple[int, ...] | None = None,
                preact: bool = False, dataset: str = "digits", data_dir: Path | None = None,
                seeds: tuple[int, ...] = DEFAULT_SEEDS, out: Path = Path("reports/degradation"),
                command_line: str | None = None, inline_plotly: bool = False,
                steps: int | None = None, epochs: float | None = None, fresh: bool = False,
                why: bool = True, **recipe: Any) -> DegradationExperiment:
        """Validate everything before any training; ``recipe`` takes TrainConfig's fields."""
        depths = depths or DEFAULT_DEPTHS[family]
        config = DegradationConfig(family=family, depths=depths, dataset=dataset, seeds=seeds,
                                   data_dir=str(data_dir) if data_dir else None, preact=preact)
        names = config.model_names()  # validates depths and seeds before data is loaded
        out = check_writable_dir(out)
        world = setup_distributed(str(recipe.get("device", "cpu")))
        data = fit_dataset_to(load_dataset(dataset, data_dir), names)
        train = degradation_recipe(steps, epochs, len(data.train_y), **recipe)
        config = replace(config, train=train)
        environment = {"dataset": data.description, "recipe": asdict(train),
                       "world_size": world.world_size, "seeds": list(seeds),
                       **environment_info(command_line)}
        title = (f"resnet-probe degradation: {family}{', pre-activation' if preact else ''}, "
                 f"depths {', '.join(map(str, depths))}")
        return cls(config, data, out, environment, title, world, RunCache(fresh=fresh),
                   inline_plotly, AnalysisOptions() if why else None)

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def total_steps(self) -> int:
        runs = len(self.config.model_names()) * len(self.config.seeds)
        why = self.why.work(tuple(Analysis), runs) if self.why is not None else 0
        return runs * self.config.train.steps + why

    @property
    def report_path(self) -> Path:
        return self.out / "degradation.html"

    def run(self, resume: bool = False, progress: Progress | None = None
            ) -> DegradationResult:
        """Train (the report is rewritten after every run), then analyse the trained nets
        and write the report with its Why section."""
        result = run_degradation(self.config, self.out, resume=resume, progress=progress,
                                 on_run_done=self.write_report, dataset=self.dataset,
                                 cache=self.cache)
        if self.why is not None and self.is_main:
            nets = collect(sorted((self.out / RUNS).glob("*.pt")), self.dataset,
                           f"degradation run {self.out}")
            why_tables, why_environment = explain_cached(
                nets, result.cached_runs, tuple(Analysis), self.why, progress,
                ResultCache(fresh=self.cache.fresh))
            self.write_report(result, why_tables, why_environment)
        return result

    def write_report(self, result: DegradationResult, why_tables: dict | None = None,
                     why_environment: dict | None = None) -> Path:
        environment = {**self.environment, "cache": cache_record(result, self.cache),
                       **(why_environment or {})}
        if self.why is not None and why_tables is None:
            environment["why_skipped"] = ("The analyses of the trained nets run when every "
                                          "run has finished; this page is rewritten then.")
        return write_degradation_report({**degradation_tables(result), **(why_tables or {})},
                                        environment, self.out, self.title, self.inline_plotly)
