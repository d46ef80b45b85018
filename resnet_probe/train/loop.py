"""The training loop behind the degradation experiments.

Defaults follow the paper's CIFAR recipe (SGD, momentum 0.9, lr 0.1, weight decay 1e-4, batch
128, lr divided by 10 at 50% and 75% of the budget) with the paper's ResNet-110 warm-up (lr 0.01
for the first steps), which short budgets need: without it resnet56's loss spikes at lr 0.1 and
it lags far enough to look like residual degradation.

Everything a step uses is a function of (seed, step): the data order comes from a
DistributedSampler seeded with the run's seed and reshuffled per epoch, and augmentation draws
from a generator seeded by (seed, step). So a run resumed from a checkpoint ends exactly where an
uninterrupted run ends, and two processes under torchrun see disjoint shards of each batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from resnet_probe.data import ImageDataset, fit_channels
from resnet_probe.errors import InvalidRequest, Terminated
from resnet_probe.interrupts import signals_handled_by
from resnet_probe.measure.gradients import (
    first_last_ratio,
    layer_grad_norms,
    probing_blocks,
    weighted_layers,
)
from resnet_probe.measure.memory import check_source_fits
from resnet_probe.modes import in_mode
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import atomic_write_bytes
from resnet_probe.settings import check_settings, setting
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train.interventions import (
    Intervention,
    InterventionVariant,
    bn_fed_convs,
    lr_factors,
    parameter_groups,
    project_to_norms,
    weight_norms,
)
from resnet_probe.train.precise_bn import recalibrate_bn
from resnet_probe.train.run_folder import json_safe
from resnet_probe.untrusted import (
    UnsafeFileError,
    UntrustedFileError,
    allowed_bytes,
    checked,
    load_tensors,
    state_dict_problems,
    tensor_problems,
)

# A run has diverged when its loss is not finite or exceeds this multiple of its first loss
# (cross-entropy at init is about ln(classes); 100x that is far beyond any recovering spike).
DIVERGENCE_FACTOR = 100.0
# Format 3: only tensors and plain data (the run's record is a dict), so a checkpoint loads with
# weights_only=True. An ended run's checkpoint keeps its weights in half precision and no
# optimizer state (it cannot resume, and the analyses of trained nets need no more). Formats 1
# and 2 pickled the record as a class, which a safe load refuses.
CHECKPOINT_FORMAT = 3


# A budget beyond this is a typo (10^9 steps take years even at 100 steps a second); the bound
# keeps a budget given in epochs a count that the schedule's arithmetic can hold.
MAX_STEPS = 10**9


@dataclass(frozen=True)
class TrainConfig:
    steps: int = setting(300, "Training steps.", minimum=1, maximum=MAX_STEPS)
    batch_size: int = setting(128, "Global batch (split across processes under torchrun).",
                              minimum=2)
    lr: float = setting(0.1, "Learning rate after the warm-up.", above=0)
    momentum: float = setting(0.9, "SGD momentum.", minimum=0)
    weight_decay: float = setting(1e-4, "SGD weight decay.", minimum=0)
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the budget where lr *= gamma
    gamma: float = 0.1
    warmup_steps: int = setting(50, "Steps at the warm-up lr before the lr (the paper's "
                                "ResNet-110 trick).", minimum=0)
    warmup_lr: float = setting(0.01, "Learning rate of the warm-up steps.", above=0)
    eval_every: int = setting(50, "Steps between evaluations.", minimum=1)
    grad_norm_every: int = setting(25, "Steps between gradient-norm records.", minimum=1)
    checkpoint_every: int = setting(50, "Steps between checkpoints.", minimum=1)
    augment: bool = setting(False, "Pad-4, random-crop, flip (the CIFAR-10 recipe).")
    eval_images: int = setting(2000, "Training images the eval-mode error is measured on.",
                               minimum=1)
    # Steps whose own forward and backward are watched (per-layer dynamics, the join ratio).
    record_steps: tuple[int, ...] = ()
    # The causal test of the early-layer freeze (resnet_probe.train.interventions): applied
    # after each of the first K steps, and the run ends at step K.
    intervention: Intervention | None = None
    device: str = "cpu"
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_settings(self)
        if self.warmup_steps >= self.steps:
            raise InvalidRequest(f"the warm-up ({self.warmup_steps} steps at lr {self.warmup_lr}) "
                             f"takes the whole budget of {self.steps} steps, so lr {self.lr} "
                             f"would never be used: warmup_steps={self.warmup_steps}, "
                             f"steps={self.steps}; give fewer warm-up steps or more steps")
        if self.intervention is not None and self.intervention.steps > self.steps:
            raise InvalidRequest(f"the intervention's {self.intervention.steps} steps reach "
                                 f"past the budget of {self.steps} steps: "
                                 f"intervention.steps={self.intervention.steps}, "
                                 f"steps={self.steps}")
        first_milestone = min(self.milestones, default=1.0) * self.steps
        if self.warmup_steps > first_milestone:
            raise InvalidRequest(f"the warm-up ({self.warmup_steps} steps) reaches past the first "
                             f"lr milestone at step {first_milestone:.0f}, so lr {self.lr} would "
                             f"never be used: warmup_steps={self.warmup_steps}, "
                             f"steps={self.steps}; give fewer warm-up steps or more steps")

    def fewest_steps(self) -> int:
        """The smallest budget this recipe's warm-up leaves room in: more steps than the
        warm-up, and the warm-up over by the first lr milestone (what __post_init__ asks)."""
        first = min(self.milestones, default=1.0)
        by_milestone = math.ceil(self.warmup_steps / first) if first > 0 else 0
        return max(self.warmup_steps + 1, by_milestone, 1)

    @property
    def end_step(self) -> int:
        """Where the run stops: the budget, or the end of the intervention (an intervened
        run follows the budget's schedule for its K steps)."""
        return self.steps if self.intervention is None else self.intervention.steps

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_lr
        passed = sum(step >= fraction * self.steps for fraction in self.milestones)
        return self.lr * self.gamma**passed


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"  # non-finite loss or above DIVERGENCE_FACTOR x the first
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; the checkpoint resumes it


ENDED = (RunStatus.FINISHED, RunStatus.DIVERGED)  # final: nothing left to resume


@dataclass
class RunResult:
    model: str
    seed: int
    status: RunStatus
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per step
    evals: list[dict[str, Any]] = field(default_factory=list)  # eval-mode errors
    grad_norms: list[dict[str, Any]] = field(default_factory=list)  # per layer, every N steps
    samples_per_rank: list[int] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run, evaluations and checkpoints included
    step_seconds: float = 0.0  # time inside training steps only (throughput)
    diverged_at: int | None = None
    diverged_because: str | None = None  # "non-finite loss" or "loss above 100x the first"
    depth: int | None = None  # of the model, in weighted layers (its source's traits)
    shortcut: bool | None = None
    dynamics: list[dict[str, Any]] = field(default_factory=list)  # per layer, recorded steps
    joins: list[dict[str, Any]] = field(default_factory=list)  # whole-net ratio, recorded steps

    def record(self) -> dict[str, Any]:
        """The run as plain data, what a checkpoint stores (enums become their strings)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_record(cls, data: Any, where: str) -> RunResult:
        """A record read from a file, checked field by field (UntrustedFileError names the
        field)."""
        record = checked(data, RECORD_FIELDS, where)
        if record["status"] not in {status.value for status in RunStatus}:
            raise UntrustedFileError(f"{where}: unknown run status {record['status']!r}")
        for table in ("history", "evals", "grad_norms", "dynamics", "joins"):
            if not all(isinstance(row, dict) for row in record[table]):
                raise UntrustedFileError(f"{where}: {table} must be a list of row objects")
        if not all(isinstance(n, int) for n in record["samples_per_rank"]):
            raise UntrustedFileError(f"{where}: samples_per_rank must be integers")
        return cls(**{**{name: record[name] for name in RECORD_FIELDS},
                      "status": RunStatus(record["status"])})


RECORD_FIELDS = {"model": str, "seed": int, "status": str, "history": list, "evals": list,
                 "grad_norms": list, "samples_per_rank": list, "seconds": float,
                 "step_seconds": float, "diverged_at": (int, None),
                 "diverged_because": (str, None), "depth": (int, None),
                 "shortcut": (bool, None), "dynamics": list, "joins": list}


class NothingToResume(InvalidRequest):
    pass


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> Distributed:
        if dist.is_available() and dist.is_initialized():
            return Distributed(dist.get_rank(), dist.get_world_size())
        return Distributed()


def check_batch_fits_dataset(batch_size: int, dataset: ImageDataset) -> None:
    """A batch larger than the training set would train on the whole set while the records
    say otherwise: refused, naming both numbers."""
    images = len(dataset.train_y)
    if batch_size > images:
        raise InvalidRequest(f"batch size {batch_size} is larger than the {images:,} training "
                             f"images of {dataset.name}; give a batch size of at most "
                             f"{images}")


def build_for_dataset(source: ModelSource | str, dataset: ImageDataset) -> nn.Module:
    """MODEL built for the dataset's classes and channels (a torchvision model keeps its 3
    channels: fit_dataset_to gives the data 3)."""
    return resolve(source).build(num_classes=dataset.num_classes,
                                 in_channels=dataset.in_channels)


def sgd(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None
        ) -> torch.optim.SGD:
    """The recipe's SGD, fused where torch has the kernel for the device: one pass over each
    parameter instead of four, 3x faster on resnet34's 21.8M parameters on a 2-core CPU
    (about 15% of a training step at 32 px; benchmarks/train_throughput.py). Its results
    differ from the unfused update only in rounding. ``groups``: parameter groups instead of
    one (the learning-rate intervention sets each intervened conv's lr)."""
    params = groups if groups is not None else model.parameters()
    try:
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or torch
        return torch.optim.SGD(groups if groups is not None else model.parameters(),
                               lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pad 4 with zeros, random crop back to size, random horizontal flip (He et al. 2016)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=generator)
    dy = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def error_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500
               ) -> tuple[float, float]:
    """Eval-mode error and mean loss over (x, y)."""
    wrong, loss_sum = 0, 0.0
    with in_mode(model, training=False), torch.no_grad():
        for start in range(0, len(y), batch):
            logits = model(x[start:start + batch])
            target = y[start:start + batch]
            wrong += (logits.argmax(1) != target).sum().item()
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
    return wrong / len(y), loss_sum / len(y)


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
        _restore_rng(state["rng"])
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
            _save_checkpoint(checkpoint, model, optimizer, step, result, config, samples_seen,
                             bn_calls, initial_norms)

    step = start_step
    trained.train()
    with _interrupts_at_step_boundaries() as interrupt:
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
                if _any_rank(reason is not None, world):
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
                if step < config.end_step and _any_rank(interrupt.pending is not None, world):
                    interrupt.pending = interrupt.pending or signal.SIGINT  # another rank's
                    interrupt.raise_now(lambda: save(RunStatus.INTERRUPTED))
                try:
                    progress.update(1)
                except KeyboardInterrupt:  # raised at the boundary: the state is whole
                    save(RunStatus.INTERRUPTED)
                    raise
            else:
                result.samples_per_rank = _gather_counts(samples_seen, world, device)
                save(RunStatus.FINISHED)
        except KeyboardInterrupt:
            result.status = RunStatus.INTERRUPTED  # the checkpoint on disk is whole
            raise
        if interrupt.pending is not None:  # came during the last step: finished, then stop
            interrupt.raise_now(lambda: None)
    return result


class _BoundaryInterrupts:
    """SIGINT and SIGTERM noted while a step runs, acted on at its end. A second signal
    while one is pending interrupts at once (the last checkpoint then stands)."""

    def __init__(self) -> None:
        self.pending: int | None = None

    def handle(self, signum, frame) -> None:
        if self.pending is not None:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        self.pending = signum

    def raise_now(self, before: Any) -> None:
        before()
        raise Terminated() if self.pending == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def _interrupts_at_step_boundaries() -> Iterator[_BoundaryInterrupts]:
    interrupts = _BoundaryInterrupts()
    with signals_handled_by(interrupts.handle):
        yield interrupts


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


def _restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _divergence(loss: float, first_loss: float) -> str | None:
    if not math.isfinite(loss):
        return "non-finite loss"
    if loss > DIVERGENCE_FACTOR * first_loss:
        return f"loss {loss:.3g} above {DIVERGENCE_FACTOR:g}x the first loss {first_loss:.3g}"
    return None


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    resumable: bool = False, model: nn.Module | None = None) -> dict[str, Any]:
    """A checkpoint written by this loop, loaded as data only (``resnet_probe.untrusted``);
    its ``result`` is the RunResult its record describes. A damaged, foreign or unsafe file
    is named, with the fix.

    Without ``model`` only the record is read: the tensors come back on the meta device (names,
    shapes and dtypes, none of their data). With ``model`` (built from the validated record,
    or the run being resumed) the file may declare at most a small multiple of the model's
    bytes (checked before anything is inflated), its weights must fit the model name for name,
    shape for shape and dtype kind for kind, and only then are they loaded on ``device``; a
    finished run's weights must be finite, its BN running variances non-negative. With
    ``resumable`` (and ``model``), an unfinished run's optimizer, RNG and BN state are checked
    to be whole and to belong to its step."""
    fix = "; delete it to retrain that run from step 0"
    state = _checkpoint_state(path, "meta", None if model is None else
                              allowed_bytes(model.state_dict()), fix)
    result = state["result"]
    if model is None:
        return state
    problems = state_dict_problems(model.state_dict(), state["model"])
    if problems:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} does not fit {result.model}: "
                                f"{'; '.join(problems)}{fix}")
    if resumable and result.status not in ENDED:
        _check_optimizer(state, model, path, fix)
    state = _checkpoint_state(path, device, allowed_bytes(model.state_dict()), fix)
    result = state["result"]
    if result.status is RunStatus.FINISHED:
        problems = tensor_problems(state["model"])
        if problems:
            raise CorruptCheckpoint(f"checkpoint {str(path)!r} says {result.model} seed "
                                    f"{result.seed} finished, but its weights are not a "
                                    f"trained net's: {'; '.join(problems[:3])}{fix}")
    if resumable and result.status not in ENDED:
        _check_resumable(state, path, fix)
    return state


def _checkpoint_state(path: Path, device: torch.device | str, max_bytes: int | None,
                      fix: str) -> dict[str, Any]:
    """The checkpoint's entries and its checked record (as ``result``)."""
    try:
        state = load_tensors(path, "checkpoint", device, max_bytes)
    except UnsafeFileError:
        raise  # refused outright: not a damaged file to skip or retrain past
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error}{fix}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} has format {found!r}; this version "
                                f"reads format {CHECKPOINT_FORMAT}{fix}")
    where = f"checkpoint {str(path)!r}"
    try:
        checked(state, {"model": dict, "step": int, "record": dict}, where)
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                   for k, v in state["model"].items()):
            raise UntrustedFileError(f"{where}: the field 'model' must map names to tensors")
        if state["step"] < 0:
            raise UntrustedFileError(f"{where}: the field 'step' holds {state['step']}; "
                                     f"expected a step number (0 or more)")
        result = RunResult.from_record(state["record"], where)
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error}{fix}") from None
    return {**state, "result": result}


def _check_optimizer(state: dict[str, Any], model: nn.Module, path: Path, fix: str) -> None:
    """An unfinished run's optimizer state, against the model it resumes (meta tensors will
    do): one SGD group over every parameter, a momentum buffer shaped like its parameter."""
    where = f"checkpoint {str(path)!r}"
    parameters = list(model.parameters())
    try:
        optimizer = checked(state, {"optimizer": dict}, where)["optimizer"]
        checked(optimizer, {"state": dict, "param_groups": list}, f"{where} optimizer")
        groups = optimizer["param_groups"]
        for index, group in enumerate(groups):
            checked(group, {"params": list, "lr": float, "momentum": float,
                            "weight_decay": float}, f"{where} optimizer group {index}")
        indices = [i for group in groups for i in group["params"]]
        if indices != list(range(len(parameters))):
            raise UntrustedFileError(
                f"{where}: the optimizer holds parameters {_few(indices)}, but "
                f"{_result_model(state)} has {len(parameters)} (0 to {len(parameters) - 1})")
        for key, entry in optimizer["state"].items():
            if not isinstance(key, int) or not 0 <= key < len(parameters) or \
                    not isinstance(entry, dict):
                raise UntrustedFileError(f"{where}: the optimizer's state {key!r} is not a "
                                         f"parameter's")
            buffer = entry.get("momentum_buffer")
            if buffer is not None and (not isinstance(buffer, torch.Tensor) or
                                       tuple(buffer.shape) != tuple(parameters[key].shape)
                                       or not buffer.is_floating_point()):
                raise UntrustedFileError(f"{where}: the momentum of parameter {key} is not a "
                                         f"float tensor shaped {tuple(parameters[key].shape)}")
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error} (an unfinished run needs it to resume){fix}"
                                ) from None


def _result_model(state: dict[str, Any]) -> str:
    return state["result"].model if "result" in state else "the model"


def _few(values: list[Any]) -> str:
    return ", ".join(map(str, values[:5])) + (f" (+{len(values) - 5} more)"
                                              if len(values) > 5 else "") or "none"


def _check_resumable(state: dict[str, Any], path: Path, fix: str) -> None:
    where = f"checkpoint {str(path)!r}"
    try:
        checked(state, {"optimizer": dict, "samples_seen": int, "rng": dict,
                        "bn_calls_per_step": (dict, None), "initial_norms": (dict, None)},
                where, optional=("initial_norms",))
        if state["samples_seen"] < 0:
            raise UntrustedFileError(f"{where}: samples_seen is negative")
        rng = checked(state["rng"], {"torch": torch.Tensor, "cuda": list}, f"{where} rng")
        expected = torch.get_rng_state()
        for name, generator in [("torch", rng["torch"]), *(("cuda", g) for g in rng["cuda"])]:
            if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8 or \
                    generator.dim() != 1 or (name == "torch" and
                                             generator.numel() != expected.numel()):
                raise UntrustedFileError(f"{where}: the {name} RNG state is not a generator's "
                                         f"(a 1-D uint8 tensor"
                                         f"{f' of {expected.numel()}' if name == 'torch' else ''}"
                                         f")")
        calls = state["bn_calls_per_step"] or {}
        if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                   and v >= 0 for k, v in calls.items()):
            raise UntrustedFileError(f"{where}: bn_calls_per_step must map BN names to counts")
        norms = state.get("initial_norms") or {}
        if not all(isinstance(k, str) and isinstance(v, (int, float)) and
                   not isinstance(v, bool) and math.isfinite(v) for k, v in norms.items()):
            raise UntrustedFileError(f"{where}: initial_norms must map layer names to finite "
                                     f"numbers")
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error} (an unfinished run needs it to resume){fix}"
                                ) from None
    step = state["step"]
    ahead = [f"{name} {int(state['model'][name].item())} (expected {count * step})"
             for name, count in calls.items()
             if name in state["model"] and state["model"][name].numel() == 1
             and int(state['model'][name].item()) != count * step]
    if ahead:
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} says step {step}, but its BN statistics belong to "
            f"another step: num_batches_tracked of {'; '.join(ahead[:3])}. It was written in "
            f"the middle of a step, so resuming would not end where an uninterrupted run "
            f"ends{fix}")


class CorruptCheckpoint(UntrustedFileError):
    """A checkpoint that is damaged, foreign, or does not fit its run (an InvalidRequest:
    exit 2); the message names the file and the fix."""


def _any_rank(flag: bool, world: Distributed) -> bool:
    if world.world_size == 1:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def _gather_counts(count: int, world: Distributed, device: torch.device) -> list[int]:
    if world.world_size == 1:
        return [count]
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    counts = [torch.zeros(1, dtype=torch.long, device=backend_device)
              for _ in range(world.world_size)]
    dist.all_gather(counts, torch.tensor([count], device=backend_device))
    return [int(c.item()) for c in counts]


def _save_checkpoint(path: Path, model, optimizer, step, result, config, samples_seen,
                     bn_calls, initial_norms) -> None:
    import io
    state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "step": step,
             "record": result.record(), "config": json_safe(asdict(config)),
             "samples_seen": samples_seen}
    if result.status in ENDED:
        state["model"] = {key: value.half() if value.is_floating_point() else value
                          for key, value in state["model"].items()}
    else:  # what a resume needs to continue exactly
        state.update(optimizer=optimizer.state_dict(), bn_calls_per_step=bn_calls,
                     initial_norms=initial_norms,
                     rng={"torch": torch.get_rng_state(),
                          "cuda": torch.cuda.get_rng_state_all()
                          if torch.cuda.is_available() else []})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def setup_distributed(device: str) -> Distributed:
    """Join the process group torchrun describes in the environment; single process otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Distributed.from_env()


def final_metrics(result: RunResult, tail_fraction: float = 0.1) -> dict[str, Any]:
    """Final train-mode error averaged over the last steps (the primary curve), and the last
    eval-mode train and test errors beside it."""
    history = result.history
    tail = history[-max(1, int(len(history) * tail_fraction)):] if history else []
    last_eval = result.evals[-1] if result.evals else {}
    return {
        "final_train_error": (sum(r["train_error"] for r in tail) / len(tail)
                              if tail else math.nan),
        "final_train_loss": (sum(r["train_loss"] for r in tail) / len(tail)) if tail else math.nan,
        "final_train_error_eval": last_eval.get("train_error_eval", math.nan),
        "final_test_error": last_eval.get("test_error", math.nan),
        "steps_done": len(history),
        "status": result.status,
        "seconds": result.seconds,
    }
