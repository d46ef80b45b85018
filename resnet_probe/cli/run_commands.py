"""Commands that train and report: degradation, compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_probe.cli import options
from resnet_probe.comparison import COMPARE_SEEDS, COMPARE_TRAIN
from resnet_probe.train.degradation import DEFAULT_DEPTHS, DEFAULT_STEPS, DegradationConfig
from resnet_probe.train.loop import TrainConfig

DEFAULT_DEPTHS_TEXT = ", ".join(f"{','.join(map(str, depths))} for {family}"
                                for family, depths in DEFAULT_DEPTHS.items())


@options.command()
@options.from_config(DegradationConfig, "family")
@click.option("--depths", type=options.IntList(minimum=1), default=None,
              help=f"Comma-separated depths [default: {DEFAULT_DEPTHS_TEXT}].")
@options.from_config(DegradationConfig, "preact", "dataset")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where real datasets live or are downloaded [default: "
                   "~/.cache/resnet-probe/NAME].")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"Training steps [default: {DEFAULT_STEPS}].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Budget in epochs instead of steps.")
@options.from_config(DegradationConfig, "seeds")
@options.from_config(TrainConfig, "batch_size", "lr", "warmup_steps", "warmup_lr", "augment")
@options.device("auto picks CUDA when present.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoints; "
              "only a run started with the same arguments (its manifest.json) continues.")
@click.option("--force-new", is_flag=True, help="With --resume: discard a run whose arguments "
              "differ and start over.")
@options.fresh
@options.no_why
@options.out(Path("reports/degradation"), "Report, data tables and checkpoints go here.")
@options.inline_plotly
@options.output_format
def degradation(device, resume, force_new, no_why, out, fmt, **settings) -> None:
    """Train plain and residual twins at each depth and report the degradation problem.

    \b
    Deeper plain nets reach higher *training* error; residual nets do not (He et al.
    2016, Fig. 6). Ctrl-C or SIGTERM keeps every result so far; --resume continues.

    \b
    Examples:
      resnet-probe degradation                  (digits, 20 vs 56, 3 seeds, ~14 min on 2 cores)
      resnet-probe degradation --depths 20,32,44,56 --seeds 0,1,2 --steps 600
      resnet-probe degradation --dataset cifar10 --augment --epochs 10 --device cuda
      torchrun --nproc_per_node 4 -m resnet_probe degradation --device cuda --seeds 0,1
    """
    from resnet_probe.device import training_device
    from resnet_probe.experiment import DegradationExperiment
    from resnet_probe.results import frame
    from resnet_probe.train.run_folder import ManifestMismatch

    experiment = DegradationExperiment.prepare(
        out=out, command_line=options.command_line(), device=training_device(device),
        why=not no_why, **settings)
    bar = (options.progress_bar(experiment.total_steps, "degradation") if experiment.is_main
           else None)
    try:
        try:
            result = experiment.run(resume=resume, progress=bar)
        except ManifestMismatch as mismatch:
            if not force_new:
                raise click.UsageError(f"{mismatch} (--force-new discards the old run)"
                                       ) from None
            click.echo(f"--force-new: {mismatch}; starting over", err=True)
            result = experiment.run(resume=False, progress=bar)
    except KeyboardInterrupt as error:
        what, code = options.interrupt_exit(error)
        if experiment.is_main:
            click.echo(f"\n{what}: every step recorded so far is in {out} "
                       f"(report, data/, runs/); rerun with --resume to continue", err=True)
        sys.exit(code)
    finally:
        if bar is not None:
            bar.close()
    if not experiment.is_main:
        return
    click.echo(f"report: {experiment.report_path}", err=True)
    if result.reused:
        click.echo(f"reused from the run cache: {', '.join(result.reused)} (--fresh retrains)",
                   err=True)
    click.echo(f"run cache: {experiment.cache.usage()}", err=True)
    options.emit(frame(result.final_rows()), fmt,
         ["model", "depth", "shortcut", "seed", "final_train_error", "final_train_error_eval",
          "final_test_error", "status", "seconds"])


@options.command()
@click.argument("models", nargs=-1, type=options.MODEL)
@options.out(Path("reports"), "Directory for the report and its data folder.")
@options.input_size
@click.option("--no-train", is_flag=True, help="Skip the short training section.")
@click.option("--train-steps", type=click.IntRange(min=1), default=COMPARE_TRAIN.steps,
              show_default=True, help="Steps per model in the training section.")
@options.seeds(COMPARE_SEEDS, "Seeds of the training section; its verdict needs at least "
              "two.")
@click.option("--from-degradation", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Reuse an earlier `degradation --out DIR` run for the "
              "training section.")
@click.option("--no-latency", is_flag=True, help="Skip the latency section.")
@options.device("Device for the latency and training sections; auto picks CUDA when present.")
@options.in_channels("Input channels of the foreign models")
@options.fresh
@options.no_why
@options.inline_plotly
def compare(models, out, input_size, no_train, train_steps, seeds, from_degradation,
            no_latency, device, in_channels, fresh, no_why, inline_plotly) -> None:
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
    import resnet_probe
    from resnet_probe.comparison import CompareOptions, validate_models
    from resnet_probe.report import compare_report_name
    from resnet_probe.report.console import describe_verdict
    from resnet_probe.results import check_writable_dir, measurable_deltas
    from resnet_probe.sources import resolve

    validate_models(list(models), input_size)
    out = check_writable_dir(out)
    chosen = CompareOptions.choose(input_size, device, latency=not no_latency,
                                   train=not no_train, train_steps=train_steps,
                                    train_seeds=seeds, degradation_dir=from_degradation,
                                    fresh=fresh, why=not no_why)
    click.echo(f"report: {out / (compare_report_name(list(models)) + '.html')}", err=True)

    # With --in-channels, each name resolves to a source that remembers it.
    resolved = [resolve(m, in_channels, input_size) for m in models] if in_channels else models
    with options.progress_bar(chosen.progress_total(list(models)), "compare") as bar:
        result = resnet_probe.compare(
            list(resolved), out, inline_plotly, options=chosen, progress=bar,
            command_line=options.command_line(), on_early_report=lambda: bar.write(
                "report written (training in progress; the page is rewritten when it "
                "finishes)", file=sys.stderr))
    click.echo(f"report: {result.report_path}")
    cache = result.section_environment("training").get("cache")
    if cache:
        click.echo(f"run cache: {cache['usage']}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.interrupted:
        what, code = options.interrupt_exit(result.interruption)
        click.echo(f"{what}: the report keeps every finished section", err=True)
        sys.exit(code)
    options.emit(measurable_deltas(result.tables["deltas"]), "table",
         ["model", "params", "params_delta_pct", "macs", "macs_delta_pct", "forward_ms",
          "forward_ms_change", "grad_ratio_first_last", "final_train_error",
          "final_train_error_change"])
    verdict = describe_verdict(result.tables.get("train_verdict"))
    if verdict:
        click.echo(verdict)
    click.echo(f"data: {out / (compare_report_name(result.models) + '-data')}")
