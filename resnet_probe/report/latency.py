"""The latency part rendered: overhead shown beside every number, per-layer and per-stage
times, the roofline, the throughput sweep, and which engine made each number."""

from __future__ import annotations

from resnet_probe.jobs.parts import LatencyPart
from resnet_probe.report import figures
from resnet_probe.report.html import Section, markup

ENGINE_WORDS = {
    "hooks": "each leaf is timed between a pre- and a post-hook ({clock})",
    "profiler": "torch.profiler records every operator and kernel of an un-hooked pass; each is "
                "attributed to the innermost module whose forward ran it (record_function "
                "ranges), backward ops to the module whose forward op they differentiate "
                "(autograd sequence numbers)",
}


def render_latency(part: LatencyPart, number: str = "4.") -> Section:
    section = Section("latency", f"{number} Per-layer latency", nav="Latency")
    env = part.environment
    if env is None or part.models.empty:
        return section.note("No model was timed in this run.", kind="warning")
    for warning in env.warnings:
        section.note(f"Busy machine: {warning}.", kind="warning")
    device_label = f"{env.device.upper()} ({env.device_name}, {env.threads} threads, {env.dtype})"
    clock = "CUDA events, one synchronize per pass" if env.device == "cuda" \
        else "time.perf_counter"
    engine = ENGINE_WORDS.get(env.engine, env.engine).format(clock=clock)
    section.text(markup(
        "Measured on this machine's <b>{}</b>, torch {}. Per-layer times come from the "
        "<b>{} engine</b>: {}; forward and backward in separate passes; medians over the kept "
        "repeats, warm-up discarded. Whole-model times come from un-hooked passes in "
        "interleaved rounds.", device_label, env.torch_version, env.engine, engine))
    overhead = part.models[[c for c in (
        "model", "forward_ms", "hooked_forward_ms", "hook_overhead_ratio",
        "layer_sum_forward_ms", "layer_sum_to_total", "backward_ms", "layer_sum_backward_ms",
        "images_per_s", "noisy_layers", "engine") if c in part.models]]
    section.table(overhead, caption="Overhead: the un-hooked forward vs the measured one, and "
                                    "per-layer sums vs the model total")
    if not part.passes.empty:
        section.table(part.passes, caption="Per pass (profiler engine): wall time, busy "
                                           "time, and the launch-bound fraction")
        bound = part.passes[part.passes["launch_bound"]]
        for row in bound.itertuples():
            section.note(f"{row.model} {row.direction} is launch-bound "
                         f"({row.launch_bound_fraction:.0%} of its wall time the device sat "
                         f"idle between kernels): its per-layer times are kernel time, not "
                         f"what the layer costs end to end.", kind="warning")
    if not part.failures.empty:
        section.table(part.failures, caption="Runs that failed")
    section.figure(figures.latency_layers(part.layers, device_label))
    if not part.stages.empty:
        section.figure(figures.latency_stages(part.stages, device_label))
    section.figure(figures.roofline(part.layers, env.peak_gflops, env.peak_gbytes_per_s,
                                    device_label))
    section.text(f"Roof: {env.peak_gflops:.0f} GFLOP/s and {env.peak_gbytes_per_s:.1f} GB/s, "
                 f"{env.peak_source}. A layer left of the ridge is memory-bound "
                 f"(rule: its FLOPs per byte moved fall below peak compute / peak bandwidth).")
    if not part.sweep.empty:
        section.figure(figures.throughput(part.sweep, device_label))
    for trace in env.trace_files:
        section.note(markup('Trace of one profiled pass: <a href="{}">{}</a> (open it in '
                            "ui.perfetto.dev or chrome://tracing).", trace, trace))
    return section
