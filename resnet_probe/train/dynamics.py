"""The first training steps, measured on the training runs themselves (the recipe's lr,
momentum and warm-up), and the causal test of what they show.

A plain BN-ReLU net starts with ||dL/ds|| far larger at its first block than at its last. The
early layers' first updates are then large against their weights: ||W|| grows, and because BN
makes a conv's output blind to its weights' scale, the step SGD takes relative to the layer,
lr * ||dL/dW|| / ||W|| (the effective step; proportional to lr / ||W||^2 for a scale-invariant
layer), falls. The runs record, at ``TrainConfig.record_steps``, per layer ||dL/dW||, ||W||, that
effective step, and ||dW|| / ||W|| of the update the optimizer made.

That last number is the wrong one to read the freeze from: after one large step with momentum
mu, later updates are mostly the momentum of the first, and ||dW_t|| / ||W_t|| follows
``momentum_only_curve`` = mu^t / sum_{k<t} mu^k (0.900, 0.426, 0.144, ...) whatever the layer
does. The report draws that curve beside it and states the finding from ||dL/dW|| / ||W||.

The causal test of that story is an intervention on training: ``train.interventions`` and
the rule in ``train.causal``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from resnet_probe.data import load_dataset
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import frame
from resnet_probe.sources import ModelSource
from resnet_probe.stats import seed_estimate
from resnet_probe.train.loop import TrainConfig, train_run
from resnet_probe.train.recipes import COMPARE_TRAIN, degradation_recipe


def momentum_only_curve(momentum: float, steps: int) -> dict[int, float]:
    """||dW_t|| / ||W_t|| for t = 1..steps when one large first gradient dominates and every
    later gradient (and the weights at init) is negligible: heavy-ball SGD's update t is
    lr mu^t g_0 while the weights have moved by lr g_0 sum_{k<t} mu^k, so the ratio is
    mu^t / sum_{k<t} mu^k, whatever the learning rate."""
    return {t: momentum ** t / sum(momentum ** k for k in range(t)) for t in range(1, steps + 1)}


def dynamics_summary(dynamics: pd.DataFrame) -> pd.DataFrame:
    """Per model, for its first conv, over seeds with t intervals: how much ||W|| grew from
    the first to the last recorded step, and ||dL/dW|| / ||W|| and the effective step at the
    last recorded step."""
    if dynamics.empty:
        return frame([])
    rows = []
    for model, group in dynamics.groupby("model", sort=False):
        first_conv = group[group["depth"] == group["depth"].min()]
        steps = sorted(first_conv["step"].unique())
        if len(steps) < 2:
            continue
        start, end = steps[0], steps[-1]
        per_seed: dict[str, dict[int, float]] = {"weight_growth": {}, "grad_to_weight": {},
                                                 "effective_step": {}}
        for seed, runs in first_conv.groupby("seed"):
            at = runs.set_index("step")
            if start not in at.index or end not in at.index:
                continue
            per_seed["weight_growth"][int(seed)] = float(
                at.loc[end, "weight_norm"] / at.loc[start, "weight_norm"])
            per_seed["grad_to_weight"][int(seed)] = float(at.loc[end, "grad_to_weight"])
            per_seed["effective_step"][int(seed)] = float(at.loc[end, "effective_step"])
        row: dict[str, Any] = {"model": model, "layer": first_conv["module"].iloc[0],
                               "from_step": int(start), "to_step": int(end),
                               "seeds": len(per_seed["weight_growth"])}
        for name, values in per_seed.items():
            estimate = seed_estimate(name, values)
            row.update({name: estimate.estimate, f"{name}_ci95_low": estimate.low,
                        f"{name}_ci95_high": estimate.high})
        rows.append(row)
    return frame(rows)


def recipe_for(source: ModelSource) -> TrainConfig:
    """The recipe a model is trained with here: the degradation recipe for CIFAR-style nets,
    the main job's for ImageNet-style and foreign ones."""
    if source.spec is not None and source.spec.family == "cifar":
        return degradation_recipe()
    return COMPARE_TRAIN


def measure_recipe_dynamics(sources: list[ModelSource], steps: tuple[int, ...],
                            seeds: tuple[int, ...], progress: Progress = NO_PROGRESS
                            ) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Train each model in its recipe up to the last of ``steps``, watching those steps:
    (per-layer rows, whole-net join rows, what was trained on, in words)."""
    from resnet_probe.train.fitted_data import fit_dataset_to

    dataset = fit_dataset_to(load_dataset("digits"), sources)
    layers, joins = [], []
    for source in sources:
        recipe = recipe_for(source)
        budget = max(max(steps) + 1, recipe.warmup_steps + 1)
        config = TrainConfig(**{**recipe.__dict__, "steps": budget, "record_steps": steps,
                                "eval_every": budget, "checkpoint_every": budget,
                                "grad_norm_every": budget, "milestones": ()})
        for seed in seeds:
            progress.set_description(f"dynamics {source.text} seed {seed}")
            run = train_run(source, dataset, config, seed=seed)
            layers += run.dynamics
            joins += run.joins
            progress.update(1)
    return frame(layers), frame(joins), dataset.description
