"""Example inputs for a traced graph, as fvcore and torchinfo take them: a tensor, a tuple of
positional tensors, or a dict of keyword tensors (a forward taking token ids and a mask)."""

from __future__ import annotations

from typing import Any, Union

import torch
import torch.fx as fx

Example = Union[torch.Tensor, tuple, list, dict]


def placeholder_arguments(graph_module: fx.GraphModule, example: Example) -> tuple[Any, ...]:
    """``example`` as the graph's placeholders take it, in order (a keyword input by its
    name; one the example leaves out takes the forward's default)."""
    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, (tuple, list)):
        return tuple(example)
    placeholders = [n for n in graph_module.graph.nodes if n.op == "placeholder"]
    arguments = []
    for node in placeholders:
        name = str(node.target).lstrip("*")
        if name in example:
            arguments.append(example[name])
        elif node.args:
            arguments.append(node.args[0])
        else:
            raise ValueError(f"the example inputs give no {name!r}: they name "
                             f"{', '.join(map(str, example))}")
    return tuple(arguments)


def probe_batch(example: Example) -> tuple[Example, bool]:
    """A batch of two inputs shaped like ``example`` (its batch dimension replaced), and
    whether they differ (a twin whose two outputs agree although its inputs differ is dead):
    floats drawn from N(0, 1) with seeds 0 and 1, integers from the range the example's own
    values span, and booleans as the example's first item."""
    differ = False

    def two(tensor: Any, seed: int) -> Any:
        nonlocal differ
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            return tensor
        shape = (2, *tensor.shape[1:])
        if tensor.is_meta:
            return torch.empty(shape, dtype=tensor.dtype, device="meta")
        if tensor.dtype.is_floating_point:
            differ = True
            rows = [torch.randn(shape[1:], generator=torch.Generator().manual_seed(seed + i))
                    for i in range(2)]
            return torch.stack(rows).to(tensor.dtype)
        if tensor.dtype is not torch.bool and tensor.numel():
            low, high = int(tensor.min()), int(tensor.max()) + 1
            if high - low > 1:
                differ = True
                return torch.randint(low, high, shape, dtype=tensor.dtype,
                                     generator=torch.Generator().manual_seed(seed))
        return tensor[:1].expand(shape).clone()

    if isinstance(example, torch.Tensor):
        return two(example, 0), differ
    if isinstance(example, (tuple, list)):
        return tuple(two(t, 2 * i) for i, t in enumerate(example)), differ
    return {k: two(t, 2 * i) for i, (k, t) in enumerate(example.items())}, differ


def is_meta(example: Example) -> bool:
    values = example.values() if isinstance(example, dict) else (
        example if isinstance(example, (tuple, list)) else (example,))
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in values)
