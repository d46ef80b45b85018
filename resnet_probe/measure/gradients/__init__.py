"""Gradient norms and signal propagation at each depth, at initialization.

Measurement semantics. For each seed a freshly initialized model (BN in train mode, as in the
first training step) takes one batch and a cross-entropy loss, then one backward pass. A model
whose output is not class logits (N, classes), such as a U-Net's per-pixel map, takes a stated
surrogate loss instead (``batch.SURROGATE_LOSS``), named in the rows and the notes. A model fed
``--input`` tensors (token ids and a mask, ...) is probed on those, drawn at the probe's batch
size, with random labels; shattering, which moves along a line between two images, is then
skipped and said so. Across seeds, results are mean and std. A non-finite loss or gradient is a
finding, not a crash: where it first appeared is reported.

Where each part lives (each module states its own conventions):

* ``config``: ``GradientConfig``, ``GradientResult`` and ``ProbeSetting``, the net and input
  size a probe uses;
* ``batch``: the batch a probe feeds and its loss (``make_batch``, ``probe_loss``);
* ``block_probe``: one forward and backward seen through hooks on every block
  (``run_probe``, ``probing_blocks``) and per weighted layer (``layer_grad_norms``);
* ``fits``: how the gradient grows with depth (``first_last_ratio``, ``growth_fits``,
  ``within_stage_ratios``, ``stage_rates``);
* ``shattered_gradients``: Balduzzi et al.'s shattering on a line of images (``shattering``);
* ``probe``: ``measure_gradients``, all of the above over every model and seed.
"""

from resnet_probe.measure.gradients.batch import make_batch, probe_loss
from resnet_probe.measure.gradients.block_probe import (
    BlockProbe,
    layer_grad_norms,
    probing_blocks,
    run_probe,
    weighted_layers,
)
from resnet_probe.measure.gradients.config import (
    GradientConfig,
    GradientResult,
    ProbeSetting,
    probe_setting,
)
from resnet_probe.measure.gradients.fits import (
    first_last_ratio,
    growth_fits,
    stage_rates,
    within_stage_ratios,
)
from resnet_probe.measure.gradients.probe import measure_gradients
from resnet_probe.measure.gradients.shattered_gradients import (
    SHATTERING_METHOD,
    grid_gradients,
    lag_correlation,
    shattering,
)

__all__ = [
    "SHATTERING_METHOD", "BlockProbe", "GradientConfig", "GradientResult", "ProbeSetting",
    "first_last_ratio", "grid_gradients", "growth_fits", "lag_correlation", "layer_grad_norms",
    "make_batch", "measure_gradients", "probe_loss", "probe_setting", "probing_blocks",
    "run_probe", "shattering", "stage_rates", "weighted_layers", "within_stage_ratios",
]
