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
from resnet_probe.measure.memory import MEMORY_COLUMNS, MEMORY_METHOD
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
@options.model_inputs
def show(model, input_size, depth, in_channels, weights, num_classes, inputs) -> None:
    """Print MODEL's architecture summary (torchinfo): layers, output shapes, params; then
    resnet-probe's counts in each convention, and torchinfo's mult-adds labelled as its own.

    \b
    Examples:
      resnet-probe show resnet50 --input-size 224 --depth 2
      resnet-probe show my_model.py:build --input x=1x3x64x64 --input mask=1x64x64:bool
    """
    from resnet_probe.report.console import describe_counts, describe_model, torchinfo_text

    (source,) = options.sources([model], in_channels, weights, input_size, inputs, num_classes)
    summary, size = torchinfo_summary(source, input_size, depth)
    options.echo_result(describe_model(source, size))
    if source.twin_report is not None:  # what the surgery removed and kept
        options.echo_result(source.twin_report.description())
    text, torchinfo_total = torchinfo_text(summary)
    options.echo_result(text)
    # The same inputs torchinfo was fed: --input's tensors, or one image of its size.
    counted = count_costs(source, None if inputs else size)
    for line in describe_counts(counted.summary, torchinfo_total):
        options.echo_result(line)
    for note in counted.notes:
        click.echo(f"note: {note}", err=True)


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
@click.option("--check", type=options.PathName(dir_okay=False, path_type=Path), default=None,
              help="Compare with a baseline JSON; exit 1 with a drift table when a value moved "
              "beyond its tolerance, 2 when the baseline or an entry is unusable.")
@click.option("--rtol", "tolerances", multiple=True, metavar="TOL",
              help="Relative tolerance for --check: 0.5% or 0.005 for every metric, or "
              "METRIC=TOL for one (repeatable, e.g. --rtol macs=0.5% --rtol params=0) "
              "[default: 0, exact].")
@click.option("--increase-only", is_flag=True, help="With --check: fail only when a value "
              "rises beyond its tolerance (a model that got cheaper passes, and is shown).")
@click.option("--update-baseline", type=options.PathName(dir_okay=False, path_type=Path),
              default=None, help="Measure MODELS (default: the file's own entries, or the "
              "whole zoo for a new file) with this command's inputs, and merge them into this "
              "baseline, saying which entries were added or replaced.")
@click.option("--replace", is_flag=True, help="With --update-baseline: start the file afresh "
              "instead of merging into it.")
@click.option("--metrics", type=str, default=None, metavar="LIST",
              help="What a baseline pins (--update-baseline) or checks (--check), "
              "comma-separated, from: " + ", ".join(regression.METRICS) +
              f" [default: {','.join(regression.DEFAULT_METRICS)}].")
@click.option("--memory", is_flag=True, help="Add the memory columns: bytes of parameters, "
              "buffers, gradients and the activations saved for backward, and a training "
              "step's peak, counted on meta tensors (nothing allocated).")
@options.trust_sources
@options.foreign_inputs
@options.model_inputs
@options.output_format_with_markdown
def flops(models, input_size, batch_size, by, convention, engine, sweep, check, tolerances,
          increase_only, update_baseline, replace, metrics, memory, trust_sources, in_channels,
          weights, num_classes, inputs, fmt) -> None:
    """Count params, MACs and FLOPs of MODELS in every convention.

    \b
    Columns: macs = conv+linear multiply-accumulates (the paper's "FLOPs");
    flops = 2 x macs; macs_with_elementwise adds BN/ReLU/add/pool (1 per element);
    macs_fvcore_default = what fvcore reports; backward_flops measured; macs_v1 with
    the stride on the bottleneck's 1x1 conv (zoo nets only). 'partial' marks counts with
    unknown operators. The table has a row per convention and a column per model, counts
    in K, M or G, within 100 columns; CSV and JSON have a row per model, exact integers.

    \b
    A model that cannot be built, twinned or counted fails its own row (the 'error'
    column, and a line on stderr); the others are counted. The exit status is non-zero
    only when every model failed: then it is the first failure's (2 for a bad MODEL).

    \b
    Examples:
      resnet-probe flops resnet50 resnet50[stride_placement=1x1]
      resnet-probe flops resnet34 --by stage --format csv
      resnet-probe flops --check reports/baselines/flops.json      (in CI)
      resnet-probe flops --check costs.json --rtol macs=0.5% --increase-only
      resnet-probe flops --check costs.json --trust-sources   (entries FILE.py:factory)
      resnet-probe flops --update-baseline costs.json my_model.py:build --input-size 64 \\
          --metrics params,macs,backward_flops,activation_bytes
      resnet-probe flops torchvision:resnext50_32x4d plain:torchvision:resnet50
      resnet-probe flops my_model.py:build --in-channels 1 --input-size 28 --memory
      resnet-probe flops my_model.py:build --input x=1x3x64x64 --input mask=1x64x64:bool
    """
    from resnet_probe.results import frame
    from resnet_probe.views import STRUCTURED_VIEWS, cost_view, missing_structure

    if replace and update_baseline is None:
        raise click.UsageError("--replace goes with --update-baseline FILE")
    if (tolerances or increase_only) and check is None:
        raise click.UsageError("--rtol and --increase-only go with --check FILE")
    if trust_sources and check is None and update_baseline is None:
        raise click.UsageError("--trust-sources goes with --check FILE or --update-baseline "
                               "FILE (the models a baseline names)")
    chosen = tuple(m.strip() for m in metrics.split(",")) if metrics else None
    if update_baseline is not None or check is not None:
        if check is not None and (input_size or in_channels or inputs or batch_size != 1):
            raise click.UsageError("--check rebuilds each entry from what the baseline "
                                   "recorded; give inputs with --update-baseline instead")
        try:
            if update_baseline is not None:
                _update(update_baseline, models, replace, chosen, input_size, in_channels,
                        inputs, batch_size, trust_sources)
            else:
                _check(check, models, regression.Tolerance.parse(tolerances, increase_only),
                       chosen, fmt, trust_sources)
        except regression.BaselineError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(options.EXIT_BAD_BASELINE)
        return
    if not models:
        raise click.UsageError("name at least one MODEL (or use --check / --update-baseline)")
    shown = [m.column for m in CONVENTIONS] if convention == "all" else [convention]
    models = options.sources(models, in_channels, weights, input_size, inputs, num_classes)
    if sweep:
        if inputs:
            raise click.UsageError("--sweep varies --input-size; it does not go with --input")
        swept, failed = _each(models, lambda source: resolution_sweep(source, list(sweep),
                                                                       batch_size))
        rows = [row for result in swept for row in result]
        options.emit(_with_failures(frame(rows), failed, fmt), fmt,
                     ["model", "input_size", "params", *shown, *(["error"] if failed else [])])
        return
    results, failed = _each(models, lambda source: count_costs(
        source, None if inputs else input_size, batch_size, engine=engine,
        structure=by in STRUCTURED_VIEWS, memory=memory))
    for result in results:
        for note in result.notes:
            click.echo(f"note: {result.summary['model']}: {note}", err=True)
    for source in models:
        if source.twin_report is not None:  # what the surgery removed and kept
            click.echo(f"note: {source.text}: {source.twin_report.description()}", err=True)
    df = _with_failures(cost_view(results, by), failed, fmt)
    empty = missing_structure(results, by)
    if empty is not None:  # not a silent "(no rows)": why, and the view that has them
        click.echo(f"note: {empty}", err=True)
    memory_columns = [c for c in MEMORY_COLUMNS if c in df and df[c].notna().any()] \
        if memory else []
    if by == "model" and fmt == "table":  # conventions as rows: fits 100 columns
        from resnet_probe.report.console import conventions_table

        options.echo_result(conventions_table(df, shown, memory_columns))
    elif by == "model":
        columns = ["model", "inputs", "params", *shown, *memory_columns, "partial",
                   *(["error"] if failed else [])]
        if convention != "all":
            df = df[[*columns, "batch_size", "uncounted_operators", "count_method"]]
        options.emit(df, fmt, columns, title="resnet-probe flops")
    elif by == "module":
        options.emit(df, fmt, ["model", "module", "type", "stage", "depth", "params", "macs",
                               "macs_with_elementwise", "backward_flops",
                               *(["error"] if failed else [])], exact=True,
                     title="resnet-probe flops --by module")
    else:
        options.emit(df, fmt, exact=True, title=f"resnet-probe flops --by {by}")
    if memory and fmt == "table":
        click.echo(f"memory: {MEMORY_METHOD}", err=True)


def _each(sources, measure):
    """(results, failures): each source measured on its own, so that one that cannot be
    built, twinned or counted fails its own row (said on stderr) and not the command; when
    every one fails, the first failure is raised (its exit status is the command's)."""
    results, failed = [], []
    for source in sources:
        try:
            results.append(measure(source))
        except Exception as error:  # noqa: BLE001 - any failure is this row's; Ctrl-C is not
            failed.append((source, error))
    if failed and not results:
        raise failed[0][1]
    for source, failure in failed:
        click.echo(f"error: {source.text}: {failure}", err=True)
    return results, failed


def _with_failures(df, failed, fmt):
    """The table with a row per failed model naming its error (in a table, its first 60
    characters: stderr has it whole); counts stay integers beside the empty cells."""
    from resnet_probe.results import frame

    if not failed:
        return df
    short = fmt in ("table", "markdown")
    rows = frame([{"model": source.text, "error": _shortened(str(failure)) if short
                   else str(failure)} for source, failure in failed])
    return _with_rows(df, rows, integers=not short)


ERROR_WIDTH = 60


def _shortened(text: str) -> str:
    return text if len(text) <= ERROR_WIDTH else text[:ERROR_WIDTH - 1] + "…"


def _with_rows(df, rows, integers: bool):
    """``df`` and ``rows`` in one frame; with ``integers``, integer columns stay integers
    (nullable) for CSV and JSON, where a table shows a count the same either way."""
    import pandas as pd

    if df.empty:
        return rows
    merged = pd.concat([df, rows], ignore_index=True)
    if not integers:
        return merged
    return merged.astype({c: "Int64" for c in df.columns
                          if pd.api.types.is_integer_dtype(df[c])})


def _update(path, models, replace, metrics, input_size, in_channels, inputs, batch_size,
            trust_sources=False):
    from resnet_probe.report.console import describe_baseline_update
    from resnet_probe.sources import InputSpec

    spec = InputSpec.parse(list(inputs)) if inputs else None
    requests = [regression.Request(model, input_size, in_channels, spec, batch_size,
                                   metrics or regression.DEFAULT_METRICS)
                for model in models] or None
    if requests is None and (input_size or in_channels or inputs):
        raise click.UsageError("name the MODELS the inputs are for (without MODELS, the "
                               "file's entries are measured as they were recorded)")
    total = len(requests) if requests else None
    with options.progress_bar(total, f"measuring for {path}") as bar:
        update = regression.update_baseline(path, requests, replace, progress=bar,
                                            trust_sources=trust_sources)
    options.echo_result(describe_baseline_update(update))


def _check(path, models, tolerance, metrics, fmt, trust_sources=False):
    from resnet_probe.report.console import describe_check
    from resnet_probe.results import frame

    names = list(models) or None
    with options.progress_bar(len(names) if names else None, f"checking {path}") as bar:
        result = regression.check_baseline(path, names, tolerance, metrics=metrics,
                                           progress=bar, trust_sources=trust_sources)
    for name, reason in result.errors.items():
        click.echo(f"error: entry {name!r} could not be checked: {reason}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    line = describe_check(result)
    columns = ["model", "stage", "metric", "change", "delta_pct"]
    if fmt == "markdown":  # one block, PASS or FAIL first, to stdout and the step summary
        from resnet_probe.report.console import check_summary_markdown

        if result.exit_code:
            click.echo(line, err=True)
        summary = check_summary_markdown(result, line, columns)
        options.echo_result(summary)
        options.append_step_summary(summary, f"resnet-probe cost check: {path}")
    else:
        if result.exit_code:
            click.echo(line, err=True)
        else:
            options.echo_result(line)
        if result.drifts:
            options.emit(frame(result.drift_rows()), fmt, columns, exact=True)
    if result.exit_code:
        sys.exit(result.exit_code)


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
    from resnet_probe.environment import current_environment
    from resnet_probe.jobs.census import zoo_census
    from resnet_probe.report import write_zoo_report
    from resnet_probe.results import check_writable_dir

    out = check_writable_dir(out)
    with options.progress_bar(len(zoo.list_models()), "counting the zoo") as bar:
        census = zoo_census(bar)
    path = write_zoo_report(census, current_environment(options.command_line()), out, inline_plotly)
    options.echo_result(f"report: {path}")
    options.echo_result(f"index: {out / 'index.html'}")
