"""What the gradient probe is asked and what it returns: ``GradientConfig`` (its settings),
``ProbeSetting`` (the net a probe builds and the input size it feeds, from the config and the
model) and ``GradientResult`` (the plain rows every part of the probe appends to)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from resnet_probe.data import load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.settings import INPUT_SIZE, check_settings, setting
from resnet_probe.sources import ModelSource, SourceError, WeightsMismatch

INPUTS = ("data", "random")
HEADS = ("trained", "imagenet")


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


GRADIENT_DEFAULTS = GradientConfig()  # measure_gradients' default (one frozen instance)


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
