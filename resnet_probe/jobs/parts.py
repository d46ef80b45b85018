"""What the jobs hand the report: frozen parts whose tables and facts are declared fields.

Each part is made by one job section and read by one report renderer; a renamed field fails
the type check (``mypy`` in CI), not an end-to-end test. Tables are declared with
``results.table(name)``, which also names their CSV/JSON files, and ``declared_tables`` walks
them for saving. A section that has not finished, failed, or was not asked for is an explicit
value (``InProgress``, ``Failed``, ``Skipped``), never a flag inside a dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from resnet_probe.analysis import WhyPart
from resnet_probe.environment import Environment
from resnet_probe.interrupts import Interruption
from resnet_probe.results import frame, table
from resnet_probe.train.degradation import DegradationTables
from resnet_probe.train.loop import TrainConfig
from resnet_probe.train.verdict import DegradationVerdict, TwinVerdict

__all__ = ["CacheReport", "CompareResult", "CostsPart", "Failed", "GradientsPart", "InProgress",
           "LatencyEnvironment", "LatencyPart", "Skipped", "SummaryPart", "TrainingPart",
           "WhyPart", "ZooPart", "BottleneckPart"]


@dataclass(frozen=True)
class InProgress:
    """A section still running when an early report is written."""

    note: str


@dataclass(frozen=True)
class Failed:
    """A section that raised: the report keeps the finished sections and names this one."""

    section: str
    error: str
    details: str = ""  # the traceback, shown under --debug


@dataclass(frozen=True)
class Skipped:
    """A section the user did not ask for (``--no-latency``, ``--no-train``)."""

    reason: str


@dataclass(frozen=True)
class BottleneckPart:
    """Why bottleneck blocks are cheaper: per-conv weights and MACs of the block designs."""

    rows: pd.DataFrame = table("bottleneck")
    totals: pd.DataFrame = table("bottleneck_totals")

    @classmethod
    def empty(cls) -> BottleneckPart:
        return cls(frame([]), frame([]))


@dataclass(frozen=True)
class CostsPart:
    summary: pd.DataFrame = table("costs_summary")  # one row per model, every convention
    layers: pd.DataFrame = table("layer_costs")
    stages: pd.DataFrame = table("stage_costs")
    operators: pd.DataFrame = table("operators")
    conventions: pd.DataFrame = table("conventions")
    memory: pd.DataFrame = table("memory")
    architecture: pd.DataFrame = table("architecture")
    bottleneck: BottleneckPart = field(default_factory=BottleneckPart.empty)


@dataclass(frozen=True)
class ZooPart:
    """The zoo census: every registered variant counted, and the block designs by width."""

    zoo: pd.DataFrame = table("zoo")
    widths: pd.DataFrame = table("bottleneck_widths")
    bottleneck: BottleneckPart = field(default_factory=BottleneckPart.empty)


@dataclass(frozen=True)
class LatencyEnvironment:
    device: str
    device_name: str
    threads: int
    torch_version: str
    dtype: str
    channels_last: bool
    engine: str
    peak_gflops: float
    peak_gbytes_per_s: float
    peak_source: str
    load_average_1min: float | None
    cpu_mhz: float | None
    cores: int | None
    warnings: tuple[str, ...] = ()
    trace_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class LatencyPart:
    models: pd.DataFrame = table("latency_models")  # medians with 95% intervals
    layers: pd.DataFrame = table("latency_layers")  # per leaf and direction, with its bound
    stages: pd.DataFrame = table("latency_stages")  # per stage, with intervals over repeats
    samples: pd.DataFrame = table("latency_samples")  # raw, one per pass
    rounds: pd.DataFrame = table("latency_rounds")  # the interleaved whole-model passes
    sweep: pd.DataFrame = table("latency_sweep")
    differences: pd.DataFrame = table("latency_differences")  # against the first model
    failures: pd.DataFrame = table("latency_failures")
    passes: pd.DataFrame = table("latency_passes")  # the profiler engine's per-pass numbers
    environment: LatencyEnvironment | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class GradientsPart:
    models: pd.DataFrame = table("gradient_models")  # with the trend label its rule gives
    blocks: pd.DataFrame = table("gradient_blocks")
    stages: pd.DataFrame = table("gradient_stages")
    layers: pd.DataFrame = table("gradient_layers")
    seeds: pd.DataFrame = table("gradient_seeds")  # the whole-net ratio per seed
    shattering: pd.DataFrame = table("shattering")
    differences: pd.DataFrame = table("gradient_differences")  # against the first model
    input_description: str = ""
    setting: str = ""  # what net was measured: the trained one, or the ImageNet head
    seed_list: tuple[int, ...] = ()
    # what the measurement had to do differently, and why: a surrogate loss for a model
    # that is not a classifier, shattering skipped for a model fed --input tensors
    notes: tuple[str, ...] = ()
    reused: bool = False  # taken from the cache of results
    seconds: float = 0.0


@dataclass(frozen=True)
class CacheReport:
    path: str
    reused: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    usage: str = ""


@dataclass(frozen=True)
class TrainingPart:
    degradation: DegradationTables
    why: WhyPart | InProgress | Skipped | None
    dataset: str
    recipe: TrainConfig | None  # None: runs reused from an earlier degradation run
    seeds: tuple[int, ...]
    cache: CacheReport | None = None
    source: str = ""  # where the runs come from, in words
    interrupted: bool = False
    seconds: float = 0.0
    executor: str = ""  # where the runs trained, with how many threads each
    failed_runs: tuple[str, ...] = ()  # "MODEL seed N: why": tasks that failed twice


@dataclass(frozen=True)
class SummaryPart:
    """The first screen: the verdict and the few numbers behind it, each with its interval,
    and the full delta table against the baseline."""

    headline: pd.DataFrame = table("summary")  # one row per model: the key numbers
    deltas: pd.DataFrame = table("deltas")  # every summary column, value and change
    differences: pd.DataFrame = table("differences")  # each measured change's interval
    verdict: DegradationVerdict | None = None  # when training ran
    twin_verdict: TwinVerdict | None = None  # when the runs are a model and its plain twin
    rule: str = ""  # the statistical standard every interval follows
    # The first screen's figure: the training curves across seeds (also saved, as
    # train_history, by the training part).
    history: pd.DataFrame = field(default_factory=lambda: frame([]))
    finals: pd.DataFrame = field(default_factory=lambda: frame([]))


@dataclass(frozen=True)
class SharedInputSize:
    """The models' families have different standard inputs; all are measured at ``size``."""

    standard_sizes: tuple[int, ...]
    size: int


@dataclass(frozen=True)
class ForeignModels:
    """Models not from the zoo: structure found from their graphs; every section (counts,
    latency, gradients, training) feeds them one image size, ``size``, the one training
    takes. ``fed`` are the models given their own ``--input`` tensors instead, used at their
    shapes in every section."""

    models: tuple[str, ...]
    size: int
    fed: tuple[str, ...] = ()


PlanNote = SharedInputSize | ForeignModels


@dataclass(frozen=True)
class CompareResult:
    """Everything ``compare`` measured, as the report and the console read it. The job
    returns it and never writes it; ``report.write(result, out)`` does."""

    models: tuple[str, ...]
    costs: CostsPart | Failed | Skipped
    latency: LatencyPart | Failed | Skipped
    gradients: GradientsPart | Failed | Skipped
    training: TrainingPart | InProgress | Failed | Skipped
    summary: SummaryPart
    plan_notes: tuple[PlanNote, ...] = ()
    environment: Environment | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # per section, wall time
    interruption: Interruption | None = None

    @property
    def interrupted(self) -> bool:
        return self.interruption is not None

    @property
    def failures(self) -> list[Failed]:
        return [part for part in (self.costs, self.latency, self.gradients, self.training)
                if isinstance(part, Failed)]
