"""Click commands: parse, call the library, print, set the exit code.

Exit codes: 0 success; 1 a failed check (flops --check drift) or a runtime problem reported by
the library; 2 a bad command line (unknown model, bad option value); 130 interrupted.
"""

from __future__ import annotations

import functools
import shlex
import signal
import sys
import warnings
from pathlib import Path

import click

from resnet_probe import __version__

FORMATS = ("table", "csv", "json")
CONVENTIONS = ("macs", "macs_v1", "macs_fvcore_default", "macs_with_elementwise", "flops",
               "backward_flops")
GIGA = (1e9, "G")


def _parse_int_list(value: str | None, option: str) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    try:
        items = tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 20,56: {value!r}",
                                 param_hint=option) from None
    return items


class ModelName(click.ParamType):
    """A registered name or BASE[field=value,...]; unknown names suggest close matches."""

    name = "MODEL"

    def convert(self, value, param, ctx):
        from resnet_probe.zoo import get_spec

        try:
            get_spec(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


MODEL = ModelName()


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler or container stop), raised where Ctrl-C would be, so every path
    that keeps partial results on Ctrl-C keeps them on SIGTERM too."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def interrupt_exit(error: KeyboardInterrupt) -> tuple[str, int]:
    """What to call the interruption and the conventional exit status (128 + signal)."""
    if isinstance(error, Terminated):
        return "terminated (SIGTERM)", 128 + signal.SIGTERM
    return "interrupted", 130


def user_errors(fn):
    """Library ValueErrors are user mistakes: a message and exit 1, never a traceback. SIGTERM
    is handled like Ctrl-C; warnings from numerical libraries are reported in our words."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                try:
                    return fn(*args, **kwargs)
                finally:
                    _report_numerical_warnings(caught)
        except click.ClickException:
            raise
        except KeyboardInterrupt as error:
            what, code = interrupt_exit(error)
            click.echo(f"\n{what}", err=True)
            sys.exit(code)
        except (ValueError, FileNotFoundError, OSError) as error:
            raise click.ClickException(str(error)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapper


def _report_numerical_warnings(caught) -> None:
    messages = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    for message in messages:
        click.echo(f"note: a numerical library warned \"{message}\" while computing this "
                   f"output; a statistic over empty or constant values shows as blank (NaN)",
                   err=True)


def emit(df, fmt: str, columns: list[str] | None = None, scale: dict | None = None) -> None:
    from resnet_probe.report.console import console_table
    from resnet_probe.results import to_json_records

    if fmt == "json":
        click.echo(to_json_records(df))
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    else:
        click.echo(console_table(df, columns, scale))


def progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


def format_option(fn):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output: aligned table, CSV, or a JSON array "
                        "of row objects.")(fn)


def input_size_option(fn):
    return click.option("--input-size", type=click.IntRange(min=1), default=None,
                        help="Square input side in pixels [default: 224 for ImageNet-style, "
                             "32 for CIFAR-style].")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="resnet-probe")
def cli() -> None:
    """Architecture analysis and profiling for ResNets and their plain twins.

    \b
    Start here:
      resnet-probe compare resnet34 plain34     the full report (costs, latency,
                                                gradients, degradation, bottlenecks)
      resnet-probe list                         every model name
      resnet-probe flops resnet50 --by stage    MACs/FLOPs in every convention

    MODEL is a registered name (resnet18..152, resnet20..1202, tiny resnet8/10/14,
    resnext50_32x4d, resnext101_32x8d/64x4d, wide_resnet50_2/101_2, resnet50c/50d/101d,
    preact_resnet110/164/1001, wrn16_8/28_10/40_4, and each one's plain twin: plain34,
    plain_resnext50_32x4d, wide_plain50_2, ...) or a custom layout BASE[field=value,...],
    e.g. 'resnet50[stride_placement=1x1]' or 'cifar[layers=9-9-9,shortcut=false]'.
    """


@cli.command("list")
@click.option("--include", multiple=True, help="Glob pattern to keep, e.g. 'plain*'.")
@click.option("--exclude", multiple=True, help="Glob pattern to drop, e.g. '*1202'.")
@format_option
@user_errors
def list_command(include, exclude, fmt) -> None:
    """List every model variant with its family, design, block, depth, shortcut and params.

    \b
    Example:
      resnet-probe list --include 'resnet*' --format json
    """
    from resnet_probe.results import frame
    from resnet_probe.zoo import build_on_meta, get_spec, list_models

    rows = []
    for name in list_models(include=list(include) or None, exclude=list(exclude) or None):
        spec = get_spec(name)
        model = build_on_meta(name)
        rows.append({"name": name, "family": spec.family, "design": spec.design.value,
                     "block": spec.block.value, "depth": spec.depth, "shortcut": spec.shortcut,
                     "shortcut_option": spec.shortcut_option.value if spec.shortcut else None,
                     "params": sum(p.numel() for p in model.parameters())})
    emit(frame(rows), fmt)


@cli.command()
@click.argument("model", type=MODEL)
@input_size_option
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many levels of nested modules to show.")
@user_errors
def show(model, input_size, depth) -> None:
    """Print MODEL's architecture summary (torchinfo): layers, output shapes, params.

    \b
    Example:
      resnet-probe show resnet50 --input-size 224 --depth 2
    """
    import torch
    import torchinfo

    from resnet_probe.zoo import build_model, get_spec

    from resnet_probe.measure.memory import check_fits
    from resnet_probe.zoo import build_on_meta

    spec = get_spec(model)
    size = input_size or spec.default_input_size
    spec.check_input_size(size)
    check_fits(build_on_meta(model), (1, spec.in_channels, size, size), torch.device("cpu"),
               training=False, what=f"showing {model}")
    summary = torchinfo.summary(build_model(model), input_size=(1, spec.in_channels, size, size),
                                depth=depth, verbose=0,
                                col_names=("output_size", "num_params", "mult_adds"))
    stride = (f", stride on the {spec.stride_placement.value} conv"
              if spec.block.value == "bottleneck" else "")
    shortcut = (f"option {spec.shortcut_option.value} shortcuts" if spec.shortcut
                else "no shortcuts (plain)")
    click.echo(f"{model}: {spec.family}-style {spec.design.value}, "
               f"{'pre-activation ' if spec.preact else ''}{spec.block.value} blocks {spec.layers}"
               f"{f', {spec.groups}x{spec.width_per_group}d' if spec.groups > 1 else ''}, "
               f"{shortcut}{stride}, depth {spec.depth}, input {size}x{size}")
    click.echo(str(summary))


@cli.command()
@click.argument("models", nargs=-1, type=MODEL)
@input_size_option
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--by", type=click.Choice(["model", "module", "block", "stage", "operator"]),
              default="model", show_default=True, help="Row granularity.")
@click.option("--convention", type=click.Choice(["all", *CONVENTIONS]), default="all",
              show_default=True, help="Show one convention's column: macs (a), "
              "macs_with_elementwise (b), flops (c), backward_flops (d), macs_v1 (paper "
              "stride), macs_fvcore_default.")
@click.option("--engine", type=click.Choice(["torch", "fvcore"]), default="torch",
              show_default=True, help="torch's FlopCounterMode (meta device, counts backward) "
              "or fvcore's FlopCountAnalysis (TorchScript trace).")
@click.option("--sweep", "sweep", default=None, metavar="SIZES",
              help="Resolution sweep: comma-separated input sizes, e.g. 128,160,224,320.")
@click.option("--check", "check", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Compare with a baseline JSON; exit 1 with a diff table on any drift.")
@click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Relative tolerance for --check (0 = exact; must be finite).")
@click.option("--update-baseline", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Measure MODELS (default: the whole zoo) and merge them into "
              "this baseline file, saying which entries were added or replaced.")
@click.option("--replace", is_flag=True, help="With --update-baseline: start the file afresh "
              "instead of merging into it.")
@format_option
@user_errors
def flops(models, input_size, batch_size, by, convention, engine, sweep, check, rtol,
          update_baseline, replace, fmt) -> None:
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
    """
    from resnet_probe import regression
    from resnet_probe.measure.costs import count_costs, resolution_sweep, stage_costs
    from resnet_probe.results import frame

    if replace and update_baseline is None:
        raise click.UsageError("--replace goes with --update-baseline FILE")
    if update_baseline is not None:
        names = list(models) or None  # none named: the file's own entries, or the whole zoo
        if names is None and update_baseline.exists() and not replace:
            names = list(regression.load_baseline(update_baseline)["models"])
        update = regression.write_baseline(update_baseline, names, replace)
        click.echo(f"wrote {update.path}: {len(update.added)} added, {len(update.replaced)} "
                   f"replaced, {len(update.kept)} kept"
                   + (f" (added: {', '.join(update.added)})" if update.added else "")
                   + (f" (replaced: {', '.join(update.replaced)})" if update.replaced else ""))
        return
    if check is not None:
        rows, drifts = regression.check_baseline(check, list(models) or None, rtol)
        if drifts:
            bad = frame([r for r in rows if not r["ok"]])
            click.echo(f"FLOP regression check FAILED against {check}: "
                       f"{len(drifts)} value(s) drifted (rtol={rtol})", err=True)
            emit(bad, fmt, ["model", "stage", "metric", "expected", "got", "delta_pct"])
            sys.exit(1)
        checked = len({r["model"] for r in rows})
        click.echo(f"FLOP regression check passed: {checked} models, {len(rows)} values "
                   f"match {check} (rtol={rtol})")
        return
    if not models:
        raise click.UsageError("name at least one MODEL (or use --check / --update-baseline)")
    if sweep:
        sizes = _parse_int_list(sweep, "--sweep")
        rows = [row for name in models for row in resolution_sweep(name, list(sizes), batch_size)]
        emit(frame(rows), fmt, ["model", "input_size", "params", "macs", "flops",
                                "macs_with_elementwise", "backward_flops"],
             {k: GIGA for k in ("macs", "flops", "macs_with_elementwise", "backward_flops")})
        return
    results = [count_costs(name, input_size, batch_size, engine=engine) for name in models]
    shown = list(CONVENTIONS) if convention == "all" else [convention]
    if by == "model":
        df = frame([r.summary for r in results])
        if fmt != "table" and convention != "all":
            df = df[["model", "input_size", "batch_size", "params", *shown, "partial",
                     "uncounted_operators"]]
        emit(df, fmt, ["model", "input_size", "params", *shown, "partial"],
             {k: (1e9, f"{k} (G)") for k in CONVENTIONS})
    elif by == "module":
        emit(frame([row for r in results for row in r.modules]), fmt,
             ["model", "module", "type", "stage", "depth", "params", "macs",
              "macs_with_elementwise", "backward_flops"])
    elif by == "block":
        df = frame([row for r in results for row in r.modules])
        df = df.assign(block=df["block"].fillna(df["stage"])).groupby(
            ["model", "block"], sort=False, as_index=False)[
            ["params", "macs", "flops", "macs_with_elementwise", "backward_flops"]].sum()
        emit(df, fmt)
    elif by == "stage":
        emit(frame([row for r in results for row in stage_costs(r)]), fmt)
    else:
        emit(frame([row for r in results for row in r.operators]), fmt)


@cli.command()
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True,
              help="Inner width d: basic at d, bottleneck at 4d (inner d), basic at 4d.")
@click.option("--size", type=click.IntRange(min=1), default=56, show_default=True,
              help="Spatial size H = W of the feature map.")
@format_option
@user_errors
def bottleneck(width, size, fmt) -> None:
    """Show why bottleneck blocks are cheaper: weights and MACs per conv (paper Fig. 5).

    \b
    Example:
      resnet-probe bottleneck --width 64 --size 56
    """
    from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
    from resnet_probe.results import frame

    rows = block_cost_rows(width, size)
    emit(frame(rows), fmt)
    if fmt == "table":
        click.echo()
        emit(frame(block_cost_totals(rows)), fmt)


@cli.command()
@click.argument("models", nargs=-1, required=True, type=MODEL)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto picks CUDA when present.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@input_size_option
@click.option("--repeats", type=int, default=20, show_default=True,
              help="Timed passes kept as raw samples.")
@click.option("--warmup", type=int, default=5, show_default=True,
              help="Passes run first and discarded.")
@click.option("--dtype", default="fp32", show_default=True, help="fp32, bf16 or fp16.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads [default: every core].")
@click.option("--channels-last", is_flag=True, help="Use the channels_last memory format.")
@click.option("--forward-only", is_flag=True, help="Skip backward timing.")
@click.option("--sweep-batch", default=None, metavar="SIZES",
              help="Throughput sweep: comma-separated batch sizes, e.g. 1,8,32.")
@click.option("--peak-gflops", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Roofline peak compute [default: measured with a large matmul].")
@click.option("--peak-gbs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Roofline peak bandwidth in GB/s [default: measured with a large copy].")
@click.option("--by", type=click.Choice(["model", "layer", "block", "stage", "sample", "sweep"]),
              default="model", show_default=True,
              help="Rows: per model, per leaf layer, rolled up per block or stage (sums of "
                   "layer medians), raw samples, or the batch sweep.")
@format_option
@user_errors
def latency(models, device, batch_size, input_size, repeats, warmup, dtype, threads,
            channels_last, forward_only, sweep_batch, peak_gflops, peak_gbs, by, fmt) -> None:
    """Time every layer of MODELS, forward and backward, on CPU or GPU.

    \b
    Per-layer medians, IQR and min come from raw samples; the un-hooked model time is
    measured beside the hooked one so the measurement's own overhead is visible.

    \b
    Examples:
      resnet-probe latency resnet50 --batch-size 8 --repeats 30
      resnet-probe latency resnet50 plain50 --device cuda --dtype bf16 --by layer
    """
    from resnet_probe.measure.latency import LatencyConfig, measure_latency
    from resnet_probe.results import frame

    if repeats < 1:
        raise click.BadParameter(f"must be at least 1: --repeats {repeats}",
                                 param_hint="--repeats")
    if warmup < 0:
        raise click.BadParameter(f"must be 0 or more: --warmup {warmup}", param_hint="--warmup")
    config = LatencyConfig(device=device, batch_size=batch_size, input_size=input_size,
                           repeats=repeats, warmup=warmup, dtype=dtype, threads=threads,
                           channels_last=channels_last, backward=not forward_only,
                           sweep_batch_sizes=_parse_int_list(sweep_batch, "--sweep-batch"),
                           peak_gflops=peak_gflops, peak_gbytes_per_s=peak_gbs)
    bar = progress_bar(len(models) * (1 + len(config.sweep_batch_sizes)), "latency")
    with bar:
        result = measure_latency(list(models), config, bar)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for failure in result.failures:
        click.echo(f"warning: {failure['model']} batch {failure['batch_size']}: "
                   f"{failure['error']} (rows already measured are kept)", err=True)
    env = result.environment
    click.echo(f"device: {env['device']} ({env['device_name']}), threads {env['threads']}, "
               f"dtype {env['dtype']}, torch {env['torch_version']}", err=True)
    if by == "layer":
        emit(frame(result.layers), fmt, ["model", "module", "direction", "median_ms", "iqr_ms",
                                         "min_ms", "noisy", "achieved_gflops_per_s", "bound"])
    elif by in ("block", "stage"):
        layers = frame(result.layers)
        key = layers["block"].fillna(layers["stage"]) if by == "block" else layers["stage"]
        rolled = layers.assign(**{by: key}).groupby(["model", "direction", by], sort=False,
                                                   as_index=False)["median_ms"].sum()
        emit(rolled.rename(columns={"median_ms": "sum_of_median_ms"}), fmt)
    elif by == "sample":
        emit(frame(result.samples), fmt)
    elif by == "sweep":
        emit(frame(result.sweep), fmt)
    else:
        emit(frame(result.models), fmt, ["model", "device", "batch_size", "forward_ms",
                                         "backward_ms", "hooked_forward_ms",
                                         "hook_overhead_ratio", "layer_sum_to_total",
                                         "images_per_s", "noisy_layers"])
    if result.failures and not result.models:
        sys.exit(1)


@cli.command()
@click.argument("models", nargs=-1, required=True, type=MODEL)
@click.option("--batch-size", type=click.IntRange(min=2), default=32, show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True,
              help="Comma-separated seeds; results are mean ± std across them.")
@input_size_option
@click.option("--input", "input_kind", type=click.Choice(["data", "random"]), default="data",
              show_default=True, help="A batch of the embedded digits, or Gaussian noise.")
@click.option("--shatter-points", type=click.IntRange(min=0), default=16, show_default=True,
              help="Points on the input line for the shattering measure (0 = skip).")
@click.option("--by", type=click.Choice(["model", "block", "stage", "layer", "shattering"]),
              default="model", show_default=True,
              help="Rows: per model, per block output, per stage (mean over its blocks), per "
                   "weighted layer, or the shattering curve.")
@format_option
@user_errors
def gradients(models, batch_size, seeds, input_size, input_kind, shatter_points, by, fmt
              ) -> None:
    """Measure gradient norms by depth at initialization, plain vs residual.

    \b
    grad_ratio_first_last = ||dL/dx|| at the first block / at the last block;
    above 1 the gradient grows toward the input (plain BN nets explode), near 1 it is
    carried through by the identity shortcuts.

    \b
    Example:
      resnet-probe gradients plain56 resnet56 --seeds 0,1,2
    """
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.results import frame

    seed_list = _parse_int_list(seeds, "--seeds")
    config = GradientConfig(batch_size=batch_size, seeds=seed_list, input_size=input_size,
                            input=input_kind, shatter_points=shatter_points)
    with progress_bar(len(models) * len(seed_list), "gradients") as bar:
        result = measure_gradients(models, config, bar)
    click.echo(f"input: {result.input_description}", err=True)
    tables = {"model": result.models, "block": result.blocks, "layer": result.layers,
              "shattering": result.shattering}
    if by == "stage":
        blocks = frame(result.blocks)
        emit(blocks.groupby(["model", "stage"], sort=False, as_index=False)[
            ["act_grad_norm", "act_std"]].mean(), fmt)
        return
    emit(frame(tables[by]), fmt,
         ["model", "depth", "shortcut", "grad_ratio_first_last", "grad_ratio_std",
          "growth_per_layer", "gradient_trend", "first_nonfinite_forward",
          "first_nonfinite_gradient"] if by == "model" else None)


@cli.command()
@click.option("--family", type=click.Choice(["cifar", "imagenet"]), default="cifar",
              show_default=True)
@click.option("--depths", default=None, help="Comma-separated depths [default: 20,56 for "
              "cifar (6n+2), 18,34 for imagenet].")
@click.option("--preact", is_flag=True, help="Pre-activation twins (He et al. 2016b): "
              "BN-ReLU before each conv, a clean identity path.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits (embedded, offline), fashion-mnist or cifar10 (downloaded once).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where real datasets live or are downloaded [default: "
                   "~/.cache/resnet-probe/NAME].")
@click.option("--steps", type=int, default=None, help="Training steps [default: 300].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Budget in epochs instead of steps.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--batch-size", type=click.IntRange(min=2), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.1,
              show_default=True)
@click.option("--warmup-steps", type=click.IntRange(min=0), default=50, show_default=True,
              help="Steps at --warmup-lr before --lr (the paper's ResNet-110 trick).")
@click.option("--warmup-lr", type=click.FloatRange(min=0, min_open=True), default=0.01,
              show_default=True)
@click.option("--augment", is_flag=True, help="Pad-4, random-crop, flip (CIFAR-10 recipe).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoints; "
              "only a run started with the same arguments (its manifest.json) continues.")
@click.option("--force-new", is_flag=True, help="With --resume: discard a run whose arguments "
              "differ and start over.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/degradation"),
              show_default=True, help="Report, data tables and checkpoints go here.")
@click.option("--inline-plotly", is_flag=True, help="Embed plotly.js in the page.")
@format_option
@user_errors
def degradation(family, depths, preact, dataset, data_dir, steps, epochs, seeds, batch_size, lr,
                warmup_steps, warmup_lr, augment, device, resume, force_new, out, inline_plotly,
                fmt) -> None:
    """Train plain and residual twins at each depth and report the degradation problem.

    \b
    Deeper plain nets reach higher *training* error; residual nets do not (He et al.
    2016, Fig. 6). Ctrl-C keeps every result so far; --resume continues.

    \b
    Examples:
      resnet-probe degradation                                  (digits, 20 vs 56, ~5 min)
      resnet-probe degradation --depths 20,32,44,56 --seeds 0,1,2 --steps 600
      resnet-probe degradation --dataset cifar10 --augment --epochs 10 --device cuda
      torchrun --nproc_per_node 4 -m resnet_probe degradation --device cuda --seeds 0,1
    """
    import torch

    from resnet_probe.comparison import degradation_tables, environment_info, recipe_text
    from resnet_probe.data import DATASETS, load_dataset
    from resnet_probe.report import write_degradation_report
    from resnet_probe.results import check_writable_dir, frame
    from resnet_probe.train.degradation import (
        DEFAULT_DEPTHS,
        DegradationConfig,
        fit_dataset_to,
        run_degradation,
    )
    from resnet_probe.train.loop import TrainConfig, setup_distributed
    from resnet_probe.train.run_folder import ManifestMismatch

    if dataset not in DATASETS:
        raise click.BadParameter(f"unknown dataset {dataset!r}; choose one of: "
                                 f"{', '.join(DATASETS)}", param_hint="--dataset")
    if steps is not None and epochs is not None:
        raise click.UsageError("give --steps or --epochs, not both")
    if steps is not None and steps < 1:
        raise click.BadParameter(f"must be at least 1: --steps {steps}", param_hint="--steps")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine; use --device cpu",
                                 param_hint="--device")
    depth_list = _parse_int_list(depths, "--depths") or DEFAULT_DEPTHS[family]
    seed_list = _parse_int_list(seeds, "--seeds")
    config = DegradationConfig(family=family, depths=depth_list, dataset=dataset, preact=preact,
                               seeds=seed_list, data_dir=str(data_dir) if data_dir else None)
    names = config.model_names()  # validates depths before any data is loaded
    out = check_writable_dir(out)
    world = setup_distributed(device)
    data = fit_dataset_to(load_dataset(dataset, data_dir), names)
    if epochs is not None:
        steps = max(1, round(epochs * len(data.train_y) / batch_size))
    try:
        train = _degradation_recipe(steps, batch_size, lr, warmup_steps, warmup_lr, augment,
                                    device)
    except ValueError as error:  # a schedule that cannot take effect is a bad command line
        raise click.UsageError(str(error)) from None
    config = DegradationConfig(**{**config.__dict__, "train": train})
    environment = {"train_dataset": data.description, "train_recipe": recipe_text(train),
                   "world_size": world.world_size, "seeds": list(seed_list),
                   **environment_info(" ".join(["resnet-probe", *map(shlex.quote,
                                                                     sys.argv[1:])]))}

    def save(result) -> None:
        tables = degradation_tables(result)
        write_degradation_report(tables, environment, out,
                                 f"resnet-probe degradation: {family}, depths "
                                 f"{', '.join(map(str, depth_list))}", inline_plotly)

    total = len(names) * len(seed_list) * train.steps
    bar = progress_bar(total, "degradation") if world.is_main else None
    try:
        try:
            result = run_degradation(config, out, resume=resume, progress=bar,
                                     on_run_done=save, dataset=data)
        except ManifestMismatch as mismatch:
            if not force_new:
                raise click.UsageError(str(mismatch)) from None
            click.echo(f"--force-new: {mismatch}; starting over", err=True)
            result = run_degradation(config, out, resume=False, progress=bar,
                                     on_run_done=save, dataset=data)
    except KeyboardInterrupt as error:
        what, code = interrupt_exit(error)
        if world.is_main:
            click.echo(f"\n{what}: every step recorded so far is in {out} "
                       f"(report, data/, runs/); rerun with --resume to continue", err=True)
        sys.exit(code)
    finally:
        if bar is not None:
            bar.close()
    if not world.is_main:
        return
    report = out / "degradation.html"
    click.echo(f"report: {report}", err=True)
    finals = frame(result.final_rows())
    emit(finals, fmt, ["model", "depth", "shortcut", "seed", "final_train_error",
                       "final_train_error_eval", "final_test_error", "status", "seconds"]
         if fmt == "table" else None)


def _degradation_recipe(steps, batch_size, lr, warmup_steps, warmup_lr, augment, device):
    import torch

    from resnet_probe.train.loop import TrainConfig

    budget = steps or 300
    return TrainConfig(steps=budget, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                       warmup_lr=warmup_lr, augment=augment,
                       device=f"cuda:{torch.cuda.current_device()}" if device == "cuda"
                       else "cpu",
                       eval_every=max(1, budget // 10), grad_norm_every=max(1, budget // 12),
                       checkpoint_every=max(1, budget // 10))


@cli.command()
@click.argument("models", nargs=-1, type=MODEL)
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True, help="Directory for the report and its data folder.")
@input_size_option
@click.option("--no-train", is_flag=True, help="Skip the short training section.")
@click.option("--train-steps", type=click.IntRange(min=1), default=None,
              help="Steps per model in the training section [default: 200].")
@click.option("--from-degradation", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Reuse an earlier `degradation --out DIR` run for the "
              "training section.")
@click.option("--no-latency", is_flag=True, help="Skip the latency section.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Device for the latency and training sections; auto "
              "picks CUDA when present.")
@click.option("--inline-plotly", is_flag=True,
              help="Embed plotly.js in the page instead of writing plotly.min.js beside it.")
@user_errors
def compare(models, out, input_size, no_train, train_steps, from_degradation, no_latency,
            device, inline_plotly) -> None:
    """Compare MODELS in one HTML report; the first model is the baseline.

    \b
    Sections: summary with deltas, architecture per stage, params and MACs in every
    convention, per-layer latency, gradient norms by depth, degradation curves, why
    bottlenecks are cheaper, environment. Tables go to a data folder beside the report.

    \b
    Examples:
      resnet-probe compare resnet34 plain34
      resnet-probe compare resnet18 resnet34 resnet50 plain34 --no-train
      resnet-probe compare plain56 resnet56 --from-degradation reports/degradation
    """
    from dataclasses import replace

    from resnet_probe.comparison import (
        COMPARE_LATENCY,
        COMPARE_TRAIN,
        CompareOptions,
        run_compare,
        siblings,
    )
    from resnet_probe.report import compare_report_name, write_compare_report
    from resnet_probe.report.console import console_table
    from resnet_probe.results import check_writable_dir

    if len(models) < 2:
        raise click.UsageError(f"compare needs at least two models, the first being the "
                               f"baseline: got {list(models)}; e.g. "
                               f"`resnet-probe compare resnet34 plain34`")
    duplicates = sorted({m for m in models if models.count(m) > 1})
    if duplicates:
        raise click.UsageError(f"model {duplicates[0]!r} is named twice; compare distinct "
                               f"models")
    from resnet_probe.measure.latency import resolve_device

    out = check_writable_dir(out)
    resolved = resolve_device(device)
    train_device = f"cuda:{resolved.index or 0}" if resolved.type == "cuda" else "cpu"
    train = None if no_train else replace(COMPARE_TRAIN, device=train_device,
                                          steps=train_steps or COMPARE_TRAIN.steps)
    options = CompareOptions(
        input_size=input_size,
        latency=None if no_latency else replace(COMPARE_LATENCY, device=device),
        train=train, degradation_dir=from_degradation)
    trained = 0 if (train is None or from_degradation) else len(models) + len(
        siblings(list(models)))
    steps = 1 + (len(models) * (1 + len(COMPARE_LATENCY.sweep_batch_sizes))
                 if not no_latency else 0) + len(models) * len(options.gradients.seeds) + (
        trained * train.steps if trained else 0)
    command_line = " ".join(["resnet-probe", *map(shlex.quote, sys.argv[1:])])
    with progress_bar(steps, "compare") as bar:
        result = run_compare(list(models), options, bar, out_dir=out,
                             command_line=command_line)
        bar.set_description("writing report")
        path = write_compare_report(result, out, inline_plotly)
    click.echo(f"report: {path}")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.interrupted:
        what, code = interrupt_exit(result.interruption)
        click.echo(f"{what}: the report keeps every finished section", err=True)
        sys.exit(code)
    deltas = result.tables["deltas"]
    columns = ["model"] + [c for c in ("params", "params_delta_pct", "macs", "macs_delta_pct",
                                       "forward_ms", "forward_ms_delta_pct",
                                       "grad_ratio_first_last", "final_train_error")
                           if c in deltas]
    click.echo(console_table(deltas, columns, {"macs": (1e9, "GMACs")}))
    click.echo(f"data: {out / (compare_report_name(result.models) + '-data')}")


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"),
              show_default=True)
@click.option("--inline-plotly", is_flag=True)
@user_errors
def report(out, inline_plotly) -> None:
    """Write the zoo report (every variant, cost vs depth, bottleneck vs basic) and the
    index page linking every report in --out.

    \b
    Example:
      resnet-probe report --out reports
    """
    from resnet_probe.comparison import environment_info
    from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.report import write_zoo_report
    from resnet_probe.results import check_writable_dir, frame
    from resnet_probe.zoo import list_models

    out = check_writable_dir(out)
    names = list_models()
    rows = []
    with progress_bar(len(names), "counting the zoo") as bar:
        for name in names:
            summary = count_costs(name).summary
            rows.append({key: summary[key] for key in (
                "model", "family", "design", "block", "depth", "shortcut", "groups",
                "width_per_group", "widths", "shortcut_option",
                "input_size", "params", "macs", "macs_v1", "macs_fvcore_default",
                "macs_with_elementwise", "flops", "backward_flops", "partial")})
            bar.update(1)
    widths = []
    for width in (16, 32, 64, 128, 256, 512):
        for total in block_cost_totals(block_cost_rows(width, 56)):
            widths.append({"width": width, "design": total["template"],
                           "weights": total["weights"], "mmacs": total["macs"] / 1e6})
    default_rows = block_cost_rows()
    path = write_zoo_report(frame(rows), frame(widths),
                            {"bottleneck": frame(default_rows),
                             "bottleneck_totals": frame(block_cost_totals(default_rows))},
                            environment_info(), out, inline_plotly)
    click.echo(f"report: {path}")
    click.echo(f"index: {out / 'index.html'}")


def main() -> None:
    cli(prog_name="resnet-probe")
