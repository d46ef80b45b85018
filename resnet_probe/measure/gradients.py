"""Gradient norms and signal propagation at each depth, at initialization.

Measurement semantics. For each seed a freshly initialized model (BN in train mode, as in the
first training step) takes one batch and a cross-entropy loss, then one backward pass. A model
whose output is not class logits (N, classes), such as a U-Net's per-pixel map, takes a stated
surrogate loss instead (``SURROGATE_LOSS``), named in the rows and the notes. A model fed
``--input`` tensors (token ids and a mask, ...) is probed on those, drawn at the probe's batch
size, with random labels; shattering, which moves along a line between two images, is then
skipped and said so.

* per weighted layer (conv, linear): ``grad_norm`` = ||dL/dW||_2 and ``grad_to_weight`` =
  ||dL/dW|| / ||W||;
* per block output x_l: ``act_grad_norm`` = ||dL/dx_l||_2 over the whole batch, and
  ``act_std``, the standard deviation of x_l;
* per model: ``grad_ratio_first_last`` = ||dL/dx_first|| / ||dL/dx_last|| over block outputs,
  where first is the block nearest the input. Above 1 means gradients grow toward the input
  (explode), below 1 that they vanish. ``growth_per_layer`` is that ratio spread evenly over
  the weighted layers between the two blocks (Yang et al. 2019 predict about 1.21 for plain
  BN-ReLU stacks at init);
* per stage: ``rate_per_layer``, the factor per layer of ||dL/ds|| fitted within the stage
  (``stage_rate``), and its mean over seeds with a log-scale interval (``stage_rates``). A
  projection shortcut's BN resets the stream at each stage, so the whole-net curve is a
  sawtooth: the per-stage rates, not one fit across stages, say how the gradient grows
  (``labels.gradient_trend`` names the trend from them). The whole-net fits
  (``growth_fits``, ``fit_comparison``) are kept as numbers.

Across seeds, results are mean and std. Shattering (Balduzzi et al. 2017): on a 1-D grid of
interpolated inputs, the gradient of a random projection of a block output with respect to the
input is computed at every point, and ``correlation`` at each ``lag`` is the mean Pearson
correlation of gradients that many grid points apart (1 = smooth, 0 = white noise); see
``shattering``.

A non-finite loss or gradient is a finding, not a crash: the first module whose forward output
is non-finite, and the first module (from the output side) whose gradient is, are reported.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats as scipy_stats
from torch import nn

from resnet_probe.data import fit_channels, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.hooks import hooked, is_leaf
from resnet_probe.measure.memory import check_fits, check_source_fits
from resnet_probe.modes import in_mode
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.settings import INPUT_SIZE, check_settings, setting
from resnet_probe.sources import ModelSource, SourceError, WeightsMismatch, resolve
from resnet_probe.sources.surgery import block_modules
from resnet_probe.stats import positive_mean_interval, seed_estimate
from resnet_probe.zoo import ResNet
from resnet_probe.zoo.blocks import _Block

INPUTS = ("data", "random")
CROSS_ENTROPY = "cross-entropy"
SURROGATE_LOSS = ("surrogate: a fixed random projection of the output, L = <P, f(x)> / N with "
                  "P drawn from N(0, 1) in the shape of one example's output, seeded by the "
                  "seed (the output is not class logits (N, classes))")
Fed = torch.Tensor | tuple[tuple[Any, ...], dict[str, Any]]  # one image batch, or (args, kwargs)
HEADS = ("trained", "imagenet")
BN_STATISTICS_IMAGES = 64  # the data batch that fixes BN statistics for shattering


@dataclass(frozen=True)
class GradientConfig:
    # BN in train mode needs a batch statistic, so at least 2.
    batch_size: int = setting(32, "Images per measured batch.", minimum=2)
    seeds: tuple[int, ...] = setting((0, 1, 2), "Comma-separated seeds; results are mean ± std "
                                     "across them.")
    input_size: int | None = setting(None, INPUT_SIZE)
    # --probe-input: --input NAME=SHAPE[:DTYPE] is what a model's forward takes
    input: str = setting("data", "A batch of the embedded digits, or Gaussian noise.",
                         choices=INPUTS, flag="--probe-input")
    shatter_points: int = setting(256, "Points on the 1-D input grid of the shattering "
                                  "measurement (0 skips it); correlations are reported at "
                                  "lags up to 128.", minimum=0)
    shatter_projections: int = setting(2, "Random projections of each block output, per seed.",
                                       minimum=1)
    head: str = setting("trained", "trained: the net as training builds it (the digits' 10 "
                        "classes and channels, the training input size); imagenet: the "
                        "model's own head (1000 classes for ImageNet-style nets) at its "
                        "standard input.", choices=HEADS)
    # With head="trained": the net's classes and input channels instead of the digits' (to
    # load weights trained for others); the data is given the channels, labels wrap around.
    num_classes: int | None = setting(None, "Classes of the probed net.", minimum=1,
                                      none_means="the data's, 10")
    in_channels: int | None = setting(None, "Input channels of the probed net.", minimum=1,
                                      none_means="the data's, 1, for zoo nets")

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.seeds:
            raise InvalidRequest("give at least one seed: seeds=()")
        if self.shatter_points == 1:
            raise InvalidRequest("shatter_points must be 0 (off) or at least 2: "
                                 "shatter_points=1")

    def work(self, models: int) -> int:
        """Progress units measure_gradients reports: one per model and seed."""
        return models * len(self.seeds)


@dataclass
class GradientResult:
    layers: list[dict[str, Any]] = field(default_factory=list)  # per weighted layer, per seed
    blocks: list[dict[str, Any]] = field(default_factory=list)  # per block output, per seed
    models: list[dict[str, Any]] = field(default_factory=list)  # one row per model
    seeds: list[dict[str, Any]] = field(default_factory=list)  # whole-net ratio per seed
    stages: list[dict[str, Any]] = field(default_factory=list)  # within-stage ratio per seed
    shattering: list[dict[str, Any]] = field(default_factory=list)
    input_description: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_grad_norms(model: nn.Module) -> list[dict[str, Any]]:
    """||dL/dW|| per weighted layer from the .grad already there: cheap enough for a loop."""
    rows = []
    layer_info = getattr(model, "layer_info", {})
    for name, module in weighted_layers(model):
        info = layer_info.get(name)
        weight = cast(torch.Tensor, module.weight)
        grad_norm = weight.grad.norm().item() if weight.grad is not None else math.nan
        weight_norm = weight.detach().norm().item()
        rows.append({"module": name, "stage": info.stage if info else None,
                     "depth": info.depth if info else None, "role": info.role if info else None,
                     "grad_norm": grad_norm, "weight_norm": weight_norm,
                     "grad_to_weight": grad_norm / weight_norm if weight_norm else math.nan})
    return rows


@dataclass(frozen=True)
class ProbeSetting:
    """The net a probe measures and the batch it feeds: as the training section builds and
    trains it (``head="trained"``), or the model's own head at its standard input."""

    num_classes: int | None  # None: the model's own
    in_channels: int | None
    size: int

    def build(self, source: ModelSource) -> nn.Module:
        try:
            return source.build(num_classes=self.num_classes, in_channels=self.in_channels)
        except WeightsMismatch as error:
            if self.num_classes is None and self.in_channels is None:
                raise  # the model as defined: nothing of ours to explain
            channels = self.in_channels or source.in_channels
            own = f"the model's own: --in-channels {source.in_channels}" + (
                f" --num-classes {source.spec.num_classes}" if source.spec is not None else "")
            raise SourceError(
                f"{error.mismatch}; the probe builds {source.text} for the data it feeds "
                f"({channels} input channel{'s' if channels != 1 else ''}, "
                f"{self.num_classes} classes), not as the weights were trained: give "
                f"--in-channels and --num-classes to match them ({own}), or --head imagenet "
                f"for the model as it is defined") from None

    def describe(self, source: ModelSource) -> str:
        if source.inputs is not None:
            head = ("the model's own head" if self.num_classes is None
                    else f"{self.num_classes} classes")
            return f"{head}, fed its --input tensors"
        if self.num_classes is None:
            return (f"the model's own head (labelled: not the trained net) at "
                    f"{self.size}x{self.size}")
        return (f"the net as the training section trains it: {self.num_classes} classes, "
                f"{self.size}x{self.size} input")


def probe_setting(source: ModelSource, config: GradientConfig) -> ProbeSetting:
    if config.head == "imagenet":
        size = config.input_size or source.default_input_size
        setting_ = ProbeSetting(None, None, size)
    else:
        digits = load_dataset("digits")
        size = config.input_size or max(digits.image_size, source.min_input_size)
        channels = config.in_channels or (digits.in_channels if source.is_zoo else None)
        setting_ = ProbeSetting(config.num_classes or digits.num_classes, channels, size)
    if source.spec is not None:  # a zoo net: its stride stack needs enough pixels
        source.spec.check_input_size(setting_.size)
    return setting_


def make_batch(model: nn.Module, config: GradientConfig, seed: int,
               source: ModelSource | None = None, size: int | None = None,
               batch_size: int | None = None) -> tuple[Fed, torch.Tensor, str]:
    source = source or resolve(model)
    batch = batch_size or config.batch_size
    if source.inputs is not None:
        return inputs_batch(model, source, seed, batch)
    size = size or config.input_size or source.default_input_size
    channels, classes = input_channels(model, source), output_classes(model)
    check_fits(model, (batch, channels, size, size), torch.device("cpu"),
               training=True, what=f"the gradient probe of {source.text}")
    generator = torch.Generator().manual_seed(seed)
    if config.input == "random":
        x = torch.randn(batch, channels, size, size, generator=generator)
        y = torch.randint(0, classes, (batch,), generator=generator)
        return x, y, f"random N(0,1) inputs at {size}x{size}, random labels"
    data = load_dataset("digits").resized(size)  # the description says if it was resized
    index = torch.randperm(len(data.train_y), generator=generator)[:batch]
    x = fit_channels(data.train_x[index], channels)
    y = data.train_y[index] % classes  # the ImageNet head's labels: digit k is class k
    return x, y, f"a batch of {batch} from {data.description}"


def inputs_batch(model: nn.Module, source: ModelSource, seed: int, batch: int
                 ) -> tuple[Fed, torch.Tensor, str]:
    """The source's ``--input`` tensors at ``batch`` (floats N(0, 1), integers from their
    range, seeded), and random labels."""
    assert source.inputs is not None
    spec = source.inputs.with_batch(batch)
    check_fits(model, spec.tensors[0].shape, torch.device("cpu"), training=True,
               what=f"the gradient probe of {source.text}", inputs=spec)
    made = {t.name: t.make(batch_size=batch, random=True, seed=seed * 1000 + index)
            for index, t in enumerate(spec.tensors)}
    args = tuple(made[str(i)] for i in range(sum(t.positional for t in spec.tensors)))
    kwargs = {k: v for k, v in made.items() if not k.isdigit()}
    y = torch.randint(0, output_classes(model), (batch,),
                      generator=torch.Generator().manual_seed(seed))
    return (args, kwargs), y, (f"the --input tensors {spec.text()} (floats N(0,1), integers "
                               f"from their range, masks all True), random labels")


def run_forward(model: nn.Module, x: Fed) -> Any:
    if isinstance(x, torch.Tensor):
        return model(x)
    args, kwargs = x
    return model(*args, **kwargs)


def probe_loss(output: Any, y: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, str]:
    """(loss, its kind): cross-entropy on class logits (N, classes); on any other output the
    surrogate ``SURROGATE_LOSS``, so that the gradient by depth is still measured."""
    if isinstance(output, torch.Tensor) and output.dim() == 2 and \
            output.is_floating_point() and output.shape[0] == y.shape[0]:
        return F.cross_entropy(output, y % output.shape[1]), CROSS_ENTROPY
    tensor = _first_float_tensor(output)
    if tensor is None:
        raise InvalidRequest(f"the model's output ({type(output).__name__}) holds no floating "
                             f"tensor, so no loss can be taken from it")
    projection = torch.randn(tensor.shape[1:], generator=torch.Generator().manual_seed(seed))
    return (tensor.float() * projection.to(tensor.device)).sum() / tensor.shape[0], "surrogate"


def _first_float_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output if output.is_floating_point() and output.dim() >= 1 else None
    items = output.values() if isinstance(output, dict) else output \
        if isinstance(output, (tuple, list)) else ()
    return next((t for t in map(_first_float_tensor, items) if t is not None), None)


def input_channels(model: nn.Module, source: ModelSource) -> int:
    spec = getattr(model, "spec", None)
    return spec.in_channels if spec is not None else source.in_channels


def output_classes(model: nn.Module) -> int:
    """The classes a model predicts: the spec's, else the last linear layer's outputs."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.num_classes
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linear[-1].out_features if linear else 10


def measure_gradients(models: Iterable[str | nn.Module | ModelSource],
                      config: GradientConfig = GradientConfig(),
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
        return {"ratio": math.nan, "growth": math.nan, "loss": findings["loss"], **findings}
    first, last = block_rows[0]["join_grad_norm"], block_rows[-1]["join_grad_norm"]
    ratio = first / last if last else math.inf
    depth_span = (block_rows[-1]["depth"] - block_rows[0]["depth"]) or 1
    return {"ratio": ratio, "growth": ratio ** (1 / depth_span) if ratio > 0 else math.nan,
            "loss": findings["loss"], **findings}


def run_probe(model: nn.Module, x: Fed, y: torch.Tensor, seed: int = 0
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One forward/backward in train mode, recording block outputs and their gradients;
    the loss is cross-entropy on class logits, else the surrogate (``probe_loss``)."""
    with probing_blocks(model) as probe:
        loss, kind = probe_loss(run_forward(model, x), y, seed)
        if torch.isfinite(loss):
            loss.backward()
    return probe.rows(), {**probe.findings(loss), "loss_kind": kind}


class BlockProbe:
    """What the hooks of ``probing_blocks`` saw in one forward and backward: each block output's
    std and gradient norm, each join's gradient and variance ratio, the first non-finite
    values."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.blocks = block_modules(model)
        self.grads: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self.grad_order: list[str] = []
        self.nonfinite_forward: list[str] = []
        self.nonfinite_grad: list[str] = []
        self.joins: dict[str, dict[str, float]] = {}

    def install(self, session) -> None:
        for name, module in self.model.named_modules():
            if name and is_leaf(module):
                session.add(module.register_forward_hook(
                    _finite_hook(name, self.nonfinite_forward)))
        for name, block in self.blocks.items():  # a plain twin's blocks are output markers
            session.add(block.register_forward_hook(_block_hook(
                name, self.grads, self.stds, self.grad_order, self.nonfinite_grad)))
        for name, block in self.blocks.items():
            if isinstance(block, _Block):  # elsewhere the block output stands for the join
                _watch_join(session, name, block, self.joins.setdefault(name, {}))

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for name in self.blocks:
            info = _layer_info(self.model)[name]
            join = self.joins.get(name, {})
            rows.append({"block": name, "stage": info.stage,
                         "depth": block_depth(cast(ResNet, self.model), name),
                         "act_grad_norm": self.grads.get(name, math.nan),
                         "act_std": self.stds.get(name),
                         "join_grad_norm": join.get("grad_norm",
                                                    self.grads.get(name, math.nan)),
                         "variance_ratio": join.get("variance_ratio", math.nan)})
        return rows

    def findings(self, loss: torch.Tensor) -> dict[str, Any]:
        findings = {
            "loss": loss.item(),
            "first_nonfinite_forward": (self.nonfinite_forward[0] if self.nonfinite_forward
                                        else None),
            "first_nonfinite_gradient": self.nonfinite_grad[0] if self.nonfinite_grad else None,
        }
        if findings["first_nonfinite_gradient"] is None and not torch.isfinite(loss):
            findings["first_nonfinite_gradient"] = "(loss)"
        return findings


@contextlib.contextmanager
def probing_blocks(model: nn.Module) -> Iterator[BlockProbe]:
    """Hooks on every block for the forward and backward run inside (train mode, in-place
    ReLUs out of place: values are unchanged); removed and the mode restored afterwards."""
    probe = BlockProbe(model)
    with hooked(model, train=True, install=probe.install):
        yield probe


def first_last_ratio(rows: list[dict[str, Any]]) -> float:
    """||dL/ds|| at the first block's join over the last block's."""
    first, last = rows[0]["join_grad_norm"], rows[-1]["join_grad_norm"]
    return first / last if last else math.inf


def _layer_info(model: nn.Module) -> dict[str, Any]:
    """The per-module facts the zoo and surgery record on a built model (``layer_info``)."""
    return cast(dict[str, Any], model.layer_info)


def block_depth(model: ResNet, block: str) -> int:
    """The depth of a block's output: that of its deepest weighted layer."""
    return max(v.depth for k, v in model.layer_info.items()
               if k.startswith(block + ".") and v.depth is not None)


def _block_hook(name, grads, stds, order, nonfinite):
    def hook(module, args, output):
        stds[name] = output.detach().float().std().item()
        if output.requires_grad:
            def on_grad(grad):
                grads[name] = grad.detach().float().norm().item()
                order.append(name)
                if not torch.isfinite(grad).all():
                    nonfinite.append(name)
            output.register_hook(on_grad)
    return hook


def _watch_join(session, name: str, block: Any, record: dict[str, float]) -> None:
    """The block's join, where shortcut and branch meet: the gradient at the sum before the
    block's last ReLU (the block output for pre-activation blocks, whose sum is last), and
    the branch-to-stream variance Var F(x) / Var x of De & Smith (2020); for a block without
    a shortcut, Var out / Var in. Through an identity block the gradient at the join passes
    unchanged, which the within-stage ratios rest on."""
    seen: dict[str, torch.Tensor] = {}

    def remember(key):
        def hook(module, args, output):
            seen[key] = args[0] if key == "relu_input" else output
        return hook

    def after_block(module, args, output):
        join = output if module.preact else seen["relu_input"]
        stream = args[0].detach().float().var().item()
        measured = seen["branch"] if module.residual else output
        record["variance_ratio"] = (measured.detach().float().var().item() / stream
                                    if stream else math.nan)
        if join.requires_grad:
            join.register_hook(
                lambda grad: record.__setitem__("grad_norm", grad.detach().float().norm().item()))

    session.add(block.relu.register_forward_hook(remember("relu_input")))
    session.add(block.branch_end.register_forward_hook(remember("branch")))
    session.add(block.register_forward_hook(after_block))


def _finite_hook(name, found):
    def hook(module, args, output):
        if not found and not torch.isfinite(output).all():
            found.append(name)
    return hook


def growth_fits(depths: list[float], norms: list[float]) -> dict[str, Any]:
    """Fit ||dL/ds|| against depth l (weighted layers from the input) two ways, each a
    straight line in log space with two parameters, so their R² (of log g) compare directly:

    * exponential, log g = a - l log r: a constant factor r per layer toward the input, what
      plain BN-ReLU stacks show;
    * power law, log g = a - k log l: g ~ l^-k, growth concentrated in the first layers, what
      residual nets show when each block adds a shrinking share to the stream's variance.

    ``exp_rate_per_layer`` is r (above 1: growing toward the input); ``power_exponent`` is k.
    """
    points = [(d, g) for d, g in zip(depths, norms, strict=True)
              if math.isfinite(g) and g > 0 and d > 0]
    if len({d for d, _ in points}) < 3:
        return {"exp_rate_per_layer": math.nan, "exp_r2": math.nan, "power_exponent": math.nan,
                "power_r2": math.nan, "better_fit": None}
    depth = np.array([d for d, _ in points], dtype=float)
    log_norm = np.log([g for _, g in points])
    exponential = scipy_stats.linregress(depth, log_norm)
    power = scipy_stats.linregress(np.log(depth), log_norm)
    exp_r2, power_r2 = exponential.rvalue ** 2, power.rvalue ** 2
    return {"exp_rate_per_layer": float(np.exp(-exponential.slope)), "exp_r2": float(exp_r2),
            "power_exponent": float(-power.slope), "power_r2": float(power_r2),
            "better_fit": "exponential" if exp_r2 > power_r2 else "power law"}


def fit_comparison(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Which shape fits ||dL/ds|| against depth better, decided over seeds: per seed, the power
    law's R² minus the exponential's, with its t interval (resnet_probe.stats). ``better_fit``
    is the power law or the exponential when the interval excludes zero, else "neither"."""
    per_seed = {}
    for seed in sorted({r["seed"] for r in blocks}):
        rows = [r for r in blocks if r["seed"] == seed]
        seed_fits = growth_fits([r["depth"] for r in rows], [r["join_grad_norm"] for r in rows])
        if math.isfinite(seed_fits["power_r2"]) and math.isfinite(seed_fits["exp_r2"]):
            per_seed[seed] = seed_fits["power_r2"] - seed_fits["exp_r2"]
    estimate = seed_estimate("power R² - exponential R²", per_seed)
    better = ("power law" if estimate.above_zero else "exponential" if estimate.below_zero
              else "neither" if per_seed else None)
    return {"r2_power_minus_exp": estimate.estimate,
            "r2_power_minus_exp_ci95_low": estimate.low,
            "r2_power_minus_exp_ci95_high": estimate.high, "better_fit": better}


def within_stage_ratios(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, seed and stage: the join gradient at the stage's first block over its last,
    so the growth inside stages is seen apart from what stage transitions (option A's zero
    padding, projections) do to the whole-net ratio (1 for identity blocks); and
    ``rate_per_layer``, the stage's own exponential fit (``stage_rate``) over its ``layers``
    (the depth from its first block's output to its last's)."""
    rows = []
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for row in blocks:
        keyed.setdefault((row["model"], row["seed"], row["stage"]), []).append(row)
    for (model, seed, stage), members in keyed.items():
        members = sorted(members, key=lambda r: r["depth"])
        first, last = members[0]["join_grad_norm"], members[-1]["join_grad_norm"]
        rows.append({"model": model, "seed": seed, "stage": stage, "blocks": len(members),
                     "within_stage_ratio": first / last if last else math.nan,
                     "layers": members[-1]["depth"] - members[0]["depth"],
                     "rate_per_layer": stage_rate([r["depth"] for r in members],
                                                  [r["join_grad_norm"] for r in members])})
    return rows


def stage_rate(depths: list[float], norms: list[float]) -> float:
    """r in ||dL/ds|| ~ r^-l within one stage: exp(-slope) of the least-squares line of
    log ||dL/ds|| against depth l (above 1: growing toward the input). A projection
    shortcut's BN resets the stream at each stage, so the curve of a whole net is a sawtooth
    and one line across stages fits neither its teeth nor its resets; NaN with fewer than two
    depths."""
    points = [(d, g) for d, g in zip(depths, norms, strict=True)
              if d is not None and math.isfinite(g) and g > 0]
    if len({d for d, _ in points}) < 2:
        return math.nan
    slope = np.polyfit([d for d, _ in points], np.log([g for _, g in points]), 1)[0]
    return float(np.exp(-slope))


def stage_rates(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and stage (network order), over seeds: ``rate_per_layer``, the mean of the
    per-seed rates with its 95% interval on the log scale (a rate cannot be negative:
    ``resnet_probe.stats.positive_mean_interval``), ``rate_ci95_low`` / ``rate_ci95_high``,
    ``layers``, ``blocks`` and ``seeds``. Stages of one block have no rate and no row."""
    keyed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in stages:
        if row.get("rate_per_layer") is not None and math.isfinite(row["rate_per_layer"]):
            keyed.setdefault((row["model"], row["stage"]), []).append(row)
    rows = []
    for (model, stage), members in keyed.items():
        interval = positive_mean_interval([r["rate_per_layer"] for r in members])
        rows.append({"model": model, "stage": stage, "blocks": members[0]["blocks"],
                     "layers": members[0]["layers"], "seeds": len(members),
                     "rate_per_layer": interval.estimate, "rate_ci95_low": interval.low,
                     "rate_ci95_high": interval.high})
    return rows


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


SHATTER_LAGS = (0, 1, 2, 4, 8, 16, 32, 64, 128)
SHATTERING_METHOD = (
    "Balduzzi-style (after Balduzzi et al. 2017): the input moves along a line of N points "
    "between two digits; for a random projection of a block's output, the gradient with respect "
    "to the input image is taken at every point, and the correlation of the gradients at points "
    "`lag` apart is averaged along the line. It differs from the paper's experiment, which "
    "feeds a scalar to fully-connected nets and correlates df/dx along that 1-D input: here "
    "the input is an image and each gradient a vector of pixels. BN statistics are fixed from "
    "a batch of 64 training digits (eval mode), so each point's gradient depends on that point "
    "alone, as in the paper's nets without BN; in train mode the grid would be one BN batch "
    "whose points' gradients depend on each other. Samples are the (seed, projection) pairs.")


def shattering(source: ModelSource | str, config: GradientConfig) -> list[dict[str, Any]]:
    """Per block at the end of each stage and per lag: the mean correlation of input
    gradients ``lag`` points apart and its spread over (seed, projection) samples (see
    SHATTERING_METHOD). Lag 0 is 1 by definition; white-noise gradients give 0 elsewhere."""
    source = resolve(source)
    name = source.text
    samples: dict[tuple[str, int], list[float]] = {}
    places: dict[str, tuple[str, int]] = {}
    for seed in config.seeds:
        for block, stage, depth, grads in grid_gradients(source, seed, config):
            places[block] = (stage, depth)
            for lag in SHATTER_LAGS:
                if lag < grads.shape[1]:
                    samples.setdefault((block, lag), []).extend(
                        lag_correlation(g, lag) for g in grads)
    rows = []
    for (block, lag), values in samples.items():
        stage, depth = places[block]
        rows.append({"model": name, "block": block, "stage": stage, "depth": depth,
                     "lag": lag, "correlation": statistics.fmean(values),
                     "correlation_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "samples": len(values), "points": config.shatter_points,
                     "bn": "fixed from a data batch"})
    return rows


def grid_gradients(source: ModelSource, seed: int, config: GradientConfig,
                   points: torch.Tensor | None = None):
    """(block, stage, depth, gradients [projections x points x input size]) for the last block
    of each stage. ``points`` overrides the line (tests feed a subset of it)."""
    setting_ = probe_setting(source, config)
    torch.manual_seed(seed)
    model = setting_.build(source)
    x = _images(make_batch(model, config, seed, source, setting_.size, batch_size=2)[0])
    if points is None:
        t = torch.linspace(0, 1, config.shatter_points).view(-1, 1, 1, 1)
        points = (1 - t) * x[0:1] + t * x[1:2]
    fix_bn_statistics(model, _images(make_batch(model, config, seed + 1, source,
                                                setting_.size,
                                                batch_size=BN_STATISTICS_IMAGES)[0]))
    line = points.clone().requires_grad_(True)
    blocks = block_modules(model)
    stage_ends: dict[str, str] = {}
    for block_name in blocks:
        stage_ends[_layer_info(model)[block_name].stage] = block_name
    watched = {block: blocks[block] for block in stage_ends.values()}
    outputs: dict[str, torch.Tensor] = {}

    def install(session) -> None:
        for block_name, module in watched.items():
            session.add(module.register_forward_hook(
                lambda m, a, out, block_name=block_name: outputs.__setitem__(block_name, out)))

    generator = torch.Generator().manual_seed(seed)
    with hooked(model, train=False, install=install):
        model(line)
        names = list(watched)
        for index, block_name in enumerate(names):
            out = outputs[block_name]
            grads = []
            for projection_index in range(config.shatter_projections):
                projection = torch.randn(out.shape[1:], generator=generator)
                last = (index == len(names) - 1
                        and projection_index == config.shatter_projections - 1)
                (grad,) = torch.autograd.grad((out * projection).sum(), line,
                                              retain_graph=not last)
                grads.append(grad.flatten(1))
            depth = block_depth(cast(ResNet, model), block_name)
            yield (block_name, _layer_info(model)[block_name].stage, depth,
                   torch.stack(grads))


def _images(batch: Fed) -> torch.Tensor:
    """The image batch shattering moves along (measure_gradients skips it for a model fed
    --input tensors)."""
    if not isinstance(batch, torch.Tensor):
        raise InvalidRequest("shattering moves along a line between two images; this model "
                             "is fed --input tensors")
    return batch


def fix_bn_statistics(model: nn.Module, batch: torch.Tensor) -> None:
    """Set every BN's running statistics to ``batch``'s (a cumulative average over one
    forward, so exactly that batch's), leaving the weights untouched."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        with in_mode(model, training=True), torch.no_grad():
            model(batch)
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def lag_correlation(gradients: torch.Tensor, lag: int) -> float:
    """Mean Pearson correlation between the gradients at grid points ``lag`` apart
    (``gradients``: points x input size)."""
    centered = gradients - gradients.mean(dim=1, keepdim=True)
    unit = centered / centered.norm(dim=1, keepdim=True).clamp_min(1e-30)
    if lag == 0:
        return (unit * unit).sum(dim=1).mean().item()
    return (unit[:-lag] * unit[lag:]).sum(dim=1).mean().item()
