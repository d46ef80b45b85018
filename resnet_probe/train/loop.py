"""The training run behind the degradation experiments: ``train_run`` and what only it uses
(the divergence rule, the per-layer dynamics of a recorded step, Ctrl-C and SIGTERM held to the
next step boundary).

Everything a step uses is a function of (seed, step): the data order comes from a
DistributedSampler seeded with the run's seed and reshuffled per epoch, and augmentation draws
from a generator seeded by (seed, step). So a run resumed from a checkpoint ends exactly where an
uninterrupted run ends, and two processes under torchrun see disjoint shards of each batch.

The run's parts live beside it, one concept a module, and are re-exported here (``__all__``),
the one place callers import training from: ``train.config`` (TrainConfig),
``train.run_result`` (RunResult and its status), ``train.checkpoint``, ``train.distributed``
and ``train.ingredients`` (the model for the dataset, SGD, augmentation, the eval error).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from resnet_probe.data import ImageDataset, fit_channels
from resnet_probe.interrupts import Interruption, deferred_interrupts
from resnet_probe.measure.gradients import (
    first_last_ratio,
    layer_grad_norms,
    probing_blocks,
    weighted_layers,
)
from resnet_probe.measure.memory import check_source_fits
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train.checkpoint import (
    CorruptCheckpoint,
    NothingToResume,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from resnet_probe.train.config import MAX_STEPS, TrainConfig
from resnet_probe.train.distributed import (
    Distributed,
    any_rank,
    gather_counts,
    setup_distributed,
)
from resnet_probe.train.ingredients import (
    augment_batch,
    build_for_dataset,
    check_batch_fits_dataset,
    error_rate,
    sgd,
)
from resnet_probe.train.interventions import (
    InterventionVariant,
    bn_fed_convs,
    lr_factors,
    parameter_groups,
    project_to_norms,
    weight_norms,
)
from resnet_probe.train.precise_bn import recalibrate_bn
from resnet_probe.train.run_result import ENDED, RunResult, RunStatus, final_metrics

# Callers import the run's parts from here; the tests and benchmarks also patch sgd,
# build_for_dataset, bn_fed_convs and project_to_norms here, where train_run looks them up.
__all__ = [
    "DIVERGENCE_FACTOR", "ENDED", "MAX_STEPS", "CorruptCheckpoint", "Distributed",
    "NothingToResume", "RunResult", "RunStatus", "TrainConfig", "augment_batch",
    "build_for_dataset", "check_batch_fits_dataset", "final_metrics", "load_checkpoint",
    "setup_distributed", "sgd", "train_run",
]

# A run has diverged when its loss is not finite or exceeds this multiple of its first loss
# (cross-entropy at init is about ln(classes); 100x that is far beyond any recovering spike).
DIVERGENCE_FACTOR = 100.0


def train_run(
    source: ModelSource | str,
    dataset: ImageDataset,
    config: TrainConfig,
    seed: int = 0,
    checkpoint: Path | None = None,
    resume: bool = False,
    progress: Progress = NO_PROGRESS,
) -> RunResult:
    """Train one model; checkpoints go to ``checkpoint`` (atomically) if given.

    Ctrl-C and SIGTERM take effect at the next step boundary, where the model, its BN
    statistics, the optimizer, the RNG and the sampler position all belong to the same step:
    the checkpoint is written there and the run stops (KeyboardInterrupt, or ``Terminated``).
    An interruption inside a step (a second Ctrl-C) leaves the last checkpoint as it was, so a
    resume continues from a consistent state and ends bit-identical to an uninterrupted run."""
    source = resolve(source)
    world = Distributed.from_env()
    device = torch.device(config.device)
    check_batch_fits_dataset(config.batch_size, dataset)
    per_rank_batch = config.batch_size // world.world_size
    if per_rank_batch < 1:
        raise ValueError(f"batch size {config.batch_size} is smaller than the number of "
                         f"processes {world.world_size}")
    channels = dataset.in_channels
    # Before the build: a net or a batch too big for memory is refused without allocating it.
    check_source_fits(source, (per_rank_batch, channels, *dataset.train_x.shape[-2:]), device,
                      training=True, what=f"training {source.text}",
                      num_classes=dataset.num_classes, in_channels=dataset.in_channels)
    torch.manual_seed(seed)
    model = build_for_dataset(source, dataset)
    memory_format = torch.channels_last if config.channels_last else torch.preserve_format
    # torch's stub of Module.to omits memory_format, which the method takes.
    model = model.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    intervention = config.intervention
    intervened = bn_fed_convs(model) if intervention is not None else {}
    initial_norms = weight_norms(model, intervened)
    by_lr = intervention is not None and intervention.variant is InterventionVariant.LEARNING_RATE
    optimizer = sgd(model, config, parameter_groups(model, intervened) if by_lr else None)
    depth, shortcut = source.traits()
    result = RunResult(model=source.text, seed=seed, status=RunStatus.RUNNING, depth=depth,
                       shortcut=shortcut)
    start_step, samples_seen, bn_calls = 0, 0, None
    if resume:
        if checkpoint is None or not checkpoint.exists():
            raise NothingToResume(f"nothing to resume: no checkpoint at {checkpoint}")
        state = load_checkpoint(checkpoint, device, resumable=True, model=model)
        result = state["result"]
        if result.status in ENDED:
            return result
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, samples_seen = state["step"], state["samples_seen"]
        bn_calls = state["bn_calls_per_step"]
        initial_norms = state.get("initial_norms") or initial_norms
        restore_rng(state["rng"])
        result.status = RunStatus.RUNNING
    trained = model
    if world.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    # The sampler reads only the length: its indices depend on that, the seed and the epoch.
    sampler: DistributedSampler[int] = DistributedSampler(
        TensorDataset(dataset.train_y), num_replicas=world.world_size, rank=world.rank,
        shuffle=True, seed=seed, drop_last=True)
    steps_per_epoch = max(1, len(sampler) // per_rank_batch)
    train_x = fit_channels(dataset.train_x, channels).to(device)
    train_y = dataset.train_y.to(device)
    test_x = fit_channels(dataset.test_x, channels).to(device)
    test_y = dataset.test_y.to(device)
    eval_index = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed)
                                )[:config.eval_images].to(device)
    order: list[int] = []
    order_epoch = -1
    started = time.perf_counter() - result.seconds
    first_loss = result.history[0]["train_loss"] if result.history else None
    recorded = set(config.record_steps) if world.world_size == 1 else set()

    def save(status: RunStatus) -> None:
        """At a step boundary only: everything saved belongs to ``step``."""
        result.status = status
        result.seconds = time.perf_counter() - started
        if checkpoint is not None and world.is_main:
            save_checkpoint(checkpoint, model, optimizer, step, result, config, samples_seen,
                            bn_calls, initial_norms)

    step = start_step
    trained.train()
    # A signal waits for the step boundary; one that came during the last step is raised
    # when the block ends, after the finished run is saved.
    with deferred_interrupts() as interrupt:
        try:
            while step < config.end_step:
                step_started = time.perf_counter()
                epoch, position = divmod(step, steps_per_epoch)
                if epoch != order_epoch:
                    sampler.set_epoch(epoch)
                    order, order_epoch = list(sampler), epoch
                index = torch.tensor(
                    order[position * per_rank_batch:(position + 1) * per_rank_batch],
                    device=device)
                x, y = train_x[index], train_y[index]
                if config.augment:
                    x = augment_batch(x.cpu(), torch.Generator().manual_seed(
                        seed * 1_000_003 + step)).to(device)
                if config.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                factors = lr_factors(model, intervened, initial_norms) if by_lr else {}
                for group in optimizer.param_groups:
                    group["lr"] = config.lr_at(step) * factors.get(str(group.get("conv")), 1.0)
                optimizer.zero_grad(set_to_none=True)
                if step in recorded:  # the step's own forward and backward, watched
                    with probing_blocks(model) as probe:
                        logits = trained(x)
                        loss = F.cross_entropy(logits, y)
                        if torch.isfinite(loss):
                            loss.backward()
                    before = {name: weight.detach().clone()
                              for name, weight in _layer_weights(model).items()}
                else:
                    logits = trained(x)
                    loss = F.cross_entropy(logits, y)
                first_loss = loss.item() if first_loss is None else first_loss
                reason = _divergence(loss.item(), first_loss)
                if any_rank(reason is not None, world):
                    result.diverged_at = step
                    result.diverged_because = reason or "another process diverged"
                    step += 1
                    save(RunStatus.DIVERGED)
                    break
                if step not in recorded:
                    loss.backward()
                if world.is_main and (step % config.grad_norm_every == 0
                                      or step == config.end_step - 1):
                    for row in layer_grad_norms(model):
                        result.grad_norms.append({"model": source.text, "seed": seed,
                                                  "step": step, **row})
                optimizer.step()
                if step in recorded:
                    result.dynamics.extend(_dynamics_rows(source.text, seed, step, model,
                                                          before, config.lr_at(step),
                                                          config.momentum))
                    result.joins.append({"model": source.text, "seed": seed, "step": step,
                                         "loss": loss.item(),
                                         "grad_ratio_first_last": first_last_ratio(
                                             probe.rows())})
                samples_seen += len(y)
                result.history.append({
                    "model": source.text, "seed": seed, "step": step,
                    "lr": config.lr_at(step), "train_loss": loss.item(),
                    "train_error": (logits.argmax(1) != y).float().mean().item(),
                })
                step += 1
                result.step_seconds += time.perf_counter() - step_started
                # The step boundary: the state below belongs to `step`.
                if bn_calls is None:
                    bn_calls = _bn_calls_per_step(model, step - start_step)
                if intervention is not None and not by_lr and step <= intervention.steps:
                    project_to_norms(model, optimizer, intervened, initial_norms)
                # An intervened run is not evaluated at its end: the causal test reads only
                # its train-mode curve, and the evaluation would cost more than its K steps.
                if world.is_main and (step % config.eval_every == 0 or (
                        step == config.end_step and intervention is None)):
                    recalibrate_bn(model, train_x[eval_index])
                    train_error, train_loss = error_rate(model, train_x[eval_index],
                                                         train_y[eval_index])
                    test_error, test_loss = error_rate(model, test_x, test_y)
                    result.evals.append({"model": source.text, "seed": seed, "step": step,
                                         "train_error_eval": train_error,
                                         "train_loss_eval": train_loss,
                                         "test_error": test_error, "test_loss": test_loss})
                if step < config.end_step and step % config.checkpoint_every == 0:
                    save(RunStatus.RUNNING)
                if step < config.end_step and any_rank(interrupt.pending is not None, world):
                    interrupt.pending = interrupt.pending or Interruption.CTRL_C  # another rank's
                    save(RunStatus.INTERRUPTED)
                    raise interrupt.pending.error()
                try:
                    progress.update(1)
                except KeyboardInterrupt:  # raised at the boundary: the state is whole
                    save(RunStatus.INTERRUPTED)
                    raise
            else:
                result.samples_per_rank = gather_counts(samples_seen, world, device)
                save(RunStatus.FINISHED)
        except KeyboardInterrupt:
            result.status = RunStatus.INTERRUPTED  # the checkpoint on disk is whole
            raise
    return result


def _layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each weighted layer's weight, by module name."""
    weights = {}
    for name, module in weighted_layers(model):
        weight = module.weight
        assert isinstance(weight, torch.Tensor)  # weighted layers are convs and linears
        weights[name] = weight
    return weights


def _dynamics_rows(model_name: str, seed: int, step: int, model: nn.Module,
                   before: dict[str, torch.Tensor], lr: float, momentum: float
                   ) -> list[dict[str, Any]]:
    """Per weighted layer at a recorded step: ||dL/dW||, ||W||, their ratio, the effective
    step lr * ||dL/dW|| / ||W|| (what plain SGD would move the layer by, relative to it), and
    ||dW|| / ||W|| of the update the optimizer made (momentum and weight decay included)."""
    rows = []
    after = _layer_weights(model)
    for row in layer_grad_norms(model):
        if row["module"] not in before:
            continue
        # ||W|| of the weights the gradient was taken at, not of the updated ones
        weight_norm = before[row["module"]].norm().item()
        grad_to_weight = row["grad_norm"] / weight_norm if weight_norm else math.nan
        moved = (after[row["module"]].detach() - before[row["module"]]).norm().item()
        rows.append({"model": model_name, "seed": seed, "step": step, "lr": lr,
                     "momentum": momentum, **row, "weight_norm": weight_norm,
                     "grad_to_weight": grad_to_weight, "effective_step": lr * grad_to_weight,
                     "update_to_weight": moved / weight_norm if weight_norm else math.nan})
    return rows


def _bn_calls_per_step(model: nn.Module, steps: int) -> dict[str, int]:
    """How often each BN module ran per training step (0 for an unused one), read off its
    num_batches_tracked after the first steps of this process."""
    return {name: int(buffer.item()) // max(steps, 1) for name, buffer in
            model.named_buffers() if name.endswith("num_batches_tracked")}


def _divergence(loss: float, first_loss: float) -> str | None:
    if not math.isfinite(loss):
        return "non-finite loss"
    if loss > DIVERGENCE_FACTOR * first_loss:
        return f"loss {loss:.3g} above {DIVERGENCE_FACTOR:g}x the first loss {first_loss:.3g}"
    return None
