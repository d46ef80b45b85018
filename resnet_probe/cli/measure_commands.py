"""Commands that run models to measure them: latency, gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_probe.cli import options
from resnet_probe.measure.gradients import GradientConfig
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.views import DYNAMICS_VIEWS, GRADIENT_VIEWS, LATENCY_VIEWS

DYNAMICS_STEPS = (0, 1, 2, 5, 10, 20)


@options.command()
@click.argument("models", nargs=-1, required=True, type=options.MODEL)
@options.from_config(LatencyConfig, "device", "engine", "batch_size", "input_size", "repeats",
                     "warmup", "dtype", "threads", "channels_last", "backward",
                     "sweep_batch_sizes", "peak_gflops", "peak_gbytes_per_s")
@click.option("--trace", "trace_dir", type=options.PathName(file_okay=False, path_type=Path),
              default=None, help="With --engine profiler: write one profiled pass per model "
              "and direction as a Chrome/Perfetto trace (open in ui.perfetto.dev or "
              "chrome://tracing) into this folder.")
@click.option("--by", type=click.Choice(LATENCY_VIEWS), default="model", show_default=True,
              help="Rows: per model (medians with 95% intervals), each model's difference "
                   "against the first, per leaf layer, per block or stage (with intervals "
                   "over repeats), raw samples, or the batch sweep.")
@options.foreign_inputs
@options.model_inputs
@options.output_format
def latency(models, by, trace_dir, in_channels, weights, num_classes, inputs, fmt,
            **settings) -> None:
    """Time every layer of MODELS, forward and backward, on CPU or GPU.

    \b
    Per-layer medians, IQR and min come from raw samples; the un-hooked model time is
    measured beside the hooked one so the measurement's own overhead is visible. Models
    are timed in interleaved rounds (random order each round); each model's median has a
    bootstrap 95% interval, and each difference against the first model one paired by
    round: an interval that spans zero reads "no measurable difference".

    \b
    The profiler engine (--engine profiler) runs the model without timing hooks: each
    module's time is its kernels' (on a CPU its operators') from torch.profiler, each pass
    has its busy time and the share it waited on the host (launch_bound_fraction).

    \b
    Examples:
      resnet-probe latency resnet50 --batch-size 8 --repeats 30
      resnet-probe latency resnet50 plain50 --device cuda --dtype bf16 --by layer
      resnet-probe latency resnet50 --engine profiler --trace traces/ --by layer
      resnet-probe latency encoder.py:build --input input_ids=8x128:int64[0,30522) \\
          --input attention_mask=8x128:bool --threads 1
    """
    from resnet_probe.measure.latency import measure_latency
    from resnet_probe.report.console import latency_notes
    from resnet_probe.views import latency_view

    config = LatencyConfig(**settings)
    if trace_dir is not None and config.engine != "profiler":
        raise click.UsageError("--trace writes the profiler's traces: add --engine profiler")
    sources = options.sources(models, in_channels, weights, config.input_size, inputs,
                              num_classes)  # resolved once, before any bar: a bad MODEL exits 2
    with options.progress_bar(config.work(len(models)), "latency") as bar:
        result = measure_latency(sources, config, bar, trace_dir)
    for note in latency_notes(result):
        click.echo(note, err=True)
    for path in result.trace_files:
        click.echo(f"trace: {path}", err=True)
    profiler = config.engine == "profiler"
    columns = {"layer": ["model", "module", "direction", "median_ms", "iqr_ms", "min_ms",
                         *(["kernels", "dispatch_ms"] if profiler else []),
                         "noisy", "achieved_gflops_per_s", "bound"],
               "model": ["model", "engine", "device", *(["inputs"] if inputs else []),
                         "batch_size", "forward_ms",
                         "forward_ms_ci95_low", "forward_ms_ci95_high", "backward_ms",
                         "hook_overhead_ratio", "layer_sum_to_total", "images_per_s",
                         *(["forward_launch_bound_fraction"] if profiler else []),
                         "noisy_layers"],
               "difference": ["model", "baseline", "metric", "change"]}.get(by)
    options.emit(latency_view(result, by), fmt, columns)
    if by == "model" and fmt == "table" and result.comparisons:
        options.echo_result("")
        options.emit(latency_view(result, "difference"), fmt,
                     ["model", "baseline", "metric", "change"])
    if result.failures and not result.models:
        sys.exit(options.EXIT_CHECK_FAILED)


@options.command()
@click.argument("models", nargs=-1, required=True, type=options.MODEL)
@options.from_config(GradientConfig, "batch_size", "seeds", "input_size", "input",
                     "shatter_points", "shatter_projections", "head")
@click.option("--steps", type=options.IntList(minimum=0), default=None, metavar="STEPS",
              help=f"The first training steps: train each model in the recipe it is trained "
                   f"with here (degradation's for CIFAR-style nets, compare's otherwise) and "
                   f"watch these steps [default for --by dynamics: "
                   f"{','.join(map(str, DYNAMICS_STEPS))}].")
@click.option("--by", type=click.Choice([*GRADIENT_VIEWS, *DYNAMICS_VIEWS]), default=None,
              help="Rows: per model, per block output, per stage (mean over its blocks, with "
                   "the within-stage ratio), per weighted layer, the shattering curve by lag, "
                   "or the first steps per model or per layer [default: model, or dynamics "
                   "with --steps].")
@options.foreign_inputs
@options.model_inputs
@options.output_format
def gradients(models, steps, by, in_channels, weights, num_classes, inputs, fmt,
              **settings) -> None:
    """Measure gradient norms by depth at initialization, plain vs residual.

    \b
    grad_ratio_first_last = ||dL/ds|| at the first block's join / at the last block's
    (s: the sum before the block's last ReLU), on the net as training builds it (the
    digits' 10 classes and channels, the training input size; --head imagenet measures
    the model's own head instead, labelled). The trend label comes from the fit
    (exponential or power law) that is better on the seeds, by a t interval; within-stage
    ratios set stage transitions apart (a zero-init residual net reads exactly 1).

    \b
    --steps follows the first training steps of the real recipe: per layer ||dL/dW||/||W||,
    the effective step lr*||dL/dW||/||W||, and ||dW||/||W|| (which momentum bounds).

    \b
    Examples:
      resnet-probe gradients plain56 resnet56 --seeds 0,1,2
      resnet-probe gradients plain56 resnet56 --steps 0,1,2,5,10,20
      resnet-probe gradients plain20 resnet20 --by shattering --format json
      resnet-probe gradients encoder.py:build --input input_ids=2x128:int64[0,30522) \\
          --input attention_mask=2x128:bool

    \b
    A model whose output is not class logits (a U-Net's map) takes a surrogate loss, a
    fixed random projection of its output, and the rows and notes say so.
    """
    from resnet_probe.measure.gradients import measure_gradients
    from resnet_probe.train.dynamics import dynamics_summary, measure_recipe_dynamics
    from resnet_probe.views import gradient_view, measured_for

    by = by or ("dynamics" if steps else "model")
    # The probe builds each net for the digits it feeds, unless told its head and channels.
    config = GradientConfig(**settings, num_classes=num_classes, in_channels=in_channels)
    models = options.sources(models, in_channels, weights, config.input_size, inputs,
                             num_classes)
    if by in DYNAMICS_VIEWS:
        watched = steps or DYNAMICS_STEPS
        with options.progress_bar(len(models) * len(config.seeds), "dynamics") as bar:
            layers, joins, data = measure_recipe_dynamics(list(models), watched,
                                                          config.seeds, bar)
        click.echo(f"data: {data}; each model in the recipe it is trained with here",
                   err=True)
        if by == "dynamics":
            options.emit(dynamics_summary(layers), fmt)
        else:
            options.emit(layers, fmt, ["model", "seed", "step", "module", "depth", "lr",
                                       "grad_norm", "weight_norm", "grad_to_weight",
                                       "effective_step", "update_to_weight"])
        return
    if steps:
        raise click.UsageError(f"--steps gives the dynamics views (--by dynamics or "
                               f"dynamics_layer), not --by {by}")

    config = measured_for(by, config)
    with options.progress_bar(config.work(len(models)), "gradients") as bar:
        result = measure_gradients(models, config, bar)
    click.echo(f"input: {result.input_description}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    options.emit(gradient_view(result, by), fmt,
                 ["model", "depth", "shortcut", "grad_ratio_first_last", "grad_ratio_std",
                  "max_within_stage_ratio", "gradient_trend", "loss"] if by == "model"
                 else None)
