"""Commands that analyse trained nets: lesion, responses, landscape."""

from __future__ import annotations

from pathlib import Path

import click

from resnet_probe.analysis import AnalysisOptions
from resnet_probe.cli.options import (
    default_of,
    emit,
    format_option,
    inline_plotly_option,
    out_option,
    progress_bar,
    user_errors,
)

RUN_HELP = ("RUN is a `degradation --out DIR` folder, a compare report (or its -data folder), "
            "or nothing: then the default degradation run (digits, depths 20 and 56, seeds "
            "0,1,2) is trained, or reused from the run cache.")


def run_argument(fn):
    return click.argument("run", required=False,
                          type=click.Path(path_type=Path, exists=False))(fn)


def split_options(fn):
    fn = click.option("--limit", type=click.IntRange(min=1), default=None,
                      help="Use the first N images of the split [default: all].")(fn)
    return click.option("--split", type=click.Choice(["test", "train"]),
                        default=default_of(AnalysisOptions, "split"), show_default=True,
                        help="Which images the nets are evaluated on.")(fn)


def _analyse(run, analysis, options, out, inline_plotly, title):
    """Load the nets, run one analysis with a progress bar, write its report."""
    from resnet_probe.analysis import explain, load_trained
    from resnet_probe.report import write_analysis_report

    if run is None:
        with progress_bar(0, "default degradation run") as bar:
            runs = load_trained(None, progress=_Growing(bar))
    else:
        runs = load_trained(run)
    with progress_bar(options.work((analysis,), len(runs.nets)), analysis.value) as bar:
        tables, environment = explain(runs, (analysis,), options, bar)
    path = write_analysis_report(tables, environment, out, analysis.value, title,
                                 inline_plotly)
    click.echo(f"report: {path}", err=True)
    for skipped in environment["why_not_analysed"]:
        click.echo(f"note: not analysed: {skipped}", err=True)
    for net in environment["why_untrained"]:
        click.echo(f"note: did not train: {net}", err=True)
    for row in tables["why_findings"].itertuples():
        interval = (f"95% CI {row.ci95_low:+.3f} to {row.ci95_high:+.3f}, "
                    if row.ci95_low == row.ci95_low else "")  # NaN with one seed
        click.echo(f"{row.claim}, depth {row.depth}: {row.outcome} (mean {row.mean:+.3f}, "
                   f"{interval}seeds {row.per_seed})", err=True)
    return tables


class _Growing:
    """Progress for training on demand: the bar's total grows with the work announced."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def update(self, n: int = 1):
        if self.bar.n + n > (self.bar.total or 0):
            self.bar.total = self.bar.n + n
        return self.bar.update(n)

    def set_description(self, desc: str):
        return self.bar.set_description(desc)


@click.command()
@run_argument
@click.option("--by", type=click.Choice(["block", "count"]), default="block",
              show_default=True, help="block: delete each block alone; count: delete k random "
              "shape-preserving blocks.")
@click.option("--samples", type=click.IntRange(min=1),
              default=default_of(AnalysisOptions, "lesion_samples"), show_default=True,
              help="Random draws per k (--by count).")
@click.option("--max-removed", type=click.IntRange(min=1), default=None,
              help="Largest k (--by count) [default: every shape-preserving block].")
@split_options
@out_option(Path("reports"), "Directory for lesion.html and its data folder.")
@inline_plotly_option
@format_option
@user_errors
def lesion(run, by, samples, max_removed, split, limit, out, inline_plotly, fmt) -> None:
    """Delete blocks of trained nets at test time (Veit et al. 2016).

    \b
    A residual block loses its branch and keeps its shortcut; a plain block is replaced by
    the identity where its shape allows, and is listed with the reason where it does not.
    """
    from resnet_probe.analysis import Analysis, AnalysisOptions

    options = AnalysisOptions(split=split, limit=limit, lesion_views=(by,),
                              lesion_samples=samples, lesion_max_removed=max_removed)
    tables = _analyse(run, Analysis.LESION, options, out, inline_plotly,
                      "resnet-probe lesion study")
    if by == "block":
        emit(tables["lesion_blocks"], fmt, ["model", "seed", "block", "stage", "downsampling",
                                            "error", "baseline_error", "not_deletable_because"]
             if fmt == "table" else None)
    else:
        emit(tables["lesion_count"], fmt, ["model", "seed", "removed", "error", "error_std",
                                           "samples"] if fmt == "table" else None)


@click.command()
@run_argument
@split_options
@out_option(Path("reports"), "Directory for responses.html and its data folder.")
@inline_plotly_option
@format_option
@user_errors
def responses(run, split, limit, out, inline_plotly, fmt) -> None:
    """Std of each 3x3 layer's response in trained nets (He et al. 2016, Fig. 7).

    \b
    The response is the layer's output after BN and before the addition or ReLU; rank 1 is
    the largest.
    """
    from resnet_probe.analysis import Analysis, AnalysisOptions

    tables = _analyse(run, Analysis.RESPONSES, AnalysisOptions(split=split, limit=limit), out,
                      inline_plotly, "resnet-probe layer responses")
    emit(tables["responses"], fmt, ["model", "seed", "layer", "depth", "response_std", "rank"]
         if fmt == "table" else None)


@click.command()
@run_argument
@click.option("--points", type=click.IntRange(min=3),
              default=default_of(AnalysisOptions, "landscape_points"), show_default=True,
              help="Grid points per axis (odd, so the trained weights are on the grid).")
@click.option("--dims", type=click.IntRange(1, 2),
              default=default_of(AnalysisOptions, "landscape_dims"), show_default=True,
              help="1-D slice or 2-D surface.")
@click.option("--extent", type=click.FloatRange(min=0, min_open=True),
              default=default_of(AnalysisOptions, "landscape_extent"), show_default=True,
              help="The grid spans [-extent, extent] along each direction.")
@click.option("--limit", type=click.IntRange(min=1),
              default=default_of(AnalysisOptions, "landscape_limit"), show_default=True,
              help="Training images the loss is computed on (a fixed subset).")
@click.option("--direction-seed", type=int,
              default=default_of(AnalysisOptions, "direction_seed"), show_default=True)
@click.option("--summary", is_flag=True, help="Print one summary row per net instead of "
              "every grid point.")
@out_option(Path("reports"), "Directory for landscape.html and its data folder.")
@inline_plotly_option
@format_option
@user_errors
def landscape(run, points, dims, extent, limit, direction_seed, summary, out, inline_plotly,
              fmt) -> None:
    """Loss along filter-normalised random directions around trained weights (Li et al. 2018).

    \b
    BN is frozen: each point is evaluated in eval mode with the trained running statistics,
    and biases and BN parameters are not perturbed (Li et al.'s ignore='biasbn').
    """
    from resnet_probe.analysis import Analysis, AnalysisOptions

    options = AnalysisOptions(landscape_points=points, landscape_dims=dims,
                              landscape_extent=extent, landscape_limit=limit,
                              direction_seed=direction_seed)
    tables = _analyse(run, Analysis.LANDSCAPE, options, out, inline_plotly,
                      "resnet-probe loss landscape")
    if summary:
        emit(tables["landscape_summary"], fmt)
    else:
        emit(tables["landscape"], fmt, ["model", "seed", "alpha", *(["beta"] * (dims == 2)),
                                        "loss", "error"]
             if fmt == "table" else None)


for command in (lesion, responses, landscape):
    command.help = f"{command.help}\n\n{RUN_HELP}"
