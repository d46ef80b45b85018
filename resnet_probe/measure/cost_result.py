"""What a count returns: ``CostResult``, the model's totals in every convention made from its
rows, what was not counted, and the memory columns added to it.

A total is the sum of the module rows (``measure.cost_rows``), so every view's totals agree;
a column the engine does not measure is None, never a silent zero. An operator that ran with
no formula in any convention is listed with its calls in ``uncounted_operators`` and marks
the count ``partial``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resnet_probe.measure.cost_rows import conv_linear_flops
from resnet_probe.measure.count_method import Counted
from resnet_probe.measure.formulas import DATA_MOVEMENT, ELEMENTWISE_OPS, MATMUL_CONV_OPS
from resnet_probe.measure.memory import MEMORY_COLUMNS, memory_rows


@dataclass
class CostResult:
    """Plain rows; ``results.costs_frames`` turns them into DataFrames. ``notes`` say how the
    count was made where it was not the fast path (a CPU build, a count at full size)."""

    summary: dict[str, Any]
    modules: list[dict[str, Any]] = field(default_factory=list)
    operators: list[dict[str, Any]] = field(default_factory=list)
    uncounted: dict[str, int] = field(default_factory=dict)  # operator -> calls, no formula
    memory: list[dict[str, Any]] = field(default_factory=list)  # bytes, per module and total
    notes: list[str] = field(default_factory=list)


def uncounted_calls(calls: Counter) -> dict[str, int]:
    """The operators that ran with no formula in any convention, with their call counts."""
    return {op: n for op, n in sorted(calls.items())
            if op not in MATMUL_CONV_OPS | ELEMENTWISE_OPS | DATA_MOVEMENT}


def summary_totals(modules: list[dict[str, Any]], counted: Counted) -> dict[str, Any]:
    """Model totals from the rows (backward from the model's own entry: rows may not carry
    it), and what was not counted: each operator with no formula, with how often it ran,
    marking convention (b) partial."""
    uncounted = uncounted_calls(counted.calls)
    totals = {key: _column_total(modules, key)
              for key in ("params", "trainable_params", "macs", "flops",
                          "macs_with_elementwise", "macs_fvcore_default")}
    backward_total = (conv_linear_flops(counted.backward.get("", {}))
                      if counted.backward_counted else None)
    return {**totals, "backward_flops": backward_total,
            "backward_to_forward": (backward_total / totals["flops"]
                                    if backward_total and totals["flops"] else None),
            "partial": bool(uncounted),
            "uncounted_operators": ";".join(f"{op} x{n}" for op, n in uncounted.items())}


def _column_total(rows: list[dict[str, Any]], key: str) -> int | None:
    """None when the engine does not measure the column, rather than a silent zero."""
    values = [row[key] for row in rows]
    return None if any(v is None for v in values) else sum(values)


def idle_parameters(model: nn.Module, called: frozenset[str] | None,
                    read_by: dict[str, str] | None = None) -> list[str]:
    """Notes on modules holding parameters whose forward never ran in the counted pass.
    Those a running parent read itself (``read_by``: nn.MultiheadAttention calls its
    out_proj's weights through a functional call) are counted inside that parent, and said
    so; the others (googlenet's auxiliary classifiers in eval mode) are in params but do no
    work here."""
    if called is None:
        return []
    read_by = read_by or {}
    idle = [(name, module) for name, module in model.named_modules()
            if name and name not in called  # nor any module inside it (a ModuleList)
            and not any(c.startswith(f"{name}.") for c in called)
            and any(True for _ in module.parameters())]
    top = [(n, m) for n, m in idle if not any(n.startswith(f"{o}.") for o, _ in idle)]
    inside: dict[str, list[tuple[str, int]]] = {}  # reading module -> (child, params)
    unused = []
    for name, module in top:
        readers = {read_by.get(f"{name}.{p}") for p, _ in module.named_parameters()}
        count = sum(p.numel() for p in module.parameters())
        if len(readers) == 1 and None not in readers:
            inside.setdefault(readers.pop() or "", []).append((name, count))
        else:
            unused.append((name, count))
    modules = dict(model.named_modules())
    notes = []
    for reader, children in inside.items():
        kind = type(modules[reader]).__name__ if reader in modules else "the model"
        notes.append(
            f"{sum(c for _, c in children):,} params of {', '.join(n for n, _ in children)} "
            f"are counted inside {kind} ({reader or 'the model'}): its forward reads their "
            f"weights itself instead of calling the module, so their work is on its row")
    if unused:
        notes.append(
            f"{sum(c for _, c in unused):,} params are in modules that did not run in this "
            f"forward ({', '.join(n for n, _ in unused[:6])}"
            f"{', ...' if len(unused) > 6 else ''}): they are counted in params and do no "
            f"work here")
    return notes


def add_memory(result: CostResult, model: nn.Module, args: tuple, kwargs: dict,
               real_model: Any = None) -> None:
    """The memory columns (``measure.memory``), per module and in the summary."""
    try:
        rows = memory_rows(model, args, kwargs, real_model=real_model)
        result.summary["memory_batch_size"] = result.summary.get("batch_size")
    except ValueError as error:
        if "more than 1 value per channel" not in str(error):
            raise
        # BatchNorm refuses a training step on one value per channel: a batch of 1 cannot
        # train this model, so its training memory is taken at batch 2 and said so.
        args, kwargs = _doubled_batch(args), _doubled_batch(kwargs)
        rows = memory_rows(model, args, kwargs, real_model=real_model)
        result.summary["memory_batch_size"] = 2
        result.notes.append("memory columns at batch 2: a training step at batch 1 fails "
                            "here (BatchNorm needs more than one value per channel)")
        result.summary["count_notes"] = "; ".join(result.notes)
    for row in rows:
        row["model"] = result.summary["model"]
    result.memory = rows
    total = rows[-1]
    result.summary.update({column: total.get(column) for column in MEMORY_COLUMNS})


def _doubled_batch(inputs: Any) -> Any:
    """Every tensor of batch 1 in ``inputs`` (a tuple or dict), repeated to batch 2."""
    def double(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == 1:
            return value.expand(2, *value.shape[1:])
        return value
    if isinstance(inputs, dict):
        return {key: double(value) for key, value in inputs.items()}
    return tuple(double(value) for value in inputs)
