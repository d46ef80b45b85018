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
                          type=options.PathName(path_type=Path, exists=False))(fn)


split_options = options.from_config(AnalysisOptions, "split", "limit")


def _analyse(run, analysis, chosen, out, inline_plotly, title, trust_sources=False):
    """Load the nets, run one analysis with a progress bar, write its report."""
    from resnet_probe.analysis import load_trained, why_part
    from resnet_probe.environment import current_environment
    from resnet_probe.jobs.sweep import train_default
    from resnet_probe.report import write_analysis_report
    from resnet_probe.report.console import analysis_notes

    if run is None:
        with options.progress_bar(None, "default degradation run") as bar:  # a count
            runs = train_default(progress=bar)
    else:
        runs = load_trained(run, trust_sources=trust_sources)
    with options.progress_bar(chosen.work((analysis,), len(runs.nets)), analysis.value) as bar:
        part = why_part(runs, (analysis,), chosen, bar)
    environment = current_environment(options.command_line())
    path = write_analysis_report(part, environment, out, analysis.value, title, inline_plotly)
    click.echo(f"report: {path}", err=True)
    for note in analysis_notes(part):
        click.echo(note, err=True)
    return part


@options.command()
@run_argument
@options.trust_sources
@click.option("--by", type=click.Choice(["block", "count"]), default="block",
              show_default=True, help="block: delete each block alone; count: delete k random "
              "shape-preserving blocks.")
@options.from_config(AnalysisOptions, "lesion_samples", "lesion_max_removed")
@split_options
@options.out(Path("reports"), "Directory for lesion.html and its data folder.")
@options.inline_plotly
@options.output_format
def lesion(run, trust_sources, by, out, inline_plotly, fmt, **settings) -> None:
    """Delete blocks of trained nets at test time (Veit et al. 2016).

    \b
    A residual block loses its branch and keeps its shortcut; a plain block is replaced by
    the identity where its shape allows, and is listed with the reason where it does not.
    relative_rise = (error - own error) / (chance - own error).

    \b
    Example:
      resnet-probe lesion reports/degradation --by count --samples 20
    """
    from resnet_probe.analysis import Analysis

    chosen = AnalysisOptions(lesion_views=(by,), **settings)
    part = _analyse(run, Analysis.LESION, chosen, out, inline_plotly,
                    "resnet-probe lesion study", trust_sources)
    if by == "block":
        options.emit(part.tables.lesion_blocks, fmt, ["model", "seed", "block", "stage",
                                               "downsampling", "error", "baseline_error",
                                               "relative_rise", "not_deletable_because"])
    else:
        options.emit(part.tables.lesion_count, fmt, ["model", "seed", "removed", "error",
                                              "error_std", "relative_rise", "samples"])


@options.command()
@run_argument
@options.trust_sources
@split_options
@options.out(Path("reports"), "Directory for responses.html and its data folder.")
@options.inline_plotly
@options.output_format
def responses(run, trust_sources, out, inline_plotly, fmt, **settings) -> None:
    """Std of each 3x3 layer's response in trained nets (He et al. 2016, Fig. 7).

    \b
    The response is the layer's output after BN and before the addition or ReLU; rank 1 is
    the largest.

    \b
    Example:
      resnet-probe responses reports/compare-resnet34-vs-plain34.html --format csv
    """
    from resnet_probe.analysis import Analysis

    part = _analyse(run, Analysis.RESPONSES, AnalysisOptions(**settings), out,
                    inline_plotly, "resnet-probe layer responses", trust_sources)
    options.emit(part.tables.responses, fmt, ["model", "seed", "layer", "depth", "response_std",
                                       "rank"])


@options.command()
@run_argument
@options.trust_sources
@options.from_config(AnalysisOptions, "landscape_points", "landscape_dims", "landscape_extent",
                     "landscape_limit", "landscape_directions", "direction_seed")
@click.option("--summary", is_flag=True, help="Print one summary row per net instead of "
              "every grid point.")
@options.out(Path("reports"), "Directory for landscape.html and its data folder.")
@options.inline_plotly
@options.output_format
def landscape(run, trust_sources, summary, out, inline_plotly, fmt, **settings) -> None:
    """Loss along filter-normalised random directions around trained weights (Li et al. 2018).

    \b
    BN is frozen: each point is evaluated in eval mode with the trained running statistics,
    and biases and BN parameters are not perturbed (Li et al.'s ignore='biasbn'). Each net
    is sliced along --directions directions; the summary averages the rise at ±0.5 over
    them, relative to the loss at the trained weights.

    \b
    Example:
      resnet-probe landscape reports/degradation --directions 8 --summary
    """
    from resnet_probe.analysis import Analysis

    chosen = AnalysisOptions(**settings)
    part = _analyse(run, Analysis.LANDSCAPE, chosen, out, inline_plotly,
                    "resnet-probe loss landscape", trust_sources)
    if summary:
        options.emit(part.tables.landscape_summary, fmt)
    else:
        beta = ["beta"] * (chosen.landscape_dims == 2)
        options.emit(part.tables.landscape, fmt, ["model", "seed", "direction", "alpha", *beta,
                                           "loss", "error"])


@options.command()
@run_argument
@options.trust_sources
@options.from_config(AnalysisOptions, "path_images", "path_samples")
@options.out(Path("reports"), "Directory for paths.html and its data folder.")
@options.inline_plotly
@options.output_format
def paths(run, trust_sources, out, inline_plotly, fmt, **settings) -> None:
    """Effective path lengths of trained residual nets (Veit et al. 2016, Fig. 6).

    \b
    A net of n blocks holds C(n, k) paths through k branches. The gradient reaching the
    input through paths of each length is measured by letting it flow through either the
    branch or the shortcut at each block, with k branches drawn at random. Rows: model,
    seed, path_length, fraction (of all paths), gradient_magnitude, effective_length.

    \b
    Example:
      resnet-probe paths reports/degradation --images 32 --samples 5 --format json
    """
    from resnet_probe.analysis import Analysis

    part = _analyse(run, Analysis.PATHS, AnalysisOptions(**settings), out, inline_plotly,
                    "resnet-probe effective path lengths", trust_sources)
    options.emit(part.tables.paths, fmt, ["model", "seed", "path_length", "fraction",
                                   "gradient_magnitude", "effective_length"])


@options.command()
@run_argument
@options.trust_sources
@options.from_config(AnalysisOptions, "hessian_images", "hessian_iterations")
@options.out(Path("reports"), "Directory for hessian.html and its data folder.")
@options.inline_plotly
@options.output_format
def hessian(run, trust_sources, out, inline_plotly, fmt, **settings) -> None:
    """Hessian spectra at the trained weights (Li et al. 2018; pyhessian's approach).

    \b
    Lanczos on Hessian-vector products of the training loss (BN in eval mode, a fixed batch
    of training images) gives the largest and smallest eigenvalues; |λmin/λmax| is Li et
    al.'s non-convexity. Cost: --iterations Hessian-vector products per net, each about two
    forward-backward passes on --images images. Rows: model, seed, top_eigenvalue,
    min_max_ratio.

    \b
    Example:
      resnet-probe hessian reports/degradation --images 256 --iterations 30
    """
    from resnet_probe.analysis import Analysis

    part = _analyse(run, Analysis.HESSIAN, AnalysisOptions(**settings), out, inline_plotly,
                    "resnet-probe Hessian spectra", trust_sources)
    options.emit(part.tables.hessian, fmt, ["model", "seed", "top_eigenvalue", "min_eigenvalue",
                                     "min_max_ratio", "loss", "iterations", "images"])


for analysis_command in (lesion, responses, landscape, paths, hessian):
    analysis_command.help = f"{analysis_command.help}\n\n{RUN_HELP}"
