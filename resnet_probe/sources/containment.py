"""What a user's code (a factory, its module, its forward) may not do to the process running it.

``contextlib.redirect_stdout`` moves Python's ``print``; it cannot move what reaches file
descriptor 1 by other roads: ``os.write(1, ...)``, ``sys.__stdout__``, a C extension, a child
process. ``contained`` points descriptor 1 at stderr while the code runs, so nothing it writes
can land inside ``--format json|csv|markdown``; resnet-probe writes its results after, to the
restored descriptor. It also replaces ``os._exit`` and ``os.abort`` for the duration: a call
raises ``ProcessExitAttempt`` instead of ending the process, so a cost gate whose model tries
to exit fails with a named error instead of passing with status 0. A forked child (a data
loader's worker) still exits as it asks. Not covered: signals a process sends itself
(``os.kill(os.getpid(), SIGKILL)``) and threads the code leaves running.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

STDOUT = 1
STDERR = 2


class ProcessExitAttempt(BaseException):
    """A user's code called ``os._exit`` or ``os.abort``: a BaseException, like SystemExit,
    so that the code's own ``except Exception`` does not swallow it."""

    def __init__(self, call: str) -> None:
        super().__init__(call)
        self.call = call


@contextlib.contextmanager
def contained() -> Iterator[list[str]]:
    """Descriptor 1 to stderr and process exits refused, both restored after, also on error.
    Yields the list of exit calls attempted (the code may catch the exception it got)."""
    with _stdout_to_stderr(), _exits_refused() as attempts:
        yield attempts


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    _flush(sys.stdout, sys.__stdout__)  # what we wrote before belongs on the real stdout
    saved = _redirect(STDOUT, STDERR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        # What the code left in sys.__stdout__'s buffer goes out now, to stderr: flushed
        # later, it would land in the results.
        _flush(sys.stdout, sys.__stdout__)
        if saved is not None:
            os.dup2(saved, STDOUT)
            os.close(saved)


def _redirect(descriptor: int, target: int) -> int | None:
    """Point ``descriptor`` at ``target``; the saved original, or None where there is no
    descriptor to protect (a closed stdout) or nowhere to send it."""
    try:
        saved = os.dup(descriptor)
    except OSError:
        return None
    try:
        os.dup2(target, descriptor)
    except OSError:
        os.close(saved)
        return None
    return saved


def _flush(*streams: Any) -> None:
    for stream in streams:
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing left to protect
            pass


@contextlib.contextmanager
def _exits_refused() -> Iterator[list[str]]:
    owner = os.getpid()
    real_exit, real_abort = os._exit, os.abort
    attempts: list[str] = []

    def refused_exit(status: int) -> NoReturn:
        if os.getpid() != owner:  # a forked child of the code: let it end
            real_exit(status)
        attempts.append(f"os._exit({status!r})")
        raise ProcessExitAttempt(attempts[-1])

    def refused_abort() -> NoReturn:
        if os.getpid() != owner:
            real_abort()
        attempts.append("os.abort()")
        raise ProcessExitAttempt(attempts[-1])

    os._exit, os.abort = refused_exit, refused_abort
    try:
        yield attempts
    finally:
        os._exit, os.abort = real_exit, real_abort
