"""Commands that analyse trained nets: lesion, responses, landscape."""

from __future__ import annotations

from pathlib import Path

import click

from resnet_probe.analysis import AnalysisOptions
from resnet_probe.cli import options

RUN_HELP = ("RUN is a `degradation --out DIR` folder, a compare report (or its -data folder), "
            "or nothing: then the default degradation run (digits, depths 20 and 56, seeds "
            "0,1,2) is trained, or reused from the run cache.")


def run_argument(fn):
    return click.argument("run", required=False,
                          type=click.Path(path_type=Path, exists=False))(fn)


split_options = options.from_config(AnalysisOptions, "split", "limit")


def _analyse(run, analysis, chosen, out, inline_plotly, title):
    """Load the nets, run one analysis with a progress bar, write its report."""
    from resnet_probe.analysis import explain, load_trained
    from resnet_probe.report import write_analysis_report
    from resnet_probe.report.console import analysis_notes

    if run is None:
        with options.progress_bar(None, "default degradation run") as bar:  # a count
            runs = load_trained(None, progress=bar)
    else:
        runs = load_trained(run)
    with options.progress_bar(chosen.work((analysis,), len(runs.nets)), analysis.value) as bar:
        tables, environment = explain(runs, (analysis,), chosen, bar)
    path = write_analysis_report(tables, environment, out, analysis.value, title,
                                 inline_plotly)
    click.echo(f"report: {path}", err=True)
    for note in analysis_notes(tables, environment):
        click.echo(note, err=True)
    return tables


@options.command()
@run_argument
@click.option("--by", type=click.Choice(["block", "count"]), default="block",
              show_default=True, help="block: delete each block alone; count: delete k random "
              "shape-preserving blocks.")
@options.from_config(AnalysisOptions, "lesion_samples", "lesion_max_removed")
@split_options
@options.out(Path("reports"), "Directory for lesion.html and its data folder.")
@options.inline_plotly
@options.output_format
def lesion(run, by, out, inline_plotly, fmt, **settings) -> None:
    """Delete blocks of trained nets at test time (Veit et al. 2016).

    \b
    A residual block loses its branch and keeps its shortcut; a plain block is replaced by
    the identity where its shape allows, and is listed with the reason where it does not.
    """
    from resnet_probe.analysis import Analysis

    chosen = AnalysisOptions(lesion_views=(by,), **settings)
    tables = _analyse(run, Analysis.LESION, chosen, out, inline_plotly,
                      "resnet-probe lesion study")
    if by == "block":
        options.emit(tables["lesion_blocks"], fmt, ["model", "seed", "block", "stage",
                                                    "downsampling", "error", "baseline_error",
                                                    "not_deletable_because"])
    else:
        options.emit(tables["lesion_count"], fmt,
                     ["model", "seed", "removed", "error", "error_std", "samples"])


@options.command()
@run_argument
@split_options
@options.out(Path("reports"), "Directory for responses.html and its data folder.")
@options.inline_plotly
@options.output_format
def responses(run, out, inline_plotly, fmt, **settings) -> None:
    """Std of each 3x3 layer's response in trained nets (He et al. 2016, Fig. 7).

    \b
    The response is the layer's output after BN and before the addition or ReLU; rank 1 is
    the largest.
    """
    from resnet_probe.analysis import Analysis

    tables = _analyse(run, Analysis.RESPONSES, AnalysisOptions(**settings), out,
                      inline_plotly, "resnet-probe layer responses")
    options.emit(tables["responses"], fmt,
                 ["model", "seed", "layer", "depth", "response_std", "rank"])


@options.command()
@run_argument
@options.from_config(AnalysisOptions, "landscape_points", "landscape_dims", "landscape_extent",
                "landscape_limit", "direction_seed")
@click.option("--summary", is_flag=True, help="Print one summary row per net instead of "
              "every grid point.")
@options.out(Path("reports"), "Directory for landscape.html and its data folder.")
@options.inline_plotly
@options.output_format
def landscape(run, summary, out, inline_plotly, fmt, **settings) -> None:
    """Loss along filter-normalised random directions around trained weights (Li et al. 2018).

    \b
    BN is frozen: each point is evaluated in eval mode with the trained running statistics,
    and biases and BN parameters are not perturbed (Li et al.'s ignore='biasbn').
    """
    from resnet_probe.analysis import Analysis

    chosen = AnalysisOptions(**settings)
    tables = _analyse(run, Analysis.LANDSCAPE, chosen, out, inline_plotly,
                      "resnet-probe loss landscape")
    if summary:
        options.emit(tables["landscape_summary"], fmt)
    else:
        beta = ["beta"] * (chosen.landscape_dims == 2)
        options.emit(tables["landscape"], fmt, ["model", "seed", "alpha", *beta, "loss", "error"])


for analysis_command in (lesion, responses, landscape):
    analysis_command.help = f"{analysis_command.help}\n\n{RUN_HELP}"
