"""`resnet-probe cache`: where finished training runs are kept, and how to free the space."""

from __future__ import annotations

import sys

import click

from resnet_probe.cli import options
from resnet_probe.cli.options import user_errors


@click.group()
def cache() -> None:
    """The run cache: finished training runs, their analyses and compare's gradients at init,
    which compare and degradation reuse.

    \b
    It lives in $RESNET_PROBE_CACHE_DIR, else $XDG_CACHE_HOME/resnet-probe, else
    ~/.cache/resnet-probe. Each run is keyed by everything that changes its result
    (model, recipe, data, seed, device, versions); --fresh on compare and degradation
    ignores it.
    """


@cache.command()
@user_errors
def info() -> None:
    """Print where the run cache is and the disk it uses."""
    from resnet_probe.cache import results_store
    from resnet_probe.train.run_cache import RunCache

    options.echo_result(f"run cache: {RunCache().usage()}")
    options.echo_result(f"cached results (analyses of runs, gradients at init): "
               f"{results_store().usage()}")


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_errors
def clear(yes: bool) -> None:
    """Delete every cached run and analysis (they are recomputed when next needed)."""
    from resnet_probe.cache import results_store
    from resnet_probe.train.run_cache import RunCache

    run_cache, results = RunCache(), results_store()
    if not yes:
        try:
            confirmed = click.confirm(f"delete {run_cache.usage()} and {results.usage()}?")
        except click.Abort:  # the input ended (e.g. </dev/null, no terminal) or Ctrl-C
            raise click.UsageError("the confirmation could not be read (no answer on "
                                   "stdin); nothing was deleted; pass --yes to clear without "
                                   "asking") from None
        if not confirmed:
            click.echo("nothing deleted", err=True)
            sys.exit(options.EXIT_CHECK_FAILED)
    options.echo_result(f"freed {run_cache.clear()}")
    options.echo_result(f"freed {results.clear()}")
