"""Which module an operator's count belongs to.

The attribution rule. Every operator is charged once, to one module. A forward operator goes
to the innermost module whose forward is running when it is dispatched; a module that calls
itself (``self(...)``) or is entered again while it runs is still one module, so its work is
counted once. A backward operator goes to the module whose forward made the autograd node
that runs it. A module's *own* count is what it was charged: the work of its own forward
code. Own counts are never negative, and they sum to the model's total.

A module's *nested* count is its own plus that of every module below it by name, and "" (the
model) holds everything. For a net whose modules run only inside their parents this is what
``FlopCounterMode`` reports per module. Where a child also runs outside its parent (a
``Sequential``'s first layer called again on its own), all of that child's calls are on its
own row and under its parent's name, while ``FlopCounterMode`` charges the parent only the
calls made inside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

Counts = dict[str, dict[str, int]]  # module name -> aten operator -> count


def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def nested_counts(own: Counts) -> Counts:
    """Each module's own counts plus those of every module below it ("" holds all)."""
    nested: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, ops in own.items():
        if not any(ops.values()):
            continue
        holders = [name]
        while name:
            name = _parent(name)
            holders.append(name)
        for holder in holders:
            for op, value in ops.items():
                nested[holder][op] += value
    return {name: {op: v for op, v in ops.items() if v} for name, ops in nested.items()}


def own_counts(names: Iterable[str], nested: Counts) -> Counts:
    """The inverse of ``nested_counts``: a module's nested counts minus its direct
    children's, for every module in ``names``."""
    own: dict[str, dict[str, int]] = {name: defaultdict(int, nested.get(name, {}))
                                      for name in names}
    for name, ops in nested.items():
        if not name:
            continue
        parent = own.setdefault(_parent(name), defaultdict(int))
        for op, value in ops.items():
            parent[op] -= value
    return {name: {op: v for op, v in ops.items() if v} for name, ops in own.items()}
