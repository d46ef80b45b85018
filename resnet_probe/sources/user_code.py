"""Running a user's code (importing a factory's module, the factory, the model's forward) so
that what it does wrong ends as a named error, never as a traceback or a lost process.

``user_code`` wraps ``containment.contained`` (stdout to stderr, process exits refused) and
turns what the code raises into a ``UserCodeError`` naming the source and the step it reached.
``forward_step`` (``sources.source``) does the same for a model fed its example input.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator

import torch

from resnet_probe.errors import InvalidRequest, UserCodeError
from resnet_probe.sources.containment import ProcessExitAttempt, contained


@contextlib.contextmanager
def user_code(source: str, step: str, failed: Callable[[str], str] | None = None
              ) -> Iterator[None]:
    """Run a user's code (a factory's module, the factory, its forward) contained: its
    writes to stdout, from Python or to file descriptor 1, go to stderr, and a call to
    ``os._exit``/``os.abort`` is refused (``containment``). An exception, ``sys.exit``, an
    exit call or a BaseException that is not an Exception (GeneratorExit, the code's own)
    becomes a UserCodeError naming ``source`` and ``step``, with the traceback kept for
    --debug. Our own errors, Ctrl-C and SIGTERM pass through. ``failed`` words an exception
    from the error's type and first line (default: the step failed)."""
    try:
        with contained() as exit_calls:
            yield
            if exit_calls:  # the code caught the refusal and carried on: still a failure
                raise ProcessExitAttempt(exit_calls[0])
    except (InvalidRequest, KeyboardInterrupt, torch.cuda.OutOfMemoryError):
        raise
    except SystemExit as error:
        raise UserCodeError(f"{source}: its code called sys.exit({error.code!r}) while "
                            f"{step}; resnet-probe stopped there",
                            traceback.format_exc()) from None
    except ProcessExitAttempt as error:
        raise UserCodeError(f"{source}: its code called {error.call} while {step}, which "
                            f"would end the process without a result; resnet-probe refused "
                            f"it and stopped there", traceback.format_exc(),
                            f"called {error.call}") from None
    except Exception as error:  # noqa: BLE001 - user code can raise anything
        reason = _reason(error)
        message = failed(reason) if failed is not None else \
            f"{source}: {step} failed ({reason}); --debug shows the traceback"
        raise UserCodeError(message, traceback.format_exc(), reason) from None
    except BaseException as error:  # noqa: BLE001 - GeneratorExit, a user's BaseException
        reason = _reason(error)
        raise UserCodeError(f"{source}: its code raised {reason} while {step} (a "
                            f"BaseException that is not an Exception); resnet-probe stopped "
                            f"there; --debug shows the traceback", traceback.format_exc(),
                            reason) from None


def _reason(error: BaseException) -> str:
    """An error's type and the first line of its message, e.g. "KeyError: 'x'"."""
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}{': ' + first if first else ''}"
