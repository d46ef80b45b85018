"""What every command shares: option decorators, parameter types, output, progress, and the
mapping from failures to exit codes (as pip-tools keeps its options in scripts/options.py).

Exit codes: 0 success; 1 a failed check (flops --check drift) or a problem the library reports
(a memory guard, a locked folder, a failed download); 2 a bad command line (click's usage
errors, an unknown model, a resume whose arguments differ), an unusable baseline (flops
--check), or a file read from elsewhere that is damaged, refused or not what it should hold
(a checkpoint, a run folder's tables, ``--weights``);
130 interrupted by Ctrl-C; 143 by SIGTERM.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
import shlex
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from resnet_probe.cache import CacheUnusableWarning
from resnet_probe.errors import InvalidRequest, Terminated
from resnet_probe.interrupts import Interruption

EXIT_CHECK_FAILED = 1
EXIT_BAD_BASELINE = 2  # the baseline file, or one of its entries, is unusable
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM
FORMATS = ("table", "csv", "json")
FORMATS_WITH_MARKDOWN = (*FORMATS, "markdown")
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
STDOUT_FD = 1
# Where results go: the real stdout, while the command (and the user code it runs) writes its
# own stdout to stderr, so nothing can corrupt --format json or csv.
_RESULTS: contextvars.ContextVar[Any] = contextvars.ContextVar("results", default=None)
DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("debug", default=False)


class ModelName(click.ParamType):
    """A MODEL as resnet_probe.sources resolves it (zoo name, spec text, torchvision:NAME,
    timm:NAME, FILE.py:factory, package.module:factory, plain:MODEL). The text is resolved
    once, by the job the command calls, with every option that shapes it (--in-channels,
    --input ...); an unknown name is refused there with close matches, exit 2."""

    name = "MODEL"

    def convert(self, value, param, ctx):
        if not str(value).strip():
            self.fail("a MODEL is a name such as resnet34, plain34, resnet50[groups=32] or "
                      "FILE.py:factory; got an empty text", param, ctx)
        return value


class IntList(click.ParamType):
    """Comma-separated distinct integers, e.g. 20,56, each at least ``minimum`` when one is
    given; an empty string is none. An empty item (``32,,64``) or a repeated value (``0,0``)
    is refused: a repeated seed would count one run twice."""

    name = "N,N,..."

    def __init__(self, minimum: int | None = None) -> None:
        self.minimum = minimum

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if not str(value).strip():
            return ()  # none given (an empty default)
        items = [item.strip() for item in str(value).split(",")]
        if not all(items):
            self.fail(f"an empty item in {value!r}; give comma-separated integers such as "
                      f"20,56", param, ctx)
        try:
            values = tuple(int(item) for item in items)
        except ValueError:
            self.fail(f"expected comma-separated integers such as 20,56: {value!r}", param, ctx)
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            self.fail(f"{', '.join(map(str, repeated))} given more than once in {value!r}; "
                      f"each value must be distinct", param, ctx)
        if self.minimum is not None and any(v < self.minimum for v in values):
            self.fail(f"each value must be at least {self.minimum}: {value!r}", param, ctx)
        return values


class PathName(click.Path):
    """click.Path that also refuses a name the file system cannot hold (over 255 bytes for
    one name on Linux), at parse time: exit 2 naming the option and the limit, not an
    OSError after the work is done."""

    def convert(self, value, param, ctx):
        from resnet_probe.results import check_path_name

        path = super().convert(value, param, ctx)
        try:
            check_path_name(os.fspath(path) if not isinstance(path, bytes) else path.decode(),
                            "path")
        except InvalidRequest as error:
            self.fail(str(error), param, ctx)
        return path


MODEL = ModelName()
INT_LIST = IntList()


def output_format(fn):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output: aligned table, CSV, or a JSON array "
                        "of row objects.")(fn)


def output_format_with_markdown(fn):
    return click.option("--format", "fmt", type=click.Choice(FORMATS_WITH_MARKDOWN),
                        default="table", show_default=True,
                        help=f"Output: aligned table, CSV, a JSON array of row objects, or a "
                             f"Markdown table (also appended to ${STEP_SUMMARY} when it is "
                             f"set, as in GitHub Actions).")(fn)


def input_size(fn):
    from resnet_probe.settings import INPUT_SIZE, Declared

    return _option(Declared("input_size", None, INPUT_SIZE, int, sequence=False,
                            optional=True))(fn)


def foreign_inputs(fn):
    """What a model takes, its head, and weights to load into it."""
    fn = click.option("--num-classes", type=click.IntRange(min=1), default=None,
                      help="Classes of the model's head, e.g. to fit --weights trained for "
                           "another number (a zoo spec field; a foreign model's builder "
                           "argument num_classes) [default: the model's own].")(fn)
    fn = click.option("--weights", type=PathName(dir_okay=False, path_type=Path),
                      default=None, help="A local state_dict to load (one MODEL only); "
                      "nothing is downloaded.")(fn)
    return in_channels("Input channels (a zoo model's spec field in_channels, or what a "
                       "foreign model is fed)")(fn)


def in_channels(help_text: str):
    from resnet_probe.sources import ModelSource

    return click.option("--in-channels", type=click.IntRange(min=1), default=None,
                        help=f"{help_text} [default: {default_of(ModelSource, 'in_channels')}].")


def model_inputs(fn):
    """``--input NAME=SHAPE[:DTYPE]``, repeatable: what a forward that takes more than one
    image is fed."""
    return click.option(
        "--input", "inputs", multiple=True, metavar="NAME=SHAPE[:DTYPE]",
        help="A tensor the forward takes (repeat for each): a keyword NAME, or a position "
             "0, 1, ...; SHAPE such as 1x3x224x224, the first dimension the batch; DTYPE "
             "float32 (default), float16, bfloat16, int64, int32, bool, ...; an integer "
             "dtype takes a value range, e.g. ids=1x128:int64[0,30522). Replaces "
             "--input-size and --in-channels, the shorthand for one image.")(fn)


def sources(models, in_channels=None, weights=None, input_size=None, inputs=(),
            num_classes=None) -> list:
    """The command's MODELs resolved once, with what they take and their head."""
    from resnet_probe.sources import InputSpec, resolve

    if weights is not None and len(models) != 1:
        raise click.UsageError(f"--weights goes with exactly one MODEL: got {len(models)}")
    spec = InputSpec.parse(list(inputs)) if inputs else None
    if spec is not None and (input_size is not None or in_channels is not None):
        raise click.UsageError("--input replaces --input-size and --in-channels (the shorthand "
                               "for one image): give one or the other")
    return [resolve(with_head(m, num_classes, in_channels), in_channels, input_size,
                    weights=weights, inputs=spec) for m in models]


def with_head(model: str, num_classes: int | None, in_channels: int | None) -> str:
    """MODEL text with --num-classes and --in-channels written in: a zoo model's spec fields
    (``resnet8[in_channels=3,num_classes=10]``, so the label says what was built), a foreign
    model's builder argument ``num_classes`` (its channels are what resolve feeds it)."""
    from resnet_probe.sources import resolve

    if num_classes is None and in_channels is None:
        return model
    innermost = resolve(model)
    while innermost.inner is not None:  # plain:MODEL builds MODEL, then twins it
        innermost = innermost.inner
    fields = {"in_channels": in_channels} if innermost.is_zoo else {}
    fields["num_classes"] = num_classes
    written = ",".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    if not written:
        return model
    return f"{model[:-1]},{written}]" if model.endswith("]") else f"{model}[{written}]"


def trust_sources(fn):
    """``--trust-sources``: the one way a model named in a file this command reads may run
    code (``resnet_probe.sources.recorded``)."""
    return click.option(
        "--trust-sources", is_flag=True,
        help="Let a FILE.py:factory named in the files this command reads (a baseline, a "
             "run's records) run its code, when that .py file lies inside the folder of the "
             "file naming it. Without it, a model read from a file may be a zoo name, a spec "
             "text, torchvision: or timm: only; a package.module:factory read from a file "
             "never runs.")(fn)


def device(help_text: str):
    from resnet_probe.device import DEVICES

    return click.option("--device", type=click.Choice(DEVICES), default="auto",
                        show_default=True, help=help_text)


EXECUTOR_CHOICES = ("local", "ray")  # resnet_probe.train.executors: InProcess, RayExecutor


def executor_options(fn):
    """Where a sweep's training runs execute: ``--executor``, ``--address``, ``--gpus-per-run``,
    ``--workers`` (resnet_probe.train.executors); ``run_executor`` turns them into one."""
    fn = click.option("--workers", type=click.IntRange(min=1), default=None,
                      help="Start a local Ray with N workers, each run with cores/N torch "
                           "threads (implies --executor ray).")(fn)
    fn = click.option("--gpus-per-run", type=click.FloatRange(min=0, max=1, min_open=True),
                      default=None, help="The fraction of a GPU each run asks Ray for, so "
                      "several small nets share one, e.g. 0.25 [default: 1] (CUDA only; "
                      "implies --executor ray).")(fn)
    fn = click.option("--address", default=None, metavar="ADDR",
                      help="A running Ray cluster to send the runs to, e.g. 10.0.0.1:6379 "
                           "(implies --executor ray) [default: RAY_ADDRESS, else a new local "
                           "Ray].")(fn)
    return click.option("--executor", type=click.Choice(EXECUTOR_CHOICES), default=None,
                        help="Train the (model, seed) runs one after another in this process, "
                             "or each as a Ray task (pip install 'resnet-probe[ray]'; "
                             "docs: ray.md) [default: local].")(fn)



def run_executor(executor: str | None, address: str | None, gpus_per_run: float | None,
                 workers: int | None, device: str):
    """The executor the flags ask for; a combination that cannot work exits 2, naming it."""
    from resnet_probe.train.executors import IN_PROCESS, RAY_EXTRA, RayExecutor, ray_available

    ray_flags = [f"{flag} {value}" for flag, value in (("--address", address),
                 ("--gpus-per-run", gpus_per_run), ("--workers", workers)) if value is not None]
    if executor == "local" and ray_flags:
        raise click.UsageError(f"{', '.join(ray_flags)}: these ask for Ray, but --executor "
                               f"local was given; give --executor ray or drop them")
    if executor != "ray" and not ray_flags:
        return IN_PROCESS
    asked = ", ".join(ray_flags) or "--executor ray"
    if not ray_available():
        raise click.UsageError(f"{asked} needs the ray package, which is not installed: "
                               f"{RAY_EXTRA}")
    if gpus_per_run is not None and device == "cpu":
        raise click.UsageError(f"--gpus-per-run {gpus_per_run} shares a GPU between runs, but "
                               f"they train on the cpu; give --device cuda or drop it")
    try:
        return RayExecutor(address=address, workers=workers, gpus_per_run=gpus_per_run or 1.0)
    except InvalidRequest as error:
        raise click.UsageError(str(error)) from None


def default_of(owner, name: str):
    """The library's default for a config field or a function parameter: the CLI shows it and
    never restates it."""
    if dataclasses.is_dataclass(owner):
        return next(field.default for field in dataclasses.fields(owner) if field.name == name)
    return inspect.signature(owner).parameters[name].default


def from_config(config: type, *names: str):
    """Options for ``config``'s declared fields (resnet_probe.settings): name, type, range,
    choices, default and help come from the declaration."""
    from resnet_probe.settings import declared_fields

    def decorate(fn):
        for name in reversed(names):
            fn = _option(declared_fields(config)[name])(fn)
        return fn
    return decorate


def _option(field):
    declared, default = field.setting, field.default
    help_text = declared.help + (f"  [default: {declared.none_means}]"
                                 if default is None and declared.none_means else "")
    flag = declared.flag or "--" + field.name.replace("_", "-")
    if field.kind is bool:
        return click.option(flag, field.name, is_flag=True, default=default,
                            show_default="/" in flag, help=help_text)
    kind: click.ParamType | type
    if field.sequence:
        kind = IntList(None if declared.minimum is None else int(declared.minimum))
        default = ",".join(map(str, default))
    elif declared.choices:
        kind = click.Choice(declared.choices)
    elif field.kind in (int, float) and declared.rule():
        lower = declared.minimum if declared.above is None else declared.above
        range_type = click.IntRange if field.kind is int else click.FloatRange
        kind = range_type(min=lower, max=declared.maximum,
                          **({"min_open": True} if declared.above is not None else {}))
    else:
        kind = field.kind
    return click.option(flag, field.name, type=kind, default=default,
                        show_default=default is not None and default != "",
                        metavar=declared.metavar, help=help_text)


def seeds(default: tuple[int, ...], help_text: str):
    return click.option("--seeds", type=INT_LIST, default=",".join(map(str, default)),
                        show_default=True, help=help_text)


def out(default: Path, help_text: str):
    return click.option("--out", type=PathName(path_type=Path), default=default,
                        show_default=True, help=help_text)


def fresh(fn):
    return click.option("--fresh", is_flag=True, help="Retrain and measure again instead of "
                        "reusing finished runs, analyses and gradients at init from the caches "
                        "(`resnet-probe cache info`).")(fn)


def no_why(fn):
    return click.option("--no-why", is_flag=True, help="Skip the analyses of the trained nets "
                        "(lesions, layer responses, loss landscape) and the report's Why "
                        "part.")(fn)


def inline_plotly(fn):
    return click.option("--inline-plotly", is_flag=True, help="Embed plotly.js in the page "
                        "instead of writing plotly.min.js beside it.")(fn)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def interrupt_exit(error: KeyboardInterrupt | Interruption) -> tuple[str, int]:
    """What to call the interruption and its exit status."""
    from resnet_probe.report.words import interruption_name

    interruption = error if isinstance(error, Interruption) else Interruption.of(error)
    code = EXIT_TERMINATED if interruption is Interruption.SIGTERM else EXIT_INTERRUPTED
    return interruption_name(interruption), code


def command(name: str | None = None):
    """A click command whose failures exit as ``user_errors`` says."""
    return lambda fn: click.command(name)(user_errors(fn))


def user_errors(fn):
    """An InvalidRequest exits 2 and any other library ValueError or OSError exits 1, each with
    a message and never a traceback (--debug shows one). SIGTERM is handled like Ctrl-C.
    While the command runs its stdout goes to stderr, so user code that prints cannot corrupt
    the results; warnings from numerical libraries and an unusable cache are reported once,
    in our words."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        channel = _results_channel()
        channel.__enter__()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                warnings.simplefilter("always", CacheUnusableWarning)
                try:
                    with contextlib.redirect_stdout(sys.stderr):
                        return fn(*args, **kwargs)
                finally:
                    _report_warnings(caught)
        except click.ClickException:
            raise
        except InvalidRequest as error:
            _debug_details(error)
            raise click.UsageError(str(error)) from None
        except KeyboardInterrupt as error:
            what, code = interrupt_exit(error)
            click.echo(f"\n{what}", err=True)
            sys.exit(code)
        except (ValueError, FileNotFoundError, OSError) as error:
            _debug_details(error)
            raise click.ClickException(str(error)) from None
        except Exception as error:  # noqa: BLE001 - a bug: named in one line, not a traceback
            _debug_details(error)
            raise click.ClickException(
                f"internal error in resnet-probe ({type(error).__name__}: {error}); run "
                f"with --debug for the traceback, and please report it") from None
        finally:
            channel.__exit__(None, None, None)
            signal.signal(signal.SIGTERM, previous)
    return wrapper


@contextlib.contextmanager
def _results_channel() -> Iterator[None]:
    """Where results go while a command runs. In a real process, file descriptor 1 points at
    stderr for the whole command and results go to a private duplicate of the original
    stdout, so nothing else that runs (a user's code, a C library, a child process) can write
    into --format json|csv|markdown. Under a test runner's in-memory stdout: that stream."""
    if _RESULTS.get() is not None:  # a command inside a command: the outer one's channel
        yield
        return
    try:
        real = sys.stdout.fileno() == STDOUT_FD
    except (AttributeError, OSError, ValueError):  # an in-memory stream
        real = False
    if not real:
        token = _RESULTS.set(sys.stdout)
        try:
            yield
        finally:
            _RESULTS.reset(token)
        return
    sys.stdout.flush()
    saved = os.dup(STDOUT_FD)
    results = open(saved, "w", encoding=sys.stdout.encoding, errors=sys.stdout.errors,
                   closefd=False)
    token = _RESULTS.set(results)
    os.dup2(sys.stderr.fileno(), STDOUT_FD)
    try:
        yield
    finally:
        _RESULTS.reset(token)
        for finish in (results.close, sys.stdout.flush):  # ours out, the rest to stderr
            try:
                finish()
            except (OSError, ValueError):  # a closed pipe: nothing left to deliver
                pass
        os.dup2(saved, STDOUT_FD)
        os.close(saved)


def _debug_details(error: BaseException) -> None:
    if not DEBUG.get():
        return
    details = getattr(error, "details", "") or "".join(
        traceback.format_exception(type(error), error, error.__traceback__))
    click.echo(details, err=True)


def _report_warnings(caught) -> None:
    numerical = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    for message in numerical:
        click.echo(f"note: a numerical library warned \"{message}\" while computing this "
                   f"output; a statistic over empty or constant values shows as blank (NaN)",
                   err=True)
    for message in sorted({str(w.message) for w in caught
                           if issubclass(w.category, CacheUnusableWarning)}):
        click.echo(f"warning: {message}", err=True)


def echo_result(text: str) -> None:
    """A line of the command's result: to the real stdout."""
    click.echo(text, file=_RESULTS.get() or sys.stdout)


def report_failure(failed) -> None:
    """A compare section that failed (jobs.parts.Failed), named; its traceback with --debug."""
    click.echo(f"error: the {failed.section} section failed: {failed.error}", err=True)
    if DEBUG.get() and failed.details:
        click.echo(failed.details, err=True)


def emit(df, fmt: str, columns: list[str] | None = None, exact: bool = False,
         title: str | None = None) -> None:
    """The last step: a table (catalogued columns scaled and titled, unless ``exact``: per-row
    breakdowns show whole counts to check by hand), CSV, JSON rows, or Markdown (appended to
    $GITHUB_STEP_SUMMARY too, under ``title``, when it is set)."""
    from resnet_probe.report.console import console_table, markdown_table
    from resnet_probe.results import to_json_records

    out = _RESULTS.get() or sys.stdout
    if fmt == "json":
        click.echo(to_json_records(df), file=out)
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False, file=out)
    elif fmt == "markdown":
        text = markdown_table(df, columns, scale={} if exact else None)
        click.echo(text, file=out)
        append_step_summary(text, title)
    else:
        click.echo(console_table(df, columns, scale={} if exact else None), file=out)


def append_step_summary(markdown: str, title: str | None = None) -> None:
    """Append to the file GitHub Actions names in $GITHUB_STEP_SUMMARY, if any."""
    path = os.environ.get(STEP_SUMMARY)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write((f"### {title}\n\n" if title else "") + markdown + "\n\n")
    except OSError as error:
        click.echo(f"warning: cannot append to ${STEP_SUMMARY} ({path}): "
                   f"{error.strerror or error}", err=True)


def progress_bar(total: int | None, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


def command_line() -> str:
    return " ".join(["resnet-probe", *map(shlex.quote, sys.argv[1:])])
