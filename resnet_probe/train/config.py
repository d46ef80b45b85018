"""What a training run is asked to do: ``TrainConfig``, the recipe's settings and its learning-
rate schedule.

Defaults follow the paper's CIFAR recipe (SGD, momentum 0.9, lr 0.1, weight decay 1e-4, batch
128, lr divided by 10 at 50% and 75% of the budget) with the paper's ResNet-110 warm-up (lr 0.01
for the first steps), which short budgets need: without it resnet56's loss spikes at lr 0.1 and
it lags far enough to look like residual degradation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from resnet_probe.errors import InvalidRequest
from resnet_probe.settings import check_settings, setting
from resnet_probe.train.interventions import Intervention

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
