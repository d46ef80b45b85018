"""Commands that train and report: degradation, compare."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from resnet_probe.cli import options
from resnet_probe.jobs.compare import (
    COMPARE_SEEDS,
    COMPARE_TRAIN,
    COMPARE_TUNING_SEEDS,
    CompareOptions,
)
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.progress import NO_PROGRESS
from resnet_probe.report.words import twin_verdict_line, verdict_line
from resnet_probe.train.degradation import DEFAULT_DEPTHS, DEFAULT_STEPS, DegradationConfig
from resnet_probe.train.loop import TrainConfig

DEFAULT_DEPTHS_TEXT = ", ".join(f"{','.join(map(str, depths))} for {family}"
                                for family, depths in DEFAULT_DEPTHS.items())


@options.command()
@options.from_config(DegradationConfig, "family")
@click.option("--depths", type=options.IntList(minimum=1), default=None,
              help=f"Comma-separated depths [default: {DEFAULT_DEPTHS_TEXT}].")
@options.from_config(DegradationConfig, "preact", "dataset")
@click.option("--data-dir", type=options.PathName(file_okay=False, path_type=Path), default=None,
              help="Where real datasets live or are downloaded [default: "
                   "~/.cache/resnet-probe/NAME].")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"Training steps [default: {DEFAULT_STEPS}].")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Budget in epochs instead of steps.")
@options.from_config(DegradationConfig, "seeds", "intervene")
@options.from_config(TrainConfig, "batch_size", "lr", "warmup_steps", "warmup_lr", "augment")
@options.device("auto picks CUDA when present.")
@options.executor_options
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoints; "
              "only a run started with the same arguments (its manifest.json) continues.")
@click.option("--force-new", is_flag=True, help="With --resume: discard a run whose arguments "
              "differ and start over.")
@options.fresh
@options.no_why
@options.out(Path("reports/degradation"), "Report, data tables and checkpoints go here.")
@options.inline_plotly
@options.output_format
def degradation(device, executor, address, gpus_per_run, workers, resume, force_new, no_why,
                out, fmt, **settings) -> None:
    """Train plain and residual twins at each depth and report the degradation problem.

    \b
    Deeper plain nets reach higher *training* error; residual nets do not (He et al.
    2016, Fig. 6). Ctrl-C or SIGTERM keeps every result so far; --resume continues.

    \b
    The default seeds 3,4,5 are held out: the recipe was set on 0,1,2.

    \b
    Examples:
      resnet-probe degradation                  (digits, 20 vs 56, 3 seeds, ~14 min on 2 cores)
      resnet-probe degradation --depths 20,32,44,56 --seeds 0,1,2 --steps 600
      resnet-probe degradation --dataset cifar10 --augment --epochs 10 --device cuda
      torchrun --nproc_per_node 4 -m resnet_probe degradation --device cuda --seeds 0,1
      resnet-probe degradation --device cuda --address 10.0.0.1:6379 --gpus-per-run 0.25
    """
    from resnet_probe.jobs.degradation import DegradationExperiment
    from resnet_probe.train.run_folder import ManifestMismatch, has_checkpoints

    runs_on = options.run_executor(executor, address, gpus_per_run, workers, device)
    experiment = DegradationExperiment.prepare(
        out=out, command_line=options.command_line(), device=_run_device(device, runs_on),
        why=not no_why, executor=runs_on, **settings)
    bar = options.progress_bar(experiment.total_steps, "degradation") \
        if experiment.is_main else None  # the other ranks show no bar

    def write(part) -> None:
        from resnet_probe.report import write_degradation_report

        write_degradation_report(part, experiment.environment, experiment.out,
                                 experiment.title, experiment.inline_plotly)
    progress = bar if bar is not None else NO_PROGRESS
    try:
        try:
            result = experiment.run(resume=resume, progress=progress,
                                    on_snapshot=write)
        except ManifestMismatch as mismatch:
            if not force_new:
                raise click.UsageError(f"{mismatch} (--force-new discards the old run)"
                                       ) from None
            click.echo(f"--force-new: {mismatch}; starting over", err=True)
            result = experiment.run(resume=False, progress=progress,
                                    on_snapshot=write)
    except KeyboardInterrupt as error:
        what, code = options.interrupt_exit(error)
        if experiment.is_main and has_checkpoints(out):
            click.echo(f"\n{what}: every step recorded so far is in {out} "
                       f"(report, data/, runs/); rerun with --resume to continue", err=True)
        elif experiment.is_main:  # --resume would answer "nothing to resume"
            click.echo(f"\n{what} before the first checkpoint: there is nothing to resume "
                       f"in {out}; rerun the command (without --resume) to start again",
                       err=True)
        sys.exit(code)
    finally:
        if bar is not None:
            bar.close()
    if not experiment.is_main:
        return
    click.echo(f"report: {experiment.report_path}", err=True)
    if result.cache is not None and result.cache.reused:
        click.echo(f"reused from the run cache: {', '.join(result.cache.reused)} (--fresh "
                   f"retrains)", err=True)
    click.echo(f"run cache: {experiment.cache.usage()}", err=True)
    options.emit(result.degradation.final, fmt,
                 ["model", "depth", "shortcut", "seed", "final_train_error",
                  "final_train_error_eval", "final_test_error", "status", "seconds"])
    click.echo(verdict_line(result.degradation.verdict), err=True)
    for failed in result.failed_runs:
        click.echo(f"error: the run {failed}; the report keeps the other runs", err=True)
    if result.failed_runs:
        sys.exit(options.EXIT_CHECK_FAILED)


def _run_device(device: str, runs_on) -> str:
    """The device the runs' recipe names. Ray tasks see only the GPUs Ray gives them, as
    cuda:0, so --device cuda need not find a GPU on the driver's own machine."""
    from resnet_probe.device import training_device
    from resnet_probe.train.executors import IN_PROCESS

    if device == "cuda" and runs_on is not IN_PROCESS:
        return "cuda:0"
    return training_device(device)


@options.command()
@click.argument("models", nargs=-1, type=options.MODEL)
@options.out(Path("reports"), "Directory for the report and its data folder.")
@options.input_size
@click.option("--no-train", is_flag=True, help="Skip the short training section.")
@click.option("--train-steps", type=click.IntRange(min=COMPARE_TRAIN.fewest_steps()),
              default=COMPARE_TRAIN.steps, show_default=True,
              help=f"Steps per model in the training section; its recipe warms up for "
                   f"{COMPARE_TRAIN.warmup_steps} steps, so at least "
                   f"{COMPARE_TRAIN.fewest_steps()}.")
@options.seeds(COMPARE_SEEDS, f"Seeds of the training section; its verdict needs at least "
               f"three. The default ones are held out: the recipe was tuned on "
               f"{','.join(map(str, COMPARE_TUNING_SEEDS))}.")
@click.option("--from-degradation", type=options.PathName(file_okay=False, path_type=Path),
              default=None, help="Reuse an earlier `degradation --out DIR` run for the "
              "training section (checked against its checkpoints).")
@options.trust_sources
@click.option("--no-latency", is_flag=True, help="Skip the latency section.")
@options.device("Device for the latency and training sections; auto picks CUDA when present.")
@options.executor_options
@options.from_config(LatencyConfig, "threads")
@options.in_channels("Input channels of the foreign models")
@options.model_inputs
@options.fresh
@options.no_why
@options.inline_plotly
@options.output_format_with_markdown
def compare(models, out, input_size, no_train, train_steps, seeds, from_degradation,
            trust_sources, no_latency, device, executor, address, gpus_per_run, workers,
            threads, in_channels, inputs, fresh, no_why, inline_plotly, fmt) -> None:
    """Compare MODELS in one HTML report; the first model is the baseline.

    \b
    Sections: summary (the verdict and the numbers behind it, with intervals),
    architecture per stage, params and MACs in every convention, per-layer latency,
    gradient norms by depth, degradation curves and the why, why bottlenecks are
    cheaper, environment. Tables go to a data folder beside the report.

    \b
    Every section feeds a model one input: with a model of your own, the size the
    training section trains it at (or --input-size), or its --input tensors, which are
    counted, timed and probed at their shapes (training, which classifies digit images,
    is then skipped and says why). A model and its plain twin (plain:MODEL) get a twin
    verdict: the twin trains worse, better, or no measurable difference.

    \b
    Examples:
      resnet-probe compare resnet34 plain34
      resnet-probe compare resnet18 resnet34 resnet50 plain34 --no-train
      resnet-probe compare plain56 resnet56 --from-degradation reports/degradation
      resnet-probe compare my_model.py:build plain:my_model.py:build --format markdown
      resnet-probe compare encoder.py:build plain:encoder.py:build --threads 1 \\
          --input input_ids=2x128:int64[0,30522) --input attention_mask=2x128:bool
    """
    from resnet_probe import report
    from resnet_probe.jobs.compare import Plan, progress_total, run_compare
    from resnet_probe.jobs.parts import CompareResult, InProgress
    from resnet_probe.report.words import compare_notes
    from resnet_probe.results import check_writable_dir, measurable_deltas
    from resnet_probe.sources import InputSpec

    options_ = CompareOptions.choose(input_size, device, latency=not no_latency,
                                     train=not no_train, train_steps=train_steps,
                                     train_seeds=seeds, degradation_dir=from_degradation,
                                     fresh=fresh, why=not no_why,
                                     trust_sources=trust_sources,
                                     executor=options.run_executor(executor, address,
                                                                   gpus_per_run, workers,
                                                                   device),
                                     threads=threads)
    spec = InputSpec.parse(list(inputs)) if inputs else None
    if spec is not None and (input_size is not None or in_channels is not None):
        raise click.UsageError("--input replaces --input-size and --in-channels (the shorthand "
                               "for one image): give one or the other")
    plan = Plan.build(list(models), options_, in_channels, spec)
    out = check_writable_dir(out)
    path = report.compare_report_path(out, plan.models)
    click.echo(f"report: {path}", err=True)
    with options.progress_bar(progress_total(plan), "compare") as bar:
        def write(snapshot: CompareResult) -> None:
            report.write(snapshot, out, inline_plotly)
            if isinstance(snapshot.training, InProgress):
                bar.write("report written (training in progress; the page is rewritten "
                          "when it finishes)", file=sys.stderr)

        result = run_compare(plan, bar, write, options.command_line())
    options.echo_result(f"report: {path}")
    for note in compare_notes(result):
        click.echo(f"note: {note}", err=True)
    if result.interruption is not None:
        what, code = options.interrupt_exit(result.interruption)
        click.echo(f"{what}: the report keeps every finished section", err=True)
        sys.exit(code)
    options.emit(measurable_deltas(result.summary.deltas), fmt,
                 ["model", "params", "params_delta_pct", "macs", "macs_delta_pct", "forward_ms",
                  "forward_ms_change", "grad_ratio_first_last", "final_train_error",
                  "final_train_error_change"], title="resnet-probe compare")
    if result.summary.twin_verdict is not None:
        options.echo_result(twin_verdict_line(result.summary.twin_verdict))
    elif result.summary.verdict is not None:
        options.echo_result(verdict_line(result.summary.verdict))
    options.echo_result(f"data: {path.with_name(path.stem + '-data')}")
    for failed in result.failures:
        options.report_failure(failed)
    if result.failures:
        sys.exit(options.EXIT_CHECK_FAILED)
