"""``measure_gradients``: the probe over every model and seed, gathered into one
``GradientResult``.

Per model, the memory guard first estimates the probe's batch and the shattering line on a meta
build; then each seed builds a fresh net (``ProbeSetting``), feeds it one batch
(``batch.make_batch``) and runs one forward and backward through the block hooks
(``block_probe.run_probe``). The model's row then takes the first/last ratio, mean and std over
seeds, with the depth fits (``fits``) and, for image models, shattering
(``shattered_gradients``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from resnet_probe.measure.gradients.batch import CROSS_ENTROPY, SURROGATE_LOSS, make_batch
from resnet_probe.measure.gradients.block_probe import layer_grad_norms, run_probe
from resnet_probe.measure.gradients.config import (
    GRADIENT_DEFAULTS,
    GradientConfig,
    GradientResult,
    probe_setting,
)
from resnet_probe.measure.gradients.fits import (
    first_last_ratio,
    fit_comparison,
    growth_fits,
    stage_rates,
    within_stage_ratios,
)
from resnet_probe.measure.gradients.shattered_gradients import shattering
from resnet_probe.measure.memory import check_source_fits
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.sources import ModelSource, resolve


def measure_gradients(models: Iterable[str | nn.Module | ModelSource],
                      config: GradientConfig = GRADIENT_DEFAULTS,
                      progress: Progress = NO_PROGRESS) -> GradientResult:
    """Per model (any MODEL source, or an nn.Module) and seed. A foreign model's blocks come
    from its discovered structure; its join gradient is its block output's (no ReLU to see
    inside), and an nn.Module given directly is measured as it is for every seed."""
    result = GradientResult()
    sources = {source.text: source for source in map(resolve, models)}
    for name, source in sources.items():
        progress.set_description(f"gradients {name}")
        check_probe_fits(source, config)
        per_seed = []
        for seed in config.seeds:
            per_seed.append(_one_seed(source, seed, config, result))
            result.seeds.append({"model": name, "seed": seed,
                                 "grad_ratio_first_last": per_seed[-1]["ratio"]})
            progress.update(1)
        if config.shatter_points and source.inputs is not None:
            note = (f"{name}: no shattering: it moves along a line between two images, and "
                    f"this model is fed --input tensors")
            result.notes.append(note)
        elif config.shatter_points:
            result.shattering.extend(shattering(source, config))
        blocks = [r for r in result.blocks if r["model"] == name]
        stages = within_stage_ratios(blocks)
        result.stages.extend(stages)
        fits = growth_fits([r["depth"] for r in blocks], [r["join_grad_norm"] for r in blocks])
        fits.update(fit_comparison(blocks))
        within = [r["within_stage_ratio"] for r in stages
                  if r["blocks"] > 1 and math.isfinite(r["within_stage_ratio"])]
        rates = [r["rate_per_layer"] for r in stage_rates(stages)]
        result.models.append({**_model_row(source, config, per_seed), **fits,
                              "max_within_stage_ratio": max(within, default=math.nan),
                              "stage_rate_min": min(rates, default=math.nan),
                              "stage_rate_max": max(rates, default=math.nan)})
    return result


def check_probe_fits(source: ModelSource, config: GradientConfig) -> None:
    """The probe's batch and the shattering line, estimated on a meta build before any net
    is built (MemoryGuardError names the estimate and what would fit)."""
    setting_ = probe_setting(source, config)
    channels = setting_.in_channels or source.in_channels
    passes = [(config.batch_size, f"the gradient probe of {source.text}", "a batch size")]
    if config.shatter_points and source.inputs is None:  # no line between --input tensors
        passes.append((config.shatter_points, f"the shattering measurement of {source.text}",
                       "--shatter-points"))
    for batch, what, option in passes:
        check_source_fits(source, (batch, channels, setting_.size, setting_.size),
                          torch.device("cpu"), training=True, what=what,
                          num_classes=setting_.num_classes, in_channels=setting_.in_channels,
                          batch_option=option)


def _one_seed(source: ModelSource, seed: int, config: GradientConfig, result: GradientResult
              ) -> dict[str, Any]:
    name = source.text
    setting_ = probe_setting(source, config)
    torch.manual_seed(seed)
    model = setting_.build(source)
    x, y, description = make_batch(model, config, seed, source, setting_.size)
    result.input_description = f"{description}; {setting_.describe(source)}"
    block_rows, findings = run_probe(model, x, y, seed)
    if findings["loss_kind"] != CROSS_ENTROPY:
        note = f"{name}: the loss is a {SURROGATE_LOSS}"
        if note not in result.notes:
            result.notes.append(note)
    for row in block_rows:
        result.blocks.append({"model": name, "seed": seed, **row})
    for row in layer_grad_norms(model):
        result.layers.append({"model": name, "seed": seed, **row})
    if not block_rows:  # no residual blocks found: nothing to take a first/last ratio of
        note = (f"{name}: no residual blocks were found, so its per-block measurements "
                f"(grad_ratio_first_last, --by block and stage, shattering) are unavailable; "
                f"--by layer has its weighted layers")
        if note not in result.notes:
            result.notes.append(note)
        return {"ratio": math.nan, "growth": math.nan, **findings}
    ratio = first_last_ratio(block_rows)
    depth_span = (block_rows[-1]["depth"] - block_rows[0]["depth"]) or 1
    return {"ratio": ratio, "growth": ratio ** (1 / depth_span) if ratio > 0 else math.nan,
            **findings}


def _model_row(source: ModelSource, config: GradientConfig, per_seed: list[dict[str, Any]]
               ) -> dict[str, Any]:
    ratios = [s["ratio"] for s in per_seed]
    growth = [s["growth"] for s in per_seed]
    finite = [r for r in ratios if math.isfinite(r)]
    mean = statistics.fmean(finite) if finite else math.nan
    spec = source.spec
    return {
        "model": source.text, "depth": spec.depth if spec else None,
        "shortcut": source.traits().shortcut,
        "design": spec.design.value if spec else source.kind.value,
        "preact": spec.preact if spec else None,
        "grad_ratio_first_last": mean,
        "grad_ratio_std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
        "growth_per_layer": statistics.fmean(growth),
        "seeds": len(per_seed), "batch_size": config.batch_size,
        "input": "--input" if source.inputs is not None else config.input,
        "loss": SURROGATE_LOSS.split(":")[0] if any(s.get("loss_kind") != CROSS_ENTROPY
                                                    for s in per_seed) else CROSS_ENTROPY,
        "loss_at_init": statistics.fmean(s["loss"] for s in per_seed),
        "first_nonfinite_forward": next((s["first_nonfinite_forward"] for s in per_seed
                                         if s["first_nonfinite_forward"]), None),
        "first_nonfinite_gradient": next((s["first_nonfinite_gradient"] for s in per_seed
                                          if s["first_nonfinite_gradient"]), None),
    }
