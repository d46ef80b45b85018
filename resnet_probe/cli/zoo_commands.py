"""Commands about what can be built and what it costs: list, show, flops, bottleneck, report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_probe.cli import options
from resnet_probe.jobs import regression
from resnet_probe.measure.architecture import torchinfo_summary
from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import DEFAULT_ENGINE, ENGINES, count_costs, resolution_sweep
from resnet_probe.results import CONVENTIONS


@options.command("list")
@click.option("--include", multiple=True, help="Glob pattern to keep, e.g. 'plain*'.")
@click.option("--exclude", multiple=True, help="Glob pattern to drop, e.g. '*1202'.")
@options.output_format
def list_command(include, exclude, fmt) -> None:
    """List every model variant with its family, design, block, depth, shortcut and params.

    \b
    Example:
      resnet-probe list --include 'resnet*' --format json
    """
    from resnet_probe.results import frame
    from resnet_probe.zoo import describe_models

    options.emit(frame(describe_models(list(include) or None, list(exclude) or None)), fmt)


@options.command()
@click.argument("model", type=options.MODEL)
@options.input_size
@click.option("--depth", type=click.IntRange(min=1), show_default=True,
              default=options.default_of(torchinfo_summary, "depth"),
              help="How many levels of nested modules to show.")
@options.foreign_inputs
def show(model, input_size, depth, in_channels, weights) -> None:
    """Print options.MODEL's architecture summary (torchinfo): layers, output shapes, params.

    \b
    Example:
      resnet-probe show resnet50 --input-size 224 --depth 2
    """
    from resnet_probe.report.console import describe_model

    (source,) = options.sources([model], in_channels, weights, input_size)
    summary, size = torchinfo_summary(source, input_size, depth)
    options.echo_result(describe_model(source, size))
    options.echo_result(str(summary))


@options.command()
@click.argument("models", nargs=-1, type=options.MODEL)
@options.input_size
@click.option("--batch-size", type=click.IntRange(min=1), show_default=True,
              default=options.default_of(count_costs, "batch_size"))
@click.option("--by", type=click.Choice(["model", "module", "block", "stage", "operator"]),
              default="model", show_default=True, help="Row granularity; block and stage rows "
              "sum the modules, so every view's totals agree.")
@click.option("--convention", type=click.Choice(["all", *(m.column for m in CONVENTIONS)]),
              default="all", show_default=True, help="Show one convention's column: macs (a), "
              "macs_with_elementwise (b), flops (c), backward_flops (d), macs_v1 (paper "
              "stride), macs_fvcore_default.")
@click.option("--engine", type=click.Choice(ENGINES), default=DEFAULT_ENGINE,
              show_default=True, help="torch's flop formulas (meta device, counts backward) "
              "or fvcore's FlopCountAnalysis (TorchScript trace).")
@click.option("--sweep", type=options.IntList(minimum=1), default=None, metavar="SIZES",
              help="Resolution sweep: comma-separated input sizes, e.g. 128,160,224,320.")
@click.option("--check", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare with a baseline JSON; exit 1 with a diff table on any drift.")
@click.option("--rtol", type=click.FloatRange(min=0), show_default=True,
              default=options.default_of(regression.check_baseline, "rtol"),
              help="Relative tolerance for --check (0 = exact; must be finite).")
@click.option("--update-baseline", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Measure MODELS (default: the file's own entries, or the "
              "whole zoo for a new file) and merge them into this baseline, saying which "
              "entries were added or replaced.")
@click.option("--replace", is_flag=True, help="With --update-baseline: start the file afresh "
              "instead of merging into it.")
@options.foreign_inputs
@options.output_format
def flops(models, input_size, batch_size, by, convention, engine, sweep, check, rtol,
          update_baseline, replace, in_channels, weights, fmt) -> None:
    """Count params, MACs and FLOPs of MODELS in every convention.

    \b
    Columns: macs = conv+linear multiply-accumulates (the paper's "FLOPs");
    flops = 2 x macs; macs_with_elementwise adds BN/ReLU/add/pool (1 per element);
    macs_fvcore_default = what fvcore reports; backward_flops measured; macs_v1 with
    the stride on the bottleneck's 1x1 conv. 'partial' marks counts with unknown operators.

    \b
    Examples:
      resnet-probe flops resnet50 resnet50[stride_placement=1x1]
      resnet-probe flops resnet34 --by stage --format csv
      resnet-probe flops --check reports/baselines/flops.json      (in CI)
      resnet-probe flops --update-baseline my_baseline.json resnet50 'cifar[layers=5-5-5]'
      resnet-probe flops torchvision:resnext50_32x4d plain:torchvision:resnet50
      resnet-probe flops my_model.py:build --in-channels 1 --input-size 28
    """
    from resnet_probe.report.console import describe_baseline_update, describe_check
    from resnet_probe.results import frame
    from resnet_probe.views import cost_view

    if replace and update_baseline is None:
        raise click.UsageError("--replace goes with --update-baseline FILE")
    if update_baseline is not None:
        update = regression.update_baseline(update_baseline, list(models) or None, replace)
        options.echo_result(describe_baseline_update(update))
        return
    if check is not None:
        rows, drifts = regression.check_baseline(check, list(models) or None, rtol)
        line = describe_check(rows, drifts, check, rtol)
        if drifts:
            click.echo(line, err=True)
        else:
            options.echo_result(line)
        if drifts:
            options.emit(frame([r for r in rows if not r["ok"]]), fmt,
                 ["model", "stage", "metric", "expected", "got", "delta_pct"])
            sys.exit(options.EXIT_CHECK_FAILED)
        return
    if not models:
        raise click.UsageError("name at least one MODEL (or use --check / --update-baseline)")
    shown = [m.column for m in CONVENTIONS] if convention == "all" else [convention]
    models = options.sources(models, in_channels, weights, input_size)
    if sweep:
        rows = [row for name in models for row in resolution_sweep(name, list(sweep),
                                                                   batch_size)]
        options.emit(frame(rows), fmt, ["model", "input_size", "params", *shown])
        return
    df = cost_view([count_costs(name, input_size, batch_size, engine=engine)
                    for name in models], by)
    if by == "model":
        columns = ["model", "input_size", "params", *shown, "partial"]
        if fmt != "table" and convention != "all":
            df = df[[*columns, "batch_size", "uncounted_operators"]]
        options.emit(df, fmt, columns)
    elif by == "module":
        options.emit(df, fmt, ["model", "module", "type", "stage", "depth", "params", "macs",
                       "macs_with_elementwise", "backward_flops"], exact=True)
    else:
        options.emit(df, fmt, exact=True)


@options.command()
@click.option("--width", type=click.IntRange(min=1), show_default=True,
              default=options.default_of(block_cost_rows, "width"),
              help="Inner width d: basic at d, bottleneck at 4d (inner d), basic at 4d.")
@click.option("--size", type=click.IntRange(min=1), show_default=True,
              default=options.default_of(block_cost_rows, "size"),
              help="Spatial size H = W of the feature map.")
@options.output_format
def bottleneck(width, size, fmt) -> None:
    """Show why bottleneck blocks are cheaper: weights and MACs per conv (paper Fig. 5),
    beside the ResNeXt 32x4d block.

    \b
    Example:
      resnet-probe bottleneck --width 64 --size 56
    """
    from resnet_probe.results import frame

    rows = block_cost_rows(width, size)
    options.emit(frame(rows), fmt, exact=True)
    if fmt == "table":
        options.echo_result("")
        options.emit(frame(block_cost_totals(rows)), fmt, exact=True)


@options.command()
@options.out(Path("reports"), "Directory for the zoo report and the index page.")
@options.inline_plotly
def report(out, inline_plotly) -> None:
    """Write the zoo report (every variant, cost vs depth, design vs cost, bottleneck vs
    basic) and the index page linking every report in --out.

    \b
    Example:
      resnet-probe report --out reports
    """
    from resnet_probe import zoo
    from resnet_probe.environment import environment_info
    from resnet_probe.jobs.census import zoo_census
    from resnet_probe.report import write_zoo_report
    from resnet_probe.results import check_writable_dir

    out = check_writable_dir(out)
    with options.progress_bar(len(zoo.list_models()), "counting the zoo") as bar:
        census = zoo_census(bar)
    path = write_zoo_report(census, environment_info(options.command_line()), out, inline_plotly)
    options.echo_result(f"report: {path}")
    options.echo_result(f"index: {out / 'index.html'}")
