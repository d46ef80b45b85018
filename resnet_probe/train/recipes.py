"""The training recipes, with the seeds each was chosen on: one home below every job and
analysis that trains, so none of them imports another to find a recipe.

A recipe's *tuning seeds* are the seeds it was chosen looking at; its *held-out seeds* were
first run after it was frozen, and reports state their verdicts on those.
"""

from __future__ import annotations

from typing import Any

from resnet_probe.errors import InvalidRequest
from resnet_probe.train.interventions import Intervention
from resnet_probe.train.loop import TrainConfig

# --- the degradation experiment (`resnet-probe degradation`) --------------------------------

# The default recipe (300 steps, warm-up, lr 0.1) was set looking at seeds 0, 1 and 2: those
# are its tuning seeds. Seeds 3, 4 and 5 were first run after it was frozen, and nothing has
# been tuned on them since: the default reports on them.
DEGRADATION_TUNING_SEEDS = (0, 1, 2)
DEGRADATION_SEEDS = (3, 4, 5)
DEGRADATION_STEPS = 300
# The causal test's intervention (resnet_probe.train.interventions) in this recipe: K steps.
DEGRADATION_INTERVENTION = Intervention(steps=20)
# The per-layer dynamics of the first steps, recorded on the runs themselves (the recipe's lr,
# momentum and warm-up), plus the last step.
RECORDED_STEPS = (0, 1, 2, 5, 10, 20, 50)


def degradation_recipe(steps: int | None = None, epochs: float | None = None,
                       train_size: int | None = None, **fields: Any) -> TrainConfig:
    """The degradation recipe for a budget in steps or epochs (default 300 steps); evaluation,
    gradient-norm logging and checkpoints scale with the budget. ``fields`` are TrainConfig's."""
    if steps is not None and epochs is not None:
        raise InvalidRequest(f"give a budget in steps or in epochs, not both: steps={steps}, "
                             f"epochs={epochs}")
    if epochs is not None:
        if train_size is None:
            raise ValueError("a budget in epochs needs the training set's size")
        batch_size = int(fields.get("batch_size", TrainConfig.batch_size))
        steps = max(1, round(epochs * train_size / batch_size))
    budget = DEGRADATION_STEPS if steps is None else steps
    fields.setdefault("record_steps", tuple(s for s in RECORDED_STEPS if s < budget))
    return TrainConfig(steps=budget, eval_every=max(1, budget // 10),
                       grad_norm_every=max(1, budget // 12),
                       checkpoint_every=max(1, budget // 10), **fields)


# --- the main job's training section (`resnet-probe compare`) --------------------------------

# Chosen on the tuning seeds COMPARE_TUNING_SEEDS only (benchmarks/tune_compare_recipe.py; every
# run is in benchmarks/tuning/compare_recipe.jsonl): the cheapest candidate under which every
# tuning seed's plain34 trained (final training error below 3/4 of chance). Held-out seeds that
# a candidate failed on became tuning seeds, and new ones were held out: seed 4 at 100 steps;
# then seeds 5-7 at 140 steps. Batch 64 is the cheapest per image on a 2-core CPU. Evaluation
# uses 512 training images; checkpoints are written only at the end (compare cannot resume;
# finished runs go to the run cache).
COMPARE_TRAIN = TrainConfig(steps=180, batch_size=64, lr=0.02, warmup_steps=10,
                            milestones=(0.75,), eval_every=180, grad_norm_every=45,
                            checkpoint_every=180, eval_images=512,
                            record_steps=(0, 1, 2, 5, 10, 20))
COMPARE_TUNING_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)  # every recipe choice was made looking at these
COMPARE_SEEDS = (8, 9, 10)  # held out: never run before the recipe was fixed; three for a verdict
COMPARE_INTERVENTION = Intervention(steps=20)  # the causal test's K steps
