"""``compare``, the whole job from Python, and what it returns: the job's frozen
``CompareResult``, which here also shows itself (``repr()``, a notebook's HTML, ``.figure()``).

The job (``resnet_probe.jobs.compare``) never knows a report exists (STYLE.md), so the
display is added at this edge, by a subclass that is still a ``CompareResult``: the report
writer and every reader of the job's parts take it as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_probe.analysis import AnalysisOptions
from resnet_probe.jobs.compare.plan import (
    COMPARE_GRADIENTS,
    COMPARE_LATENCY,
    COMPARE_WHY,
    CompareOptions,
)
from resnet_probe.jobs.parts import CompareResult
from resnet_probe.measure.gradients import GradientConfig
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.train.executors import IN_PROCESS, Executor
from resnet_probe.train.loop import TrainConfig
from resnet_probe.train.recipes import COMPARE_SEEDS, COMPARE_TRAIN, COMPARE_TUNING_SEEDS

if TYPE_CHECKING:
    from resnet_probe.probes import Model
    from resnet_probe.report.notebook import Figure

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True, repr=False)
class Comparison(CompareResult):
    """A ``CompareResult`` that shows itself: ``repr()`` and a notebook's HTML give the
    training verdict and the summary table; ``.figure()`` the report's first figure."""

    @classmethod
    def of(cls, result: CompareResult) -> Comparison:
        return cls(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})

    def figure(self) -> Figure:
        """The training curves where training ran, else every counting convention."""
        from resnet_probe.report.notebook import compare_figure

        return compare_figure(self)

    def __repr__(self) -> str:
        from resnet_probe.report.notebook import compare_shown

        return compare_shown(self).text()

    def _repr_html_(self) -> str:
        from resnet_probe.report.notebook import compare_shown

        return compare_shown(self).html()


def compare(models: Sequence[Model], out: str | Path | None = "reports",
            inline_plotly: bool = False, *, options: CompareOptions | None = None,
            progress: Progress = NO_PROGRESS, command_line: str | None = None,
            in_channels: int | None = None, inputs: Any = None,
            input_size: int | None = None,
            latency: LatencyConfig | None = COMPARE_LATENCY,
            gradients: GradientConfig | None = COMPARE_GRADIENTS,
            train: TrainConfig | None = COMPARE_TRAIN,
            train_seeds: tuple[int, ...] = COMPARE_SEEDS,
            tuning_seeds: tuple[int, ...] = COMPARE_TUNING_SEEDS,
            degradation_dir: str | Path | None = None, bottleneck_width: int = 64,
            bottleneck_size: int = 56, fresh: bool = False,
            why: AnalysisOptions | None = COMPARE_WHY, trust_sources: bool = False,
            executor: Executor = IN_PROCESS) -> Comparison:
    """Run every measurement on ``models`` (the first is the baseline; names, sources or
    nn.Modules) and return the frozen result (a ``CompareResult``, shown in a notebook as its
    verdict and summary). With ``out``, the HTML report is written there before training
    starts and again at the end (``report.compare_report_path(out, result.models)``).

    ``inputs`` (a tensor, a tuple or a dict, as ``flops`` takes them) feed every model, in
    every section, for a forward that takes more than one image.

    The keywords after ``inputs`` are ``CompareOptions``' fields, with its defaults:
    ``latency``, ``gradients``, ``train`` and ``why`` take their configs, or None to skip the
    section; ``degradation_dir`` reuses a previous ``degradation`` run instead of training;
    ``trust_sources`` lets an earlier run's records name a ``FILE.py:factory`` from inside
    its folder; ``executor`` is where the training runs execute (``train.executors``: in this
    process, or as Ray tasks).
    ``options``, a whole ``CompareOptions``, is the starting point when given: each keyword
    that differs from its default replaces that field."""
    from resnet_probe import report
    from resnet_probe.jobs.compare import Plan, run_compare
    from resnet_probe.sources import InputSpec

    given: dict[str, Any] = dict(
        input_size=input_size, latency=latency, gradients=gradients, train=train,
        train_seeds=train_seeds, tuning_seeds=tuning_seeds,
        degradation_dir=Path(degradation_dir) if degradation_dir is not None else None,
        bottleneck_width=bottleneck_width, bottleneck_size=bottleneck_size, fresh=fresh,
        why=why, trust_sources=trust_sources, executor=executor)
    defaults = CompareOptions()
    changed = {name: value for name, value in given.items()
               if value != getattr(defaults, name)}
    chosen = dataclasses.replace(options or defaults, **changed)
    spec = InputSpec.of(inputs) if inputs is not None else None
    plan = Plan.build(list(models), chosen, in_channels, spec)
    folder = Path(out) if out is not None else None
    write = (lambda snapshot: report.write(snapshot, folder, inline_plotly)) \
        if folder is not None else None
    return Comparison.of(run_compare(plan, progress, write, command_line))
