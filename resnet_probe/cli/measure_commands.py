"""Commands that run models to measure them: latency, gradients."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from resnet_probe.cli import options
from resnet_probe.measure.dynamics import DynamicsConfig
from resnet_probe.measure.gradients import GradientConfig
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.views import DYNAMICS_VIEWS, GRADIENT_VIEWS, LATENCY_VIEWS

DYNAMICS = DynamicsConfig()


@options.command()
@click.argument("models", nargs=-1, required=True, type=options.MODEL)
@options.from_config(LatencyConfig, "device", "batch_size", "input_size", "repeats", "warmup",
                     "dtype", "threads", "channels_last", "backward", "sweep_batch_sizes",
                     "peak_gflops", "peak_gbytes_per_s")
@click.option("--by", type=click.Choice(LATENCY_VIEWS), default="model", show_default=True,
              help="Rows: per model (medians with 95% intervals), each model's difference "
                   "against the first, per leaf layer, per block or stage (with intervals "
                   "over repeats), raw samples, or the batch sweep.")
@options.foreign_inputs
@options.output_format
def latency(models, by, in_channels, weights, fmt, **settings) -> None:
    """Time every layer of MODELS, forward and backward, on CPU or GPU.

    \b
    Per-layer medians, IQR and min come from raw samples; the un-hooked model time is
    measured beside the hooked one so the measurement's own overhead is visible. Models
    are timed in interleaved rounds (random order each round); each model's median has a
    bootstrap 95% interval, and each difference against the first model one paired by
    round: an interval that spans zero reads "no measurable difference".

    \b
    Examples:
      resnet-probe latency resnet50 --batch-size 8 --repeats 30
      resnet-probe latency resnet50 plain50 --device cuda --dtype bf16 --by layer
    """
    from resnet_probe.measure.latency import measure_latency
    from resnet_probe.report.console import latency_notes
    from resnet_probe.report.labels import with_bound
    from resnet_probe.views import latency_view

    config = LatencyConfig(**settings)
    with options.progress_bar(config.work(len(models)), "latency") as bar:
        result = measure_latency(options.sources(models, in_channels, weights, config.input_size),
                                 config, bar)
    for note in latency_notes(result):
        click.echo(note, err=True)
    columns = {"layer": ["model", "module", "direction", "median_ms", "iqr_ms", "min_ms",
                         "noisy", "achieved_gflops_per_s", "bound"],
               "model": ["model", "device", "batch_size", "forward_ms", "forward_ms_ci95_low",
                         "forward_ms_ci95_high", "backward_ms", "hook_overhead_ratio",
                         "layer_sum_to_total", "images_per_s", "noisy_layers"],
               "difference": ["model", "baseline", "metric", "change"]}.get(by)
    view = latency_view(result, by)
    if by == "layer":
        view = with_bound(view, result.environment["peak_gflops"],
                          result.environment["peak_gbytes_per_s"])
    options.emit(view, fmt, columns)
    if by == "model" and fmt == "table" and result.comparisons:
        click.echo()
        options.emit(latency_view(result, "difference"), fmt,
                     ["model", "baseline", "metric", "change"])
    if result.failures and not result.models:
        sys.exit(options.EXIT_CHECK_FAILED)


@options.command()
@click.argument("models", nargs=-1, required=True, type=options.MODEL)
@options.from_config(GradientConfig, "batch_size", "seeds", "input_size", "input", "shatter_points")
@click.option("--steps", type=options.IntList(minimum=0), default=None, metavar="STEPS",
              help=f"Gradient dynamics: train each model from init (SGD lr {DYNAMICS.lr}, batch "
                   f"{DYNAMICS.batch_size}, no warm-up) and record these steps [default for "
                   f"--by dynamics: {','.join(map(str, DYNAMICS.steps))}].")
@click.option("--by", type=click.Choice([*GRADIENT_VIEWS, *DYNAMICS_VIEWS]), default=None,
              help="Rows: per model, per block output, per stage (mean over its blocks, with "
                   "the within-stage ratio), per weighted layer, the shattering curve by lag, "
                   "or the dynamics per step (per layer too) [default: model, or dynamics "
                   "with --steps].")
@options.foreign_inputs
@options.output_format
def gradients(models, steps, by, in_channels, weights, fmt, **settings) -> None:
    """Measure gradient norms by depth at initialization, plain vs residual.

    \b
    grad_ratio_first_last = ||dL/ds|| at the first block's join / at the last block's
    (s: the sum before the block's last ReLU). Measured with the defaults (digits, batch
    32, seeds 0-2): plain BN nets explode exponentially, about x1.2 per layer (plain56
    about 9.6e3, plain110 about 2.9e7); residual nets grow polynomially, ~depth^-1.1, with
    the growth in the first blocks (resnet56 about 24, resnet110 about 46). The trend label
    comes from whichever of the two fits is better; within-stage ratios set stage
    transitions apart (a zero-init residual net reads exactly 1).

    \b
    --steps follows the first training steps: the explosion fades within a few steps, but
    the first updates it drives inflate the early weights (plain56's first conv goes from
    ||W|| 2.5 to 153 in one step at lr 0.1), after which their effective step ||dW||/||W||
    collapses under BN: the early layers freeze.

    \b
    Examples:
      resnet-probe gradients plain56 resnet56 --seeds 0,1,2
      resnet-probe gradients plain56 resnet56 --steps 0,1,2,5,10,20,50
      resnet-probe gradients plain20 resnet20 --by shattering --format json
    """
    from resnet_probe.measure.dynamics import measure_dynamics
    from resnet_probe.measure.gradients import measure_gradients
    from resnet_probe.report.labels import with_gradient_trend
    from resnet_probe.views import dynamics_view, gradient_view, measured_for

    by = by or ("dynamics" if steps else "model")
    config = GradientConfig(**settings)
    models = options.sources(models, in_channels, weights, config.input_size)
    if by in DYNAMICS_VIEWS:
        dynamics_config = replace(DYNAMICS, steps=steps or DYNAMICS.steps, seeds=config.seeds)
        with options.progress_bar(dynamics_config.work(len(models)), "gradient dynamics") as bar:
            dynamics = measure_dynamics(list(models), dynamics_config, bar)
        click.echo(f"data: {dynamics.data_description}; SGD lr {dynamics_config.lr}, batch "
                   f"{dynamics_config.batch_size}, no warm-up", err=True)
        options.emit(dynamics_view(dynamics, by), fmt,
             ["model", "seed", "step", "loss", "grad_ratio_first_last",
              "first_layer_weight_norm", "first_layer_grad_to_weight",
              "first_layer_update_to_weight"] if by == "dynamics" else None)
        return
    if steps:
        raise click.UsageError(f"--steps gives the dynamics views (--by dynamics or "
                               f"dynamics_layer), not --by {by}")

    config = measured_for(by, config)
    with options.progress_bar(config.work(len(models)), "gradients") as bar:
        result = measure_gradients(models, config, bar)
    click.echo(f"input: {result.input_description}", err=True)
    view = gradient_view(result, by)
    options.emit(with_gradient_trend(view) if by == "model" else view, fmt,
         ["model", "depth", "shortcut", "grad_ratio_first_last", "grad_ratio_std",
          "max_within_stage_ratio", "gradient_trend"] if by == "model" else None)
