"""`resnet-probe cache`: where finished training runs are kept, and how to free the space."""

from __future__ import annotations

import click

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
    from resnet_probe.train.cache import ResultCache, RunCache

    click.echo(f"run cache: {RunCache().usage()}")
    click.echo(f"cached results (analyses of runs, gradients at init): "
               f"{ResultCache().usage()}")


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_errors
def clear(yes: bool) -> None:
    """Delete every cached run and analysis (they are recomputed when next needed)."""
    from resnet_probe.train.cache import ResultCache, RunCache

    run_cache, results = RunCache(), ResultCache()
    if not yes:
        click.confirm(f"delete {run_cache.usage()} and {results.usage()}?", abort=True)
    click.echo(f"freed {run_cache.clear()}")
    click.echo(f"freed {results.clear()}")
