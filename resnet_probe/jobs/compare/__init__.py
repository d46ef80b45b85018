"""`compare`: every measurement for a list of models, the first being the baseline.

One orchestrator. ``run_compare(plan)`` runs the sections in order (costs, latency, gradients,
training), each returning a typed part (``jobs.parts``). It writes the report once before
training starts, with training marked in progress, and again at the end. When a section fails,
the others still run and the report names the failure in its place; when Ctrl-C or SIGTERM
stops the run, every finished section (and training's finished runs) is kept. The CLI and the
API build the ``Plan`` and call this.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resnet_probe.environment import environment_info
from resnet_probe.errors import Terminated
from resnet_probe.jobs.compare.costs import costs_part
from resnet_probe.jobs.compare.gradients import gradients_part
from resnet_probe.jobs.compare.latency import latency_part
from resnet_probe.jobs.compare.plan import (
    COMPARE_LATENCY,
    COMPARE_SEEDS,
    COMPARE_TRAIN,
    COMPARE_TUNING_SEEDS,
    WHY_ANALYSES,
    CompareOptions,
    Plan,
)
from resnet_probe.jobs.compare.summary import summary_part
from resnet_probe.jobs.compare.training import Interrupted, training_part
from resnet_probe.jobs.parts import (
    CompareResult,
    Failed,
    GradientsPart,
    InProgress,
    LatencyPart,
    Skipped,
    TrainingPart,
)
from resnet_probe.progress import NO_PROGRESS, Progress

__all__ = ["COMPARE_LATENCY", "COMPARE_SEEDS", "COMPARE_TRAIN", "COMPARE_TUNING_SEEDS",
           "CompareOptions", "Plan", "ReportTarget", "progress_total", "run_compare"]

TRAINING_IN_PROGRESS = ("Training in progress: this page is rewritten with the training "
                        "section when it finishes.")
NOT_REACHED = "not reached: the run was interrupted before this section"


@dataclass(frozen=True)
class ReportTarget:
    out: Path
    inline_plotly: bool = False


SECTIONS = (("costs", costs_part), ("latency", latency_part), ("gradients", gradients_part),
            ("training", training_part))


def run_compare(plan: Plan, progress: Progress = NO_PROGRESS,
                report: ReportTarget | None = None, command_line: str | None = None,
                on_early_report: Callable[[Path], Any] | None = None) -> CompareResult:
    """Every section on ``plan``; with ``report``, the page is written before training (then
    ``on_early_report(path)``) and at the end, and ``result.report_path`` is set."""
    parts: dict[str, Any] = {name: Skipped(NOT_REACHED) for name, _ in SECTIONS}
    interruption: KeyboardInterrupt | None = None
    seconds: dict[str, float] = {}
    for name, section in SECTIONS:
        if name == "training" and plan.options.trains and report is not None:
            early = _assembled(plan, {**parts, "training": InProgress(TRAINING_IN_PROGRESS)},
                               seconds, command_line, None)
            path = _write(early, report)
            if on_early_report is not None:
                on_early_report(path)
        started = time.perf_counter()
        try:
            parts[name] = section(plan, progress)
        except Interrupted as stopped:
            parts[name], interruption = stopped.part, stopped.interruption
        except KeyboardInterrupt as error:
            interruption = error
        except Exception as error:  # noqa: BLE001 - the finished sections are kept
            parts[name] = Failed(name, _first_line(error), traceback.format_exc())
        seconds[name] = round(time.perf_counter() - started, 1)
        if interruption is not None:
            break
    result = _assembled(plan, parts, seconds, command_line, interruption)
    if report is not None:
        result.report_path = _write(result, report)
    return result


def _assembled(plan: Plan, parts: dict[str, Any], seconds: dict[str, float],
               command_line: str | None, interruption: KeyboardInterrupt | None
               ) -> CompareResult:
    result = CompareResult(models=plan.models, costs=parts["costs"], latency=parts["latency"],
                           gradients=parts["gradients"], training=parts["training"],
                           notes=list(plan.notes), interruption=interruption)
    result.summary = summary_part(plan.models, result.costs, result.latency, result.gradients,
                                  result.training)
    result.notes += _part_notes(result)
    if interruption is not None:
        result.notes.append(interruption_note(interruption, parts))
    result.environment = {**environment_info(command_line), **_part_facts(result, seconds)}
    return result


def _write(result: CompareResult, report: ReportTarget) -> Path:
    from resnet_probe.report import write_compare_report

    return write_compare_report(result, report.out, report.inline_plotly)


def _first_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def interruption_note(error: KeyboardInterrupt, parts: dict[str, Any]) -> str:
    signal_name = "SIGTERM" if isinstance(error, Terminated) else "Ctrl-C"
    kept = [name for name, part in parts.items()
            if name != "costs" and not isinstance(part, (Skipped, InProgress, Failed))]
    training = " (training: the runs recorded so far)" if "training" in kept else ""
    return (f"Interrupted ({signal_name}): this report holds the costs and "
            f"{', '.join(kept) if kept else 'no measured section'}{training}.")


def _part_notes(result: CompareResult) -> list[str]:
    notes = [f"The {failed.section} section failed ({failed.error}); the other sections are "
             f"complete." for failed in result.failures]
    if isinstance(result.training, TrainingPart):
        notes += list(result.training.cache.problems if result.training.cache else ())
        stopped = result.training.degradation.stopped_early
        if stopped:
            notes.append(f"Training {stopped}.")
    return notes


def _part_facts(result: CompareResult, seconds: dict[str, float]) -> dict[str, Any]:
    """Each part's facts for the environment table, prefixed by its section."""
    facts: dict[str, Any] = {f"{name}_seconds": value for name, value in seconds.items()}
    if isinstance(result.latency, LatencyPart) and result.latency.environment is not None:
        env = result.latency.environment
        facts.update({f"latency_{key}": value for key, value in env.__dict__.items()})
    if isinstance(result.gradients, GradientsPart):
        facts.update(gradients_input=result.gradients.input_description,
                     gradients_setting=result.gradients.setting,
                     gradients_seeds=list(result.gradients.seed_list),
                     gradients_reused=result.gradients.reused)
    if isinstance(result.training, TrainingPart):
        training = result.training
        facts.update(training_dataset=training.dataset, training_recipe=training.recipe,
                     training_seeds=list(training.seeds), training_source=training.source)
        if training.cache is not None:
            facts.update(training_cache=training.cache.path,
                         training_cache_usage=training.cache.usage,
                         training_reused=list(training.cache.reused))
        if training.why is not None and hasattr(training.why, "seconds"):
            facts["training_why_seconds"] = training.why.seconds
    return facts


def progress_total(plan: Plan) -> int:
    """Progress units run_compare reports: counting, latency per model and batch size,
    gradients per model and seed, training per step and the analyses."""
    options = plan.options
    total = 1
    if options.latency is not None:
        total += options.latency.work(len(plan.sources))
    if options.gradients is not None:
        total += options.gradients.work(len(plan.sources))
    if options.trains and options.train is not None:
        nets = len(plan.trained) * len(options.train_seeds)
        total += nets * options.train.steps
        if options.why is not None:
            analysed = nets // 2 if options.why.deep_pair_only and plan.siblings else nets
            total += options.why.work(WHY_ANALYSES, analysed)
    return total
