"""`compare`: every measurement for a list of models, the first being the baseline.

One orchestrator. ``run_compare(plan)`` runs the sections in order (costs, latency, gradients,
training), each returning a typed part (``jobs.parts``), and returns a frozen
``CompareResult``. It hands a snapshot to ``on_snapshot`` before training starts (training
marked in progress) and the final result at the end; the caller writes pages from them (the
job never writes). When a section fails, the others still run and the result names the failure
in its place; when Ctrl-C or SIGTERM stops the run, every finished section (and training's
finished runs) is kept, the final snapshot is still handed over whole, and the interruption is
recorded in the result, which is returned.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from resnet_probe.environment import current_environment
from resnet_probe.interrupts import Interruption, deferred_interrupts
from resnet_probe.jobs.compare.costs import costs_part
from resnet_probe.jobs.compare.gradients import gradients_part
from resnet_probe.jobs.compare.latency import latency_part
from resnet_probe.jobs.compare.plan import (
    COMPARE_LATENCY,
    WHY_ANALYSES,
    CompareOptions,
    Plan,
)
from resnet_probe.jobs.compare.summary import summary_part
from resnet_probe.jobs.compare.training import Interrupted, training_part
from resnet_probe.jobs.parts import (
    CompareResult,
    CostsPart,
    Failed,
    GradientsPart,
    InProgress,
    LatencyPart,
    Skipped,
    TrainingPart,
)
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.train.recipes import (
    COMPARE_INTERVENTION,
    COMPARE_SEEDS,
    COMPARE_TRAIN,
    COMPARE_TUNING_SEEDS,
)

__all__ = ["COMPARE_LATENCY", "COMPARE_SEEDS", "COMPARE_TRAIN", "COMPARE_TUNING_SEEDS",
           "CompareOptions", "Plan", "progress_total", "run_compare"]

TRAINING_IN_PROGRESS = ("Training in progress: this page is rewritten with the training "
                        "section when it finishes.")
NOT_REACHED = "not reached: the run was interrupted before this section"

P = TypeVar("P")


@dataclass
class _Sections:
    """The parts so far: a section not reached yet says so."""

    costs: CostsPart | Failed | Skipped = Skipped(NOT_REACHED)
    latency: LatencyPart | Failed | Skipped = Skipped(NOT_REACHED)
    gradients: GradientsPart | Failed | Skipped = Skipped(NOT_REACHED)
    training: TrainingPart | InProgress | Failed | Skipped = Skipped(NOT_REACHED)
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, section: Callable[[Plan, Progress], P], plan: Plan,
            progress: Progress) -> P | Failed:
        """The section's part, or Failed naming its error (the other sections still run)."""
        started = time.perf_counter()
        try:
            return section(plan, progress)
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as error:  # noqa: BLE001 - the finished sections are kept
            return Failed(name, _first_line(error), traceback.format_exc())
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 1)


def run_compare(plan: Plan, progress: Progress = NO_PROGRESS,
                on_snapshot: Callable[[CompareResult], object] | None = None,
                command_line: str | None = None) -> CompareResult:
    """Every section on ``plan``. ``on_snapshot`` receives the result so far before training
    starts, and the final result; the final hand-over finishes before a Ctrl-C or SIGTERM
    that arrives during it takes effect, so a page written from it never stays "in
    progress"."""
    done = _Sections()
    interruption: Interruption | None = None
    try:
        done.costs = done.run("costs", costs_part, plan, progress)
        done.latency = done.run("latency", latency_part, plan, progress)
        done.gradients = done.run("gradients", gradients_part, plan, progress)
        if plan.options.trains and on_snapshot is not None:
            early = replace(done, training=InProgress(TRAINING_IN_PROGRESS))
            on_snapshot(_assembled(plan, early, command_line, None))
        done.training = done.run("training", training_part, plan, progress)
    except Interrupted as stopped:  # training kept the runs it had recorded
        done.training, interruption = stopped.part, Interruption.of(stopped.interruption)
    except KeyboardInterrupt as error:  # between sections, or in one that keeps nothing
        interruption = Interruption.of(error)
    with deferred_interrupts() as deferred:
        result = _assembled(plan, done, command_line, interruption)
        if on_snapshot is not None:
            on_snapshot(result)
        if deferred.pending is not None and result.interruption is None:
            # a signal during the hand-over: the work is done and handed over; say so
            result = replace(result, interruption=deferred.pending)
            deferred.pending = None
    return result


def _assembled(plan: Plan, done: _Sections, command_line: str | None,
               interruption: Interruption | None) -> CompareResult:
    return CompareResult(
        models=tuple(plan.models), costs=done.costs, latency=done.latency,
        gradients=done.gradients, training=done.training,
        summary=summary_part(plan.models, done.costs, done.latency, done.gradients,
                             done.training),
        plan_notes=plan.notes, environment=current_environment(command_line),
        seconds=dict(done.seconds), interruption=interruption)


def _first_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def progress_total(plan: Plan) -> int:
    """Progress units run_compare reports: counting, latency per model and batch size,
    gradients per model and seed, training per step and the analyses."""
    options = plan.options
    total = 1
    if options.latency is not None:
        total += options.latency.work(len(plan.sources))
    if options.gradients is not None:
        total += options.gradients.work(len(plan.sources))
    fed = any(source.inputs is not None for source in plan.sources)  # not trained: no images
    if options.trains and options.train is not None and not fed:
        nets = len(plan.trained) * len(options.train_seeds)
        total += nets * options.train.steps
        # the causal test: the deepest plain net and its residual twin for K steps per seed
        total += 2 * len(options.train_seeds) * min(COMPARE_INTERVENTION.steps,
                                                    options.train.steps)
        if options.why is not None:
            analysed = nets // 2 if options.why.deep_pair_only and plan.siblings else nets
            total += options.why.work(WHY_ANALYSES, analysed)
    return total

