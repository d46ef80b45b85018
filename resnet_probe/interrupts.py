"""Ctrl-C and SIGTERM: what an interruption was, and blocks of work that finish before one
takes effect (the last write of a page, the bookkeeping after a finished run).

The CLI turns SIGTERM into ``Terminated`` (a KeyboardInterrupt), so every path that keeps
partial results on Ctrl-C keeps them on SIGTERM too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from types import FrameType

from resnet_probe.errors import Terminated


class Interruption(StrEnum):
    CTRL_C = "Ctrl-C"
    SIGTERM = "SIGTERM"

    @classmethod
    def of(cls, error: KeyboardInterrupt) -> Interruption:
        return cls.SIGTERM if isinstance(error, Terminated) else cls.CTRL_C

    def error(self) -> KeyboardInterrupt:
        return Terminated() if self is Interruption.SIGTERM else KeyboardInterrupt()


class Deferred:
    """The signal noted while a deferred block runs, if any."""

    def __init__(self) -> None:
        self.pending: Interruption | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        arrived = Interruption.SIGTERM if signum == signal.SIGTERM else Interruption.CTRL_C
        if self.pending is not None:  # a second signal: the user insists, stop at once
            raise arrived.error()
        self.pending = arrived


@contextlib.contextmanager
def signals_handled_by(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Ctrl-C and SIGTERM go to ``handler`` inside the block, and the previous handlers come
    back after it. Outside the main thread signals cannot arrive, so nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, restored in previous.items():
            signal.signal(sig, restored)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Deferred]:
    """Run the block to its end, then raise the Ctrl-C or SIGTERM that arrived during it (a
    second signal interrupts at once). Outside the main thread, signals cannot arrive here."""
    deferred = Deferred()
    with signals_handled_by(deferred.handle):
        yield deferred
    if deferred.pending is not None:
        raise deferred.pending.error()
