"""Residual structure of any traceable network, and its plain twin, by graph surgery (torch.fx).

One concept per module:

* ``tracing``: the model traced with fx, modules that own no residual add kept whole, timm's
  untraceable modules kept whole unless they hold an add;
* ``adds``: which adds are residual shortcuts (found by what is added to the branch at the
  join, whatever module holds it) and why the others are not;
* ``twin``: the plain twin, checked after surgery, refused or labelled partial when it cannot
  be made plain, with a ``TwinReport`` of what it removed and kept;
* ``structure``: blocks and stages of a foreign model, and the markers of block outputs;
* ``lesion``: blocks deleted from the graph;
* ``examples``: example inputs as a tensor, a tuple or a dict.
"""

from resnet_probe.sources.surgery.adds import (
    ADD_FUNCTIONS,
    ADD_METHODS,
    WEIGHTED,
    KeptAdd,
    ResidualAdd,
    residual_adds,
)
from resnet_probe.sources.surgery.examples import Example
from resnet_probe.sources.surgery.lesion import deletable_blocks, lesioned_graph
from resnet_probe.sources.surgery.structure import (
    BLOCK_OUTPUT,
    BlockOutput,
    block_modules,
    discover_structure,
    has_shortcuts,
)
from resnet_probe.sources.surgery.tracing import SurgeryError, trace, trace_with_blocks, traced
from resnet_probe.sources.surgery.twin import (
    LAYER_SCALE_BELOW,
    Concatenation,
    DeadTwinWarning,
    TwinProblem,
    TwinReport,
    plain_twin,
    unit_branches,
)

__all__ = [
    "ADD_FUNCTIONS", "ADD_METHODS", "BLOCK_OUTPUT", "LAYER_SCALE_BELOW", "WEIGHTED",
    "BlockOutput", "Concatenation", "DeadTwinWarning", "Example", "KeptAdd", "ResidualAdd",
    "SurgeryError", "TwinProblem", "TwinReport", "block_modules", "deletable_blocks",
    "discover_structure", "has_shortcuts", "lesioned_graph",
    "plain_twin", "residual_adds", "trace", "trace_with_blocks", "traced", "unit_branches",
]
