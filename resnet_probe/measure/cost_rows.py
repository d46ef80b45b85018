"""The rows of one count: a row per module, with the work of its own forward code in every
convention, and a row per aten operator.

A module's row holds what ``measure.attribution`` charges it: each operator once, to the
innermost module running it (its backward to the module whose forward made it). So rows are
never negative and sum to the model's total; a child that also runs outside its parent (a
``Sequential``'s layer called again on its own) has all its calls on its own row. A module
gets a row when it holds parameters or buffers of its own, is a leaf, or its own forward code
does work (a ViT's class token lives on the root). A parameter shared by several modules is
counted once, on the first.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from resnet_probe.measure.attribution import own_counts
from resnet_probe.measure.count_method import Counted
from resnet_probe.measure.formulas import ELEMENTWISE_OPS, MATMUL_CONV_OPS
from resnet_probe.measure.hooks import is_leaf


def conv_linear_flops(ops: dict[str, int]) -> int:
    """FLOPs of the conv and linear operators among ``ops`` (2 per MAC)."""
    return sum(value for op, value in ops.items() if op in MATMUL_CONV_OPS)


def module_rows(model: nn.Module, counted: Counted, engine: str,
                layer_info: dict | None = None) -> list[dict[str, Any]]:
    """One row per module (see the module docstring); ``layer_info`` places it in its block
    and stage. Backward FLOPs are per module where the count attributed them (the shape pass,
    and dispatch by autograd node); None where it did not (fvcore) or could not run."""
    modules = dict(model.named_modules())
    names = list(modules)
    own_forward = own_counts(names, counted.forward)
    own_fvcore = own_counts(names, counted.fvcore) if counted.fvcore is not None else {}
    by_module = counted.backward_by_module and counted.backward_counted
    own_backward = own_counts(names, counted.backward) if by_module else {}
    where = layer_info if layer_info is not None else getattr(model, "layer_info", {}) or {}
    seen: set[int] = set()
    rows = []
    for name, module in modules.items():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        ops = own_forward.get(name, {})
        holds = bool(own) or any(True for _ in module.buffers(recurse=False))
        leaf = is_leaf(module)
        if not leaf and not ops and not holds:
            continue
        info = where.get(name)
        conv_linear = conv_linear_flops(ops) // 2
        with_elementwise: int | None
        backward_flops: int | None
        if engine == "torch":
            fvcore_default = conv_linear + sum(own_fvcore.get(name, {}).values())
            with_elementwise = conv_linear + sum(v for op, v in ops.items()
                                                 if op in ELEMENTWISE_OPS)
            backward_flops = (conv_linear_flops(own_backward.get(name, {}))
                              if by_module else None)
        else:  # fvcore's own rows: its extra operators are recorded as "fvcore.<op>"
            fvcore_default = conv_linear + sum(v for op, v in ops.items()
                                               if op.startswith("fvcore."))
            with_elementwise = backward_flops = None
        rows.append({
            "module": name or "(model)",
            "type": type(module).__name__ + ("" if leaf else " (own forward code)"),
            "stage": info.stage if info else None,
            "block": info.block_name if info else None,
            "depth": info.depth if info else None,
            "role": info.role if info else None,
            "params": sum(p.numel() for p in own),
            "trainable_params": sum(p.numel() for p in own if p.requires_grad),
            "macs": conv_linear,
            "flops": 2 * conv_linear,
            "macs_with_elementwise": with_elementwise,
            "macs_fvcore_default": fvcore_default,
            "backward_flops": backward_flops,
        })
    return rows


def operator_rows(label: str, counted: Counted) -> list[dict[str, Any]]:
    """The model's total per aten operator, forward and (where counted) backward."""
    rows = []
    for direction, counts in (("forward", counted.forward), ("backward", counted.backward)):
        for op, value in sorted(counts.get("", {}).items()):
            if not value:
                continue
            if op in MATMUL_CONV_OPS:
                kind, macs, flops = "conv/linear", value // 2, value
            else:
                kind, macs, flops = "elementwise", value, None
            rows.append({"model": label, "direction": direction, "operator": op,
                         "kind": kind, "macs": macs, "flops": flops})
    return rows
