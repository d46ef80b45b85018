"""One context manager for every measurement that hooks a model.

As torchinfo does around its forward pass: remember ``model.training``, make in-place ReLUs
out-of-place (full backward hooks reject in-place outputs), and in ``finally`` remove every hook
and restore both, even when the forward raises. A failing forward is re-raised naming the last
module it entered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def is_leaf(module: nn.Module) -> bool:
    """A module with no children: what per-layer measurements time, count and hook."""
    return next(module.children(), None) is None


class ForwardFailed(RuntimeError):
    """The model raised inside a measured pass; names the module reached."""


class HookSession:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.handles: list[RemovableHandle] = []
        self.last_entered: str | None = None

    def add(self, handle: RemovableHandle) -> None:
        self.handles.append(handle)

    def leaves(self) -> list[tuple[str, nn.Module]]:
        return [(name, module) for name, module in self.model.named_modules()
                if name and is_leaf(module)]


@contextlib.contextmanager
def hooked(model: nn.Module, train: bool = False,
           install: Callable[[HookSession], Any] | None = None) -> Iterator[HookSession]:
    """Put ``model`` in the given mode with hooks installed by ``install``; undo it all after."""
    was_training = model.training
    inplace = {m: m.inplace for m in model.modules() if isinstance(m, nn.ReLU)}
    session = HookSession(model)
    try:
        for module in inplace:
            module.inplace = False
        model.train(train)
        for name, module in model.named_modules():
            session.add(module.register_forward_pre_hook(_tracker(session, name)))
        if install is not None:
            install(session)
        try:
            yield session
        except torch.cuda.OutOfMemoryError:
            raise  # callers handle OOM themselves (report it, keep the rows measured so far)
        except Exception as error:
            if session.last_entered is not None and not isinstance(error, ForwardFailed):
                where = session.last_entered or "(model)"
                raise ForwardFailed(f"forward failed in module {where!r}: {error}") from error
            raise
    finally:
        for handle in session.handles:
            handle.remove()
        for module, value in inplace.items():
            module.inplace = value
        model.train(was_training)


def _tracker(session: HookSession, name: str):
    def hook(module, args):
        session.last_entered = name
    return hook
