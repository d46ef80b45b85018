"""The independent count the tests hold resnet-probe's counters to: torch's own
``FlopCounterMode`` dispatching every operator of ``model(*args).sum().backward()`` in eval
mode, given the same formulas (``custom_mapping``) so that conventions (a) to (d) compare, and
every operator's calls recorded beside it."""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from resnet_probe.measure.formulas import ATTENTION_FORMULAS, FORMULAS


class _Calls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _by_module(counts) -> dict[str, dict[str, int]]:
    """FlopCounterMode names modules "ResNet.layer1.0.conv1"; use the state_dict-style name."""
    named = {}
    for key, ops in counts.items():
        if key == "Global":
            continue
        named[key.partition(".")[2]] = {str(op): int(value) for op, value in ops.items()}
    return named


def flop_counter_mode_counts(model: torch.nn.Module, *args, **kwargs):
    """(forward per module, backward per module, forward operator calls)."""
    was_training = model.training
    model.eval()
    recorder = _Calls()
    try:
        with FlopCounterMode(display=False,
                             custom_mapping={**FORMULAS, **ATTENTION_FORMULAS}) as counter:
            with recorder:
                out = model(*args, **kwargs)
            forward = _by_module(counter.get_flop_counts())
            wanted = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)
                      and t.requires_grad and t.is_floating_point()]
            if wanted:
                sum(t.float().sum() for t in wanted).backward()
        both = _by_module(counter.get_flop_counts())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    backward = {name: {op: value - forward.get(name, {}).get(op, 0)
                       for op, value in ops.items()} for name, ops in both.items()}
    return forward, backward, recorder.calls


def nonzero(counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {module: {op: v for op, v in ops.items() if v}
            for module, ops in counts.items() if any(ops.values())}
