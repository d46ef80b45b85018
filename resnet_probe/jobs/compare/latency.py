"""The latency section: per-layer and whole-model times of every model, compared against the
first in interleaved rounds."""

from __future__ import annotations

from dataclasses import replace

from resnet_probe.jobs.compare.plan import Plan
from resnet_probe.jobs.parts import LatencyEnvironment, LatencyPart, Skipped
from resnet_probe.measure.latency import LatencyResult, measure_latency
from resnet_probe.progress import Progress
from resnet_probe.results import frame
from resnet_probe.views import latency_view, rolled_up_times


def latency_part(plan: Plan, progress: Progress) -> LatencyPart | Skipped:
    config = plan.options.latency
    if config is None:
        return Skipped("latency was not measured (--no-latency)")
    if plan.input_size is not None:
        config = replace(config, input_size=plan.input_size)
    return latency_part_of(measure_latency(list(plan.sources), config, progress))


def latency_part_of(result: LatencyResult) -> LatencyPart:
    """A LatencyResult as the report reads it: labels by their rules, roll-ups with their
    intervals, the environment typed."""
    env = result.environment
    layers = latency_view(result, "layer")
    samples = frame(result.samples)
    stages = (rolled_up_times(layers, samples, "stage") if not layers.empty
              else frame([]))
    return LatencyPart(
        models=frame(result.models), layers=layers, stages=stages, samples=samples,
        rounds=frame(result.rounds), sweep=frame(result.sweep),
        differences=frame(result.comparisons), failures=frame(result.failures),
        passes=frame(result.passes),
        environment=LatencyEnvironment(
            device=env["device"], device_name=str(env["device_name"]), threads=env["threads"],
            torch_version=env["torch_version"], dtype=env["dtype"],
            channels_last=env["channels_last"], engine=env.get("engine", "hooks"),
            peak_gflops=env["peak_gflops"], peak_gbytes_per_s=env["peak_gbytes_per_s"],
            peak_source=env["peak_source"], load_average_1min=env["load_average_1min"],
            cpu_mhz=env["cpu_mhz"], cores=env["cores"], warnings=tuple(result.warnings),
            trace_files=tuple(result.trace_files)))
