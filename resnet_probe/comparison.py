"""`compare`: every measurement for a list of models, the first being the baseline.

Returns tidy DataFrames keyed by table name; ``report.write_compare_report`` renders them.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from resnet_probe.data import load_dataset
from resnet_probe.measure.architecture import architecture_rows
from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import count_costs, stage_costs
from resnet_probe.measure.gradients import GradientConfig, measure_gradients
from resnet_probe.measure.latency import LatencyConfig, Progress, measure_latency
from resnet_probe.results import delta_table, frame, load_table
from resnet_probe.train.degradation import (
    DegradationConfig,
    DegradationResult,
    fit_dataset_to,
    run_degradation,
)
from resnet_probe.train.loop import TrainConfig
from resnet_probe.zoo import get_spec, name_of

SUMMARY_COLUMNS = ["params", "macs", "macs_v1", "macs_fvcore_default", "macs_with_elementwise",
                   "flops", "backward_flops", "forward_ms", "backward_ms", "images_per_s",
                   "grad_ratio_first_last", "final_train_error", "final_test_error"]
# Short runs for the compare report; `degradation` has the full recipe. Measured on digits:
# lr 0.1 right after a 20-step warm-up spikes the loss of 34-layer nets; 0.05 does not.
COMPARE_TRAIN = TrainConfig(steps=200, batch_size=64, lr=0.05, warmup_steps=20,
                            eval_every=40, grad_norm_every=40, checkpoint_every=40)
COMPARE_LATENCY = LatencyConfig(repeats=10, warmup=3, sweep_batch_sizes=(1, 4, 16))
COMPARE_GRADIENTS = GradientConfig(batch_size=16, seeds=(0, 1), shatter_points=8)


@dataclass(frozen=True)
class CompareOptions:
    input_size: int | None = None  # None: the family's standard, shared when families mix
    latency: LatencyConfig | None = COMPARE_LATENCY  # None skips the section
    gradients: GradientConfig | None = COMPARE_GRADIENTS
    train: TrainConfig | None = COMPARE_TRAIN  # None: --no-train
    degradation_dir: Path | None = None  # reuse a previous `degradation` run instead
    bottleneck_width: int = 64
    bottleneck_size: int = 56


@dataclass
class CompareResult:
    models: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    report_path: Path | None = None
    interrupted: bool = False  # Ctrl-C or SIGTERM: the sections measured so far are kept
    interruption: KeyboardInterrupt | None = None


def validate_models(models: list[str], input_size: int | None) -> tuple[int | None, list[str]]:
    """Check the model list; returns the shared input size (if one is needed) and notes."""
    if len(models) < 2:
        raise ValueError(f"compare needs at least two models (the first is the baseline): "
                         f"got {list(models)}; e.g. `resnet-probe compare resnet34 plain34`")
    seen = set()
    for name in models:
        if name in seen:
            raise ValueError(f"model {name!r} is named twice; compare distinct models")
        seen.add(name)
    specs = {name: get_spec(name) for name in models}
    notes = []
    defaults = {spec.default_input_size for spec in specs.values()}
    if input_size is None and len(defaults) > 1:
        input_size = max(defaults)
        notes.append(f"The models come from different families (standard inputs "
                     f"{', '.join(f'{s}x{s}' for s in sorted(defaults))}); every model is "
                     f"measured at the shared size {input_size}x{input_size}. Pass --input-size "
                     f"to choose another.")
    if input_size is not None:
        for spec in specs.values():
            spec.check_input_size(input_size)
    return input_size, notes


def siblings(models: list[str]) -> list[str]:
    """Shallower references for the training section: each model's design at the family's
    shallowest standard layout (resnet20/plain20, resnet18/plain18 for the original design;
    e.g. preact_resnet110[layers=3-3-3] for a pre-activation net)."""
    extra = []
    for name in models:
        spec = get_spec(name)
        layers = (3, 3, 3) if spec.family == "cifar" else (2, 2, 2, 2)
        if sum(layers) >= sum(spec.layers) or len(layers) != len(spec.layers):
            continue
        reference = name_of(spec.replace(layers=layers))
        if reference is None:
            reference = f"{name}[layers={'-'.join(map(str, layers))}]"
        if reference not in models + extra:
            extra.append(reference)
    return extra


def run_compare(models: list[str], options: CompareOptions = CompareOptions(),
                progress: Progress | None = None, out_dir: Path | None = None,
                command_line: str | None = None) -> CompareResult:
    input_size, notes = validate_models(list(models), options.input_size)
    reused = (load_degradation_tables(options.degradation_dir)  # validated before measuring
              if options.degradation_dir is not None else None)
    result = CompareResult(models=list(models), notes=notes)
    tables = result.tables

    if progress is not None:
        progress.set_description("counting params and MACs")
    costs = [count_costs(name, input_size=input_size) for name in models]
    summary = frame([c.summary for c in costs])
    tables["layer_costs"] = frame([row for c in costs for row in c.modules])
    tables["stage_costs"] = frame([row for c in costs for row in stage_costs(c)])
    tables["operators"] = frame([row for c in costs for row in c.operators])
    tables["conventions"] = frame([row for c in costs for row in convention_rows(c.summary)])
    tables["architecture"] = frame([row for name in models
                                    for row in architecture_rows(name, input_size)])
    rows = block_cost_rows(options.bottleneck_width, options.bottleneck_size)
    tables["bottleneck"] = frame(rows)
    tables["bottleneck_totals"] = frame(block_cost_totals(rows))
    if progress is not None:
        progress.update(1)

    environment: dict[str, Any] = {}
    tables["summary"] = summary
    try:
        _measure_sections(list(models), options, input_size, tables, environment, progress,
                          out_dir, reused)
    except KeyboardInterrupt as error:
        result.interrupted, result.interruption = True, error
        finished = [name for name, table in (("latency", "latency_models"),
                                             ("gradients", "gradient_models"),
                                             ("training", "train_final")) if table in tables]
        result.notes.append(
            f"Interrupted ({'SIGTERM' if type(error).__name__ == 'Terminated' else 'Ctrl-C'}): "
            f"this report holds the costs and "
            f"{', '.join(finished) if finished else 'no measured section'}"
            f"{' (training: the runs recorded so far)' if 'training' in finished else ''}.")
    tables["deltas"] = delta_table(tables["summary"], SUMMARY_COLUMNS)
    environment.update(environment_info(command_line))
    result.environment = environment
    tables["environment"] = frame([{"key": k, "value": str(v)} for k, v in environment.items()])
    return result


def _merge_summary(tables: dict[str, pd.DataFrame], columns: pd.DataFrame) -> None:
    tables["summary"] = tables["summary"].merge(columns, on="model", how="left")


def _measure_sections(models, options, input_size, tables, environment, progress, out_dir,
                      reused) -> None:
    """Latency, gradients and training, each merged into the summary as it completes, so an
    interruption keeps every finished section."""
    if options.latency is not None:
        config = options.latency
        if input_size is not None:
            config = LatencyConfig(**{**config.__dict__, "input_size": input_size})
        latency = measure_latency(list(models), config, progress)
        tables["latency_models"] = frame(latency.models)
        tables["latency_layers"] = frame(latency.layers)
        tables["latency_samples"] = frame(latency.samples)
        tables["latency_sweep"] = frame(latency.sweep)
        if latency.failures:
            tables["latency_failures"] = frame(latency.failures)
        environment.update({f"latency_{k}": v for k, v in latency.environment.items()
                            if k != "config"})
        result_notes = environment.setdefault("latency_warnings", [])
        result_notes.extend(latency.warnings)
        _merge_summary(tables, tables["latency_models"][
            ["model", "forward_ms", "backward_ms", "images_per_s"]])

    if options.gradients is not None:
        config = options.gradients
        if input_size is not None:
            config = GradientConfig(**{**config.__dict__, "input_size": input_size})
        gradients = measure_gradients(models, config, progress)
        tables["gradient_models"] = frame(gradients.models)
        tables["gradient_blocks"] = frame(gradients.blocks)
        tables["gradient_layers"] = frame(gradients.layers)
        tables["shattering"] = frame(gradients.shattering)
        environment["gradient_input"] = gradients.input_description
        environment["gradient_seeds"] = list(config.seeds)
        _merge_summary(tables, tables["gradient_models"][["model", "grad_ratio_first_last"]])

    if reused is not None:
        tables.update(reused)
    elif options.train is not None:
        trained = list(models) + siblings(list(models))
        dataset = fit_dataset_to(load_dataset("digits"), trained)
        environment["train_dataset"] = dataset.description
        environment["train_recipe"] = recipe_text(options.train)
        latest: list[DegradationResult] = []  # every finished run, kept if interrupted later
        try:
            run_degradation(
                DegradationConfig(models=tuple(trained), train=options.train), out_dir=(
                    out_dir or Path("reports")) / ".compare-runs", progress=progress,
                dataset=dataset, on_run_done=latest.append)
        except KeyboardInterrupt:
            environment["train_interrupted"] = True
            raise
        finally:
            if latest and latest[-1].runs:
                tables.update(degradation_tables(latest[-1]))
    if "train_final" in tables:
        finals = tables["train_final"].groupby("model", as_index=False)[
            ["final_train_error", "final_test_error"]].mean()
        _merge_summary(tables, finals)


def convention_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every convention for one model, named, with who reports numbers that way."""
    model = summary["model"]
    items = [
        ("(a) conv+linear MACs, stride on 3x3 (v1.5)", summary["macs"], "MACs",
         "torchvision docs' GFLOPS; resnet-probe's `macs`"),
        ("(a) conv+linear MACs, stride on 1x1 (v1)", summary["macs_v1"], "MACs",
         "the ResNet paper's Table 1 'FLOPs'"),
        ("fvcore default: (a) + 2 per BN element + 1 per avg-pool input", summary[
            "macs_fvcore_default"], "MACs", "fvcore FlopCountAnalysis total"),
        ("(b) (a) + BN, ReLU, residual add, pooling (1 per element)",
         summary["macs_with_elementwise"], "MACs", "resnet-probe `macs_with_elementwise`"),
        ("(c) FLOPs = 2 x (a)", summary["flops"], "FLOPs", "torch FlopCounterMode"),
        ("(d) backward conv+linear FLOPs, measured", summary["backward_flops"], "FLOPs",
         "torch FlopCounterMode on loss.backward()"),
    ]
    return [{"model": model, "convention": name, "value": value, "unit": unit,
             "reported_by": who, "giga": value / 1e9 if value is not None else None,
             "partial": summary["partial"], "uncounted_operators": summary["uncounted_operators"]}
            for name, value, unit, who in items]


def degradation_tables(result: DegradationResult) -> dict[str, pd.DataFrame]:
    return {
        "train_history": frame(result.history_rows()),
        "train_evals": frame(result.eval_rows()),
        "train_final": frame(result.final_rows()),
        "train_gaps": frame(result.gap_rows()),
        "train_grad_norms": frame(result.grad_rows()),
    }


DEGRADATION_TABLES = ("train_history", "train_evals", "train_final", "train_gaps",
                      "train_grad_norms")


DEGRADATION_COLUMNS = {"train_history": ("model", "seed", "step", "train_error"),
                       "train_final": ("model", "seed", "shortcut", "final_train_error",
                                       "status")}


def load_degradation_tables(directory: Path) -> dict[str, pd.DataFrame]:
    """A finished `degradation --out DIR` run's tables; any problem names the file."""
    data = Path(directory) / "data"
    missing = [name for name in DEGRADATION_TABLES if not (data / f"{name}.json").exists()]
    if missing:
        raise ValueError(f"{str(data)!r} does not hold a finished degradation run "
                         f"(missing {', '.join(missing)}); run `resnet-probe degradation "
                         f"--out DIR` first")
    tables = {}
    for name in DEGRADATION_TABLES:
        path = data / f"{name}.json"
        try:
            tables[name] = load_table(path)
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise ValueError(f"{str(path)!r} is not a readable table ({error}); rerun "
                             f"`resnet-probe degradation --out {directory}`") from None
        needed = [c for c in DEGRADATION_COLUMNS.get(name, ()) if c not in tables[name]]
        if needed:
            raise ValueError(f"{str(path)!r} lacks the columns {', '.join(needed)}: it is not "
                             f"a resnet-probe degradation table")
    unfinished = tables["train_final"].query("status != 'finished'")
    if not unfinished.empty:
        runs = ", ".join(f"{r.model} seed {r.seed} ({r.status})" for r in unfinished.itertuples())
        raise ValueError(f"{str(directory)!r} holds runs that did not finish: {runs}; "
                         f"continue it with `resnet-probe degradation --out {directory} "
                         f"--resume` first")
    return tables


def recipe_text(config: TrainConfig) -> str:
    return (f"SGD momentum {config.momentum}, lr {config.lr} (warm-up {config.warmup_lr} for "
            f"{config.warmup_steps} steps, x{config.gamma} at "
            f"{', '.join(f'{m:.0%}' for m in config.milestones)} of the budget), weight decay "
            f"{config.weight_decay}, batch {config.batch_size}, {config.steps} steps"
            f"{', pad-crop-flip augmentation' if config.augment else ''}")


def environment_info(command_line: str | None = None) -> dict[str, Any]:
    versions = {}
    for package in ("resnet-probe", "torch", "fvcore", "torchinfo", "pandas", "plotly", "click"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command_line": command_line or " ".join(sys.argv),
        "python": platform.python_version(),
        **{f"version_{k}": v for k, v in versions.items()},
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
