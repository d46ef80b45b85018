"""Gradient dynamics over the first training steps: what the exploding gradient at init does.

Plain BN-ReLU nets start with ||dL/ds|| thousands of times larger at the first block than at
the last. The explosion is gone within a few steps, but the first updates it drives are huge
relative to the early weights: ||W|| of the early layers jumps, and since BN makes a conv's
output blind to its weights' scale, the effective step ||dW|| / ||W|| of those layers then
collapses: they stop learning. Residual nets take far smaller first steps.

At each recorded step (before its update): the whole-net ratio at the block joins, and per
weighted layer ||dL/dW||, ||W||, their ratio, and the effective step ||W_after - W|| / ||W||
of the update that follows. Training is plain SGD on the embedded digits, with no warm-up, so
the first steps are the raw ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from resnet_probe.data import fit_channels, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.gradients import (
    layer_grad_norms,
    output_classes,
    run_probe,
    weighted_layers,
)
from resnet_probe.progress import Progress
from resnet_probe.settings import check_settings, setting
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.surgery import has_shortcuts

DEFAULT_STEPS = (0, 1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class DynamicsConfig:
    steps: tuple[int, ...] = setting(DEFAULT_STEPS, "Recorded steps; training runs to the "
                                     "last.", minimum=0)
    seeds: tuple[int, ...] = setting((0,), "Comma-separated seeds.")
    batch_size: int = setting(32, "Images per step (BN in train mode needs 2).", minimum=2)
    lr: float = setting(0.1, "Learning rate, with no warm-up.", above=0)
    momentum: float = setting(0.9, "SGD momentum.", minimum=0)
    weight_decay: float = setting(1e-4, "SGD weight decay.", minimum=0)

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.steps or not self.seeds:
            raise InvalidRequest(f"give at least one step and one seed: steps={self.steps!r}, "
                                 f"seeds={self.seeds!r}")

    def work(self, models: int) -> int:
        """Progress units measure_dynamics reports: one per model and seed."""
        return models * len(self.seeds)


@dataclass
class DynamicsResult:
    models: list[dict[str, Any]] = field(default_factory=list)  # per model, seed, step
    layers: list[dict[str, Any]] = field(default_factory=list)  # per weighted layer as well
    data_description: str = ""


def measure_dynamics(models: list[str | ModelSource], config: DynamicsConfig = DynamicsConfig(),
                     progress: Progress | None = None) -> DynamicsResult:
    result = DynamicsResult()
    for source in map(resolve, models):
        name = source.text
        for seed in config.seeds:
            if progress is not None:
                progress.set_description(f"gradient dynamics {name} seed {seed}")
            _train_and_record(source, seed, config, result)
            if progress is not None:
                progress.update(1)
    return result


def _train_and_record(source: ModelSource, seed: int, config: DynamicsConfig,
                      result: DynamicsResult) -> None:
    name = source.text
    torch.manual_seed(seed)
    model = source.build()
    spec = source.spec
    size = (max(spec.total_stride, 16 if spec.family == "cifar" else 32) if spec else 32)
    classes = output_classes(model)
    data = load_dataset("digits").resized(size)
    result.data_description = data.description
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    recorded = set(config.steps)
    first_layer = weighted_layers(model)[0][0]
    for step in range(max(config.steps) + 1):
        index = torch.randint(0, len(data.train_y), (config.batch_size,), generator=generator)
        x = fit_channels(data.train_x[index], source.in_channels)
        y = data.train_y[index] % classes
        optimizer.zero_grad(set_to_none=True)
        if step in recorded:
            blocks, findings = run_probe(model, x, y)  # forward and backward, with hooks
            before = {layer: module.weight.detach().clone()
                      for layer, module in weighted_layers(model)}
            layers = layer_grad_norms(model)
        else:
            model.train()
            F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step not in recorded:
            continue
        after = dict(weighted_layers(model))
        for row in layers:
            moved = (after[row["module"]].weight.detach() - before[row["module"]]).norm().item()
            row["update_to_weight"] = moved / row["weight_norm"] if row["weight_norm"] else None
            result.layers.append({"model": name, "seed": seed, "step": step, **row})
        first = next(r for r in layers if r["module"] == first_layer)
        joins = [b["join_grad_norm"] for b in blocks]
        result.models.append({
            "model": name, "shortcut": has_shortcuts(model),
            "seed": seed, "step": step,
            "loss": findings["loss"],
            "grad_ratio_first_last": joins[0] / joins[-1] if joins[-1] else float("inf"),
            "first_layer": first_layer, "first_layer_weight_norm": first["weight_norm"],
            "first_layer_grad_to_weight": first["grad_to_weight"],
            "first_layer_update_to_weight": first["update_to_weight"],
        })
