"""Train/eval mode changed for a measurement and restored afterwards, module by module.

``model.train(flag)`` sets every submodule; a model whose submodules were in mixed modes (a
frozen BN inside a training net) would come back uniform. This restores each one as it was,
also when the measurement raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def in_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    modes = [(module, module.training) for module in model.modules()]
    for module, _ in modes:  # one loop: Module.train recurses with a call per module
        module.training = training
    try:
        yield model
    finally:
        for module, was_training in modes:
            module.training = was_training
