"""`compare`: every measurement for a list of models, the first being the baseline.

A comparison is a list of sections (costs, latency, gradients, training). Each is a function
of the plan that returns a ``SectionResult`` and changes nothing it is handed; ``run_compare``
runs them in order, keeps every finished one when interrupted, and merges their tables and
summary columns. ``report.write_compare_report`` renders the result.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.analysis import Analysis, AnalysisOptions, explain, explain_cached
from resnet_probe.analysis.trained import collect, load_trained
from resnet_probe.data import load_dataset
from resnet_probe.device import training_device
from resnet_probe.environment import environment_info
from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.architecture import architecture_rows
from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import count_costs, stage_costs
from resnet_probe.measure.dynamics import DynamicsConfig, DynamicsResult, measure_dynamics
from resnet_probe.measure.gradients import GradientConfig, GradientResult, measure_gradients
from resnet_probe.measure.latency import LatencyConfig, measure_latency
from resnet_probe.progress import Progress
from resnet_probe.results import CONVENTIONS, SUMMARY_COLUMNS, delta_table, frame
from resnet_probe.sources import resolve
from resnet_probe.stats import difference_row, paired_mean_difference
from resnet_probe.train.cache import ResultCache, RunCache
from resnet_probe.train.degradation import (
    RUNS,
    DegradationConfig,
    DegradationResult,
    cache_record,
    degradation_tables,
    fit_dataset_to,
    load_degradation_tables,
    run_degradation,
)
from resnet_probe.train.loop import TrainConfig
from resnet_probe.zoo import name_of

# Short runs for the compare report; `degradation` has the full recipe. Measured on digits at
# 32x32 (2-core CPU), batch 64: at lr 0.02 plain34 leaves chance behind on every seed tried
# (final training error 0.475-0.547 for seeds 0-3 at 120 steps; 0.49-0.57 at 150), while at
# lr 0.05-0.2 it sat at 0.82-0.87, and at batch 16-32 at 0.56-0.83. plain18 and both residual
# nets reach 0.004-0.015. Two seeds, the fewest the verdict takes, fit the 300 s main job.
COMPARE_TRAIN = TrainConfig(steps=120, batch_size=64, lr=0.02, warmup_steps=10,
                            milestones=(0.75,), eval_every=120, grad_norm_every=40,
                            checkpoint_every=50)
# Lighter than the commands' defaults, to keep the main job fast with eight trained nets:
# lesions and responses on the first 150 test images, three lesion draws per k, an 11-point
# slice on 256 training images.
COMPARE_WHY = AnalysisOptions(limit=150, lesion_samples=3, landscape_points=11,
                              landscape_limit=256)
COMPARE_SEEDS = (0, 1)  # seed 1 runs only while the verdict is still open
COMPARE_LATENCY = LatencyConfig(repeats=10, warmup=3, sweep_batch_sizes=(1, 8))
COMPARE_GRADIENTS = GradientConfig(batch_size=16, seeds=(0, 1), shatter_points=256,
                                   shatter_projections=1)


@dataclass(frozen=True)
class CompareOptions:
    input_size: int | None = None  # None: the family's standard, shared when families mix
    latency: LatencyConfig | None = COMPARE_LATENCY  # None skips the section
    gradients: GradientConfig | None = COMPARE_GRADIENTS
    train: TrainConfig | None = COMPARE_TRAIN  # None skips training
    train_seeds: tuple[int, ...] = COMPARE_SEEDS
    # With the gradients section; the blow-up and the freeze show by step 20.
    dynamics: DynamicsConfig | None = DynamicsConfig(steps=(0, 1, 2, 5, 10, 20))
    degradation_dir: Path | None = None  # reuse a previous `degradation` run instead
    bottleneck_width: int = 64
    bottleneck_size: int = 56
    fresh: bool = False  # retrain and measure again where the caches hold a result
    why: AnalysisOptions | None = COMPARE_WHY  # analyses of the trained nets; None skips

    @classmethod
    def choose(cls, input_size: int | None = None, device: str = "auto", latency: bool = True,
               train: bool = True, train_steps: int | None = None,
               train_seeds: tuple[int, ...] = COMPARE_SEEDS,
               degradation_dir: Path | None = None, fresh: bool = False, why: bool = True
               ) -> CompareOptions:
        """The defaults with a user's choices applied (what the CLI's flags say)."""
        return cls(
            input_size=input_size,
            latency=replace(COMPARE_LATENCY, device=device) if latency else None,
            train=replace(COMPARE_TRAIN, device=training_device(device),
                          steps=train_steps or COMPARE_TRAIN.steps) if train else None,
            train_seeds=tuple(train_seeds), degradation_dir=degradation_dir, fresh=fresh,
            why=COMPARE_WHY if why else None)

    @property
    def trains(self) -> bool:
        return self.train is not None and self.degradation_dir is None

    def progress_total(self, models: list[str]) -> int:
        """Progress units run_compare reports: counting, latency per model and batch size,
        gradients per model and seed, training per step."""
        total = 1
        if self.latency is not None:
            total += self.latency.work(len(models))
        if self.gradients is not None:
            total += self.gradients.work(len(models))
            if self.dynamics is not None:
                total += self.dynamics.work(len(models))
        if self.trains:
            nets = (len(models) + len(siblings(models))) * len(self.train_seeds)
            total += nets * self.train.steps
            if self.why is not None:
                total += self.why.work(WHY_ANALYSES, nets)
        return total


@dataclass(frozen=True)
class SectionResult:
    """What one section measured: its tables, its part of the environment (unprefixed), the
    columns it adds to the summary, and notes. ``interruption`` is set when Ctrl-C or SIGTERM
    stopped the section after it kept a partial result (training keeps its finished runs)."""

    name: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    summary: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()
    interruption: KeyboardInterrupt | None = None
    # Intervals of the summary's measured differences against the baseline (model, metric,
    # delta_pct, ci95_low_pct, ci95_high_pct, measurable, change, method).
    differences: pd.DataFrame | None = None


@dataclass
class CompareResult:
    models: list[str]
    sections: dict[str, SectionResult] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # every section's, merged
    notes: list[str] = field(default_factory=list)
    run_environment: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None
    interruption: KeyboardInterrupt | None = None  # the sections finished before it are kept

    @property
    def interrupted(self) -> bool:
        return self.interruption is not None

    def section_environment(self, name: str) -> dict[str, Any]:
        section = self.sections.get(name)
        return section.environment if section is not None else {}

    @property
    def environment(self) -> dict[str, Any]:
        """Everything, flat, for the environment table: the run's, then each section's."""
        flat = dict(self.run_environment)
        for name, section in self.sections.items():
            flat.update({f"{name}_{key}": value for key, value in section.environment.items()})
        return flat


def validate_models(models: list[str], input_size: int | None) -> tuple[int | None, list[str]]:
    """Check the model list; returns the shared input size (if one is needed) and notes."""
    if len(models) < 2:
        raise InvalidRequest(f"compare needs at least two models (the first is the baseline): "
                         f"got {list(models)}; e.g. `resnet-probe compare resnet34 plain34`")
    seen = set()
    for name in models:
        if name in seen:
            raise InvalidRequest(f"model {name!r} is named twice; compare distinct models")
        seen.add(name)
    sources = [resolve(name) for name in models]
    notes = []
    defaults = {source.default_input_size for source in sources}
    if input_size is None and len(defaults) > 1:
        input_size = max(defaults)
        notes.append(f"The models come from different families (standard inputs "
                     f"{', '.join(f'{s}x{s}' for s in sorted(defaults))}); every model is "
                     f"measured at the shared size {input_size}x{input_size}. Pass --input-size "
                     f"to choose another.")
    if input_size is not None:
        for source in sources:
            if source.is_zoo:
                source.spec.check_input_size(input_size)
    foreign = [source.text for source in sources if not source.is_zoo]
    if foreign:
        notes.append(f"Foreign models ({', '.join(foreign)}): their blocks and stages were "
                     f"found from their graphs; they train on the digits at "
                     f"{max(32, input_size or 0)}x{max(32, input_size or 0)}, 3 channels, "
                     f"with no shallower sibling, so the degradation verdict has one depth "
                     f"to go on.")
    return input_size, notes


def siblings(models: list[str]) -> list[str]:
    """Shallower references for the training section: each model's design at the family's
    shallowest standard layout (resnet20/plain20, resnet18/plain18 for the original design;
    e.g. preact_resnet110[layers=3-3-3] for a pre-activation net)."""
    extra = []
    for name in models:
        source = resolve(name)
        if not source.is_zoo:
            continue  # no layout to shorten
        spec = source.spec
        layers = (3, 3, 3) if spec.family == "cifar" else (2, 2, 2, 2)
        if sum(layers) >= sum(spec.layers) or len(layers) != len(spec.layers):
            continue
        reference = name_of(spec.replace(layers=layers))
        if reference is None:
            reference = f"{name}[layers={'-'.join(map(str, layers))}]"
        if reference not in models + extra:
            extra.append(reference)
    return extra


@dataclass(frozen=True)
class _Plan:
    """What every section needs to know; built once by run_compare."""

    models: list[str]
    options: CompareOptions
    input_size: int | None
    out_dir: Path
    progress: Progress | None
    reused_training: dict[str, pd.DataFrame] | None
    cache: RunCache


def run_compare(models: list[str], options: CompareOptions = CompareOptions(),
                progress: Progress | None = None, out_dir: Path | None = None,
                command_line: str | None = None,
                before_training: Callable[[CompareResult], None] | None = None
                ) -> CompareResult:
    """Run the sections in order; on Ctrl-C or SIGTERM keep every finished one.

    ``before_training`` receives the result so far, its training section marked in progress,
    when the fast sections are done and training is about to start (to show a report early).
    """
    input_size, notes = validate_models(list(models), options.input_size)
    reused = (load_degradation_tables(options.degradation_dir)  # validated before measuring
              if options.degradation_dir is not None else None)
    plan = _Plan(list(models), options, input_size, Path(out_dir or "reports"), progress,
                 reused, RunCache(fresh=options.fresh))
    result = CompareResult(models=list(models), notes=notes)
    try:
        for section in SECTIONS:
            if section is training_section and options.trains and before_training:
                before_training(_assembled(replace(result, sections={
                    **result.sections, "training": SectionResult(
                        "training", environment={"in_progress": True},
                        notes=(TRAINING_IN_PROGRESS,))}), command_line))
            started = time.perf_counter()
            part = section(plan)
            if part is None:
                continue
            result.sections[part.name] = replace(part, environment={
                **part.environment, "seconds": round(time.perf_counter() - started, 1)})
            if part.interruption is not None:
                raise part.interruption
    except KeyboardInterrupt as error:
        result.interruption = error
        result.notes.append(interruption_note(error, list(result.sections)))
    return _assembled(result, command_line)


TRAINING_IN_PROGRESS = ("Training in progress: this page is rewritten with the training "
                        "section when it finishes.")


def _assembled(result: CompareResult, command_line: str | None) -> CompareResult:
    """The result with its sections' notes, the run's environment and the merged tables."""
    result.notes = result.notes + [note for part in result.sections.values()
                                   for note in part.notes]
    result.run_environment = environment_info(command_line)
    result.tables = _merged_tables(result)
    return result


def interruption_note(error: KeyboardInterrupt, finished: list[str]) -> str:
    measured = [name for name in finished if name != "costs"]
    signal_name = "SIGTERM" if type(error).__name__ == "Terminated" else "Ctrl-C"
    kept = ", ".join(measured) if measured else "no measured section"
    training = " (training: the runs recorded so far)" if "training" in measured else ""
    return f"Interrupted ({signal_name}): this report holds the costs and {kept}{training}."


def _merged_tables(result: CompareResult) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {}
    summary = None
    for part in result.sections.values():
        tables.update(part.tables)
        if part.summary is not None:
            summary = part.summary if summary is None else summary.merge(
                part.summary, on="model", how="left")
    differences = [part.differences for part in result.sections.values()
                   if part.differences is not None and not part.differences.empty]
    tables["differences"] = pd.concat(differences, ignore_index=True) if differences else frame([])
    tables["summary"] = summary
    tables["deltas"] = delta_table(summary, SUMMARY_COLUMNS, uncertainty=tables["differences"])
    tables["environment"] = frame([{"key": k, "value": str(v)}
                                   for k, v in result.environment.items()])
    return tables


def costs_section(plan: _Plan) -> SectionResult:
    if plan.progress is not None:
        plan.progress.set_description("counting params and MACs")
    costs = [count_costs(name, input_size=plan.input_size) for name in plan.models]
    rows = block_cost_rows(plan.options.bottleneck_width, plan.options.bottleneck_size)
    tables = {
        "layer_costs": frame([row for c in costs for row in c.modules]),
        "stage_costs": frame([row for c in costs for row in stage_costs(c)]),
        "operators": frame([row for c in costs for row in c.operators]),
        "conventions": frame([row for c in costs for row in convention_rows(c.summary)]),
        "architecture": frame([row for name in plan.models
                               for row in architecture_rows(name, plan.input_size)]),
        "bottleneck": frame(rows),
        "bottleneck_totals": frame(block_cost_totals(rows)),
    }
    if plan.progress is not None:
        plan.progress.update(1)
    return SectionResult("costs", tables, summary=frame([c.summary for c in costs]))


def _at_shared_size(config, plan: _Plan):
    """A measurement's config at the comparison's shared input size, if one was chosen."""
    return config if plan.input_size is None else replace(config, input_size=plan.input_size)


def latency_section(plan: _Plan) -> SectionResult | None:
    if plan.options.latency is None:
        return None
    latency = measure_latency(plan.models, _at_shared_size(plan.options.latency, plan),
                              plan.progress)
    tables = {"latency_models": frame(latency.models), "latency_layers": frame(latency.layers),
              "latency_samples": frame(latency.samples), "latency_sweep": frame(latency.sweep)}
    if latency.failures:
        tables["latency_failures"] = frame(latency.failures)
    environment = {k: v for k, v in latency.environment.items() if k != "config"}
    environment["warnings"] = list(latency.warnings)
    tables["latency_rounds"] = frame(latency.rounds)
    summary = tables["latency_models"][["model", "forward_ms", "backward_ms", "images_per_s"]]
    return SectionResult("latency", tables, environment, summary,
                         differences=frame(latency.comparisons))


def gradients_section(plan: _Plan) -> SectionResult | None:
    if plan.options.gradients is None:
        return None
    config = _at_shared_size(plan.options.gradients, plan)
    gradients, dynamics, reused = _measured_at_init(plan, config)
    tables = {"gradient_models": frame(gradients.models),
              "gradient_blocks": frame(gradients.blocks),
              "gradient_stages": frame(gradients.stages),
              "gradient_layers": frame(gradients.layers),
              "shattering": frame(gradients.shattering)}
    environment = {"input": gradients.input_description, "seeds": list(config.seeds),
                   "reused": reused}
    if dynamics is not None:
        tables["dynamics_models"] = frame(dynamics.models)
        tables["dynamics_layers"] = frame(dynamics.layers)
        environment["dynamics"] = {**asdict(plan.options.dynamics),
                                   "data": dynamics.data_description}
    summary = tables["gradient_models"][["model", "grad_ratio_first_last"]]
    return SectionResult("gradients", tables, environment, summary,
                         differences=seed_differences(frame(gradients.seeds), plan.models,
                                                      "grad_ratio_first_last"))


def _measured_at_init(plan: _Plan, config: GradientConfig
                      ) -> tuple[GradientResult, DynamicsResult | None, bool]:
    """Gradients at init and the first steps' dynamics, and whether they were reused. Both are
    functions of the models, the configs, the embedded data and the versions, so a rerun takes
    them from the cache of results instead of measuring again (``fresh`` measures)."""
    dynamics_config = plan.options.dynamics
    sources = [resolve(model) for model in plan.models]
    cache = ResultCache(fresh=plan.options.fresh)
    key = cache.key({"format": 1, "measurement": "gradients at init",
                     "models": [{"label": s.text, "identity": s.identity(),
                                 "in_channels": s.in_channels,
                                 "default_input_size": s.default_input_size,
                                 "weights_sha256": (hashlib.sha256(s.weights.read_bytes())
                                                    .hexdigest() if s.weights else None)}
                                for s in sources],
                     "gradients": asdict(config),
                     "dynamics": asdict(dynamics_config) if dynamics_config else None})
    found = cache.lookup(key)
    if found is not None:
        if plan.progress is not None:
            plan.progress.update(config.work(len(sources)) + (
                dynamics_config.work(len(sources)) if dynamics_config else 0))
        return (GradientResult(**found["gradients"]),
                DynamicsResult(**found["dynamics"]) if found["dynamics"] else None, True)
    gradients = measure_gradients(plan.models, config, plan.progress)
    dynamics = (measure_dynamics(plan.models, dynamics_config, plan.progress)
                if dynamics_config is not None else None)
    cache.store(key, {"gradients": asdict(gradients),
                      "dynamics": asdict(dynamics) if dynamics is not None else None})
    return gradients, dynamics, False


def training_section(plan: _Plan) -> SectionResult | None:
    """A short degradation run on the models and their shallow siblings, or an earlier one."""
    if plan.reused_training is not None:
        tables, environment = dict(plan.reused_training), {}
        if plan.options.why is not None:
            why_tables, environment = explain(load_trained(plan.options.degradation_dir),
                                              WHY_ANALYSES, plan.options.why)
            tables.update(why_tables)
        return SectionResult("training", tables, environment,
                             summary=_final_errors(plan.reused_training))
    if plan.options.train is None:
        return None
    trained = plan.models + siblings(plan.models)
    dataset = fit_dataset_to(load_dataset("digits"), trained)
    environment: dict[str, Any] = {"dataset": dataset.description,
                                   "recipe": asdict(plan.options.train),
                                   "seeds": list(plan.options.train_seeds)}
    latest: list[DegradationResult] = []  # after each finished run; kept if interrupted
    interruption = None
    # compare cannot resume, so checkpoints live in a temporary folder; finished runs are
    # kept in the run cache instead, never in the report's folder.
    with tempfile.TemporaryDirectory(prefix="resnet-probe-compare-") as runs:
        try:
            run_degradation(DegradationConfig(models=tuple(trained), train=plan.options.train,
                                              seeds=plan.options.train_seeds,
                                              stop_when_settled=True),
                            out_dir=Path(runs), progress=plan.progress, dataset=dataset,
                            on_run_done=latest.append, cache=plan.cache)
            why_tables, why_environment = _explained(
                plan, Path(runs), dataset, latest[-1].cached_runs if latest else [])
            environment.update(why_environment)
        except KeyboardInterrupt as error:
            interruption = error
            environment["interrupted"] = True
            why_tables = {}
    if not (latest and latest[-1].runs):
        if interruption is not None:
            raise interruption
        return SectionResult("training", environment=environment)
    done = latest[-1]
    environment["cache"] = cache_record(done, plan.cache)
    tables = {**degradation_tables(done), **why_tables}
    return SectionResult("training", tables, environment, _final_errors(tables),
                         tuple(done.cache_problems), interruption=interruption,
                         differences=seed_differences(tables["train_final"], plan.models,
                                                      "final_train_error"))


WHY_ANALYSES = tuple(Analysis)


def _explained(plan: _Plan, runs: Path, dataset, cached_runs: list[dict[str, Any]]
               ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The analyses of the nets just trained (their checkpoints are in ``runs``) and their
    environment part, reused from the cache when the same runs were analysed before; the
    progress bar is moved past the work the early stop left out."""
    if plan.options.why is None:
        return {}, {}
    nets = collect(sorted((runs / RUNS).glob("*.pt")), dataset, "this comparison's training "
                   "runs (their final weights)")
    started = time.perf_counter()
    tables, why_environment = explain_cached(nets, cached_runs, WHY_ANALYSES, plan.options.why,
                                             plan.progress,
                                             ResultCache(fresh=plan.options.fresh))
    if plan.progress is not None:
        planned = len(plan.models + siblings(plan.models)) * len(plan.options.train_seeds)
        plan.progress.update(plan.options.why.work(WHY_ANALYSES, planned - len(nets.nets)))
    return tables, {**why_environment, "why_seconds": round(time.perf_counter() - started, 1)}


def seed_differences(per_seed: pd.DataFrame, models: list[str], metric: str) -> pd.DataFrame:
    """Each model's ``metric`` against the first model's, paired by seed, with a t interval
    over the seeds both have."""
    rows = []
    if per_seed.empty:
        return frame(rows)
    values = per_seed.pivot_table(index="seed", columns="model", values=metric)
    baseline = models[0]
    for name in models[1:]:
        if baseline not in values or name not in values:
            continue
        paired = values[[baseline, name]].dropna()
        if paired.empty:
            continue
        difference = paired_mean_difference(paired[baseline].tolist(), paired[name].tolist(),
                                            absolute=metric.endswith("_error"))
        rows.append(difference_row(name, baseline, metric, paired[baseline].mean(),
                                   paired[name].mean(), difference))
    return frame(rows)


def _final_errors(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["train_final"].groupby("model", as_index=False)[
        ["final_train_error", "final_test_error"]].mean()


SECTIONS = (costs_section, latency_section, gradients_section, training_section)


def convention_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every convention for one model, named, with who reports numbers that way."""
    return [{"model": summary["model"], "convention": metric.label, "value": summary[metric.column],
             "unit": metric.unit, "reported_by": metric.reported_by,
             "giga": summary[metric.column] / 1e9 if summary[metric.column] is not None else None,
             "partial": summary["partial"], "uncounted_operators": summary["uncounted_operators"]}
            for metric in CONVENTIONS]
