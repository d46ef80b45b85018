"""The degradation experiment as `resnet-probe degradation` runs it: data, recipe, run folder,
and the report rewritten after every finished run (so an interruption loses nothing)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from resnet_probe.data import load_dataset
from resnet_probe.environment import environment_info
from resnet_probe.progress import Progress
from resnet_probe.report import write_degradation_report
from resnet_probe.results import check_writable_dir
from resnet_probe.train.cache import RunCache
from resnet_probe.train.degradation import (
    DEFAULT_DEPTHS,
    DEFAULT_SEEDS,
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

    @classmethod
    def prepare(cls, family: str = "cifar", depths: tuple[int, ...] | None = None,
                preact: bool = False, dataset: str = "digits", data_dir: Path | None = None,
                seeds: tuple[int, ...] = DEFAULT_SEEDS, out: Path = Path("reports/degradation"),
                command_line: str | None = None, inline_plotly: bool = False,
                steps: int | None = None, epochs: float | None = None, fresh: bool = False,
                **recipe: Any) -> DegradationExperiment:
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
                   inline_plotly)

    @property
    def is_main(self) -> bool:
        return self.world.is_main

    @property
    def total_steps(self) -> int:
        return len(self.config.model_names()) * len(self.config.seeds) * self.config.train.steps

    @property
    def report_path(self) -> Path:
        return self.out / "degradation.html"

    def run(self, resume: bool = False, progress: Progress | None = None
            ) -> DegradationResult:
        return run_degradation(self.config, self.out, resume=resume, progress=progress,
                               on_run_done=self.write_report, dataset=self.dataset,
                               cache=self.cache)

    def write_report(self, result: DegradationResult) -> Path:
        environment = {**self.environment, "cache": cache_record(result, self.cache)}
        return write_degradation_report(degradation_tables(result), environment, self.out,
                                        self.title, self.inline_plotly)
