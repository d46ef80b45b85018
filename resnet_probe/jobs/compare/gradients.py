"""The gradients section: gradient norms by depth at initialization, and shattering, on the
nets as the training section builds them; reused from the cache of results when the models,
settings, data and versions are the same."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.cache import DamagedEntry, json_decoder, json_encoder, results_store
from resnet_probe.jobs.compare.plan import Plan
from resnet_probe.jobs.parts import GradientsPart, Skipped
from resnet_probe.measure.gradients import GradientResult, measure_gradients, probe_setting
from resnet_probe.progress import Progress
from resnet_probe.results import frame
from resnet_probe.stats import difference_row, paired_mean_difference
from resnet_probe.untrusted import checked
from resnet_probe.views import gradient_view


def gradients_part(plan: Plan, progress: Progress) -> GradientsPart | Skipped:
    config = plan.options.gradients
    if config is None:
        return Skipped("gradients were not measured")
    foreign = any(not source.is_zoo for source in plan.sources)
    if plan.input_size is not None and (config.head == "imagenet" or foreign):
        # probed at the size every other section feeds (a foreign model trains at it too)
        config = replace(config, input_size=plan.input_size)
    content = {"format": 2, "measurement": "gradients at init",
               "models": [{"label": s.text, "identity": s.identity(),
                           "in_channels": s.in_channels,
                           "default_input_size": s.default_input_size,
                           **({"inputs": s.inputs.record()} if s.inputs is not None else {}),
                           "weights_sha256": _sha256(s.weights)} for s in plan.sources],
               "gradients": asdict(config)}
    store = results_store(fresh=plan.options.fresh)

    def measure() -> dict[str, Any]:
        return asdict(measure_gradients(list(plan.sources), config, progress))

    cached = store.get_or_compute(content, measure, json_encoder, _decoded)
    if cached.reused:
        progress.update(config.work(len(plan.sources)))
    result = GradientResult(**cached.value)
    seeds = frame(result.seeds)
    setting = probe_setting(plan.sources[0], config).describe(plan.sources[0])
    return GradientsPart(
        models=gradient_view(result, "model"), blocks=frame(result.blocks),
        stages=frame(result.stages), layers=frame(result.layers), seeds=seeds,
        shattering=frame(result.shattering),
        differences=seed_differences(seeds, plan.models, "grad_ratio_first_last"),
        input_description=result.input_description, setting=setting,
        seed_list=tuple(config.seeds), notes=tuple(result.notes), reused=cached.reused)


def _decoded(folder: Path) -> dict[str, Any]:
    value = json_decoder(folder)
    checked(value, {name: list for name in ("layers", "blocks", "models", "seeds", "stages",
                                            "shattering")}, f"cached gradients {folder}")
    if not isinstance(value.get("input_description"), str):
        raise DamagedEntry("input_description is missing")
    return value


def _sha256(path: Path | None) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None


def seed_differences(per_seed: pd.DataFrame, models: list[str], metric: str) -> pd.DataFrame:
    """Each model's ``metric`` against the first model's, paired by seed, with a t interval
    over the seeds both have (``resnet_probe.stats``)."""
    rows: list[dict[str, Any]] = []
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
