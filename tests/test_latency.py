"""Latency: structure and statistics, never durations. CUDA paths tested through fake events."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from resnet_probe.device import resolve_device
from resnet_probe.measure import latency as latency_module
from resnet_probe.measure.hooks import ForwardFailed, hooked
from resnet_probe.measure.latency import LatencyConfig, measure_latency, summarize
from resnet_probe.measure.latency.hooked import _Timers
from resnet_probe.zoo import build_model

FAST = dict(input_size=32, repeats=3, warmup=2, peak_gflops=100.0, peak_gbytes_per_s=10.0)


@pytest.fixture(scope="module")
def result():
    return measure_latency(["resnet8", "plain8"], LatencyConfig(**FAST, sweep_batch_sizes=(1, 2)))


def leaves(name):
    return {n for n, m in build_model(name).named_modules() if n and not list(m.children())}


def test_samples_are_positive_and_counted(result):
    assert all(s["ms"] > 0 for s in result.samples)
    per_key = {}
    for s in result.samples:
        per_key.setdefault((s["model"], s["module"], s["direction"]), []).append(s["repeat"])
    assert all(sorted(r) == [0, 1, 2] for r in per_key.values())  # exactly `repeats` kept


def test_warmup_passes_are_excluded(monkeypatch):
    passes = []  # one timer read per hooked pass, warm-up or kept
    real_read = _Timers.read_ms

    def counting_read(self):
        passes.append(1)
        return real_read(self)

    monkeypatch.setattr(_Timers, "read_ms", counting_read)
    config = LatencyConfig(**{**FAST, "repeats": 2, "warmup": 3})
    result = measure_latency(["resnet8"], config)
    assert len(passes) == 2 * (3 + 2)  # forward and backward: 3 warm-up + 2 kept passes each
    stem = [s for s in result.samples if s["module"] == "conv1" and s["direction"] == "forward"]
    assert [s["repeat"] for s in stem] == [0, 1]  # only the kept passes became samples


def test_rows_for_every_leaf_in_both_directions(result):
    for model in ("resnet8", "plain8"):
        forward = {r["module"] for r in result.layers
                   if r["model"] == model and r["direction"] == "forward"}
        backward = {r["module"] for r in result.layers
                    if r["model"] == model and r["direction"] == "backward"}
        assert forward == leaves(model)
        assert backward == leaves(model)


def test_statistics_derive_from_raw_samples(result):
    """Each row is the summary of its own raw samples (summarize is checked by hand below)."""
    for row in result.layers[:10]:
        raw = [s["ms"] for s in result.samples if s["model"] == row["model"]
               and s["module"] == row["module"] and s["direction"] == row["direction"]]
        assert len(raw) == row["samples"] >= 2
        assert {key: row[key] for key in summarize(raw)} == summarize(raw)
        assert row["min_ms"] <= row["median_ms"] <= max(raw)


def test_summarize_by_hand():
    stats = summarize([4.0, 1.0, 3.0, 2.0, 100.0])
    assert stats["median_ms"] == 3.0 and stats["min_ms"] == 1.0
    assert stats["iqr_ms"] == 2.0  # quartiles 2 and 4 (inclusive method)
    assert stats["noisy"] is True  # IQR 2 > 25% of the median 3
    steady = summarize([10.0, 10.5, 11.0, 10.2, 30.0])  # one outlier moves neither statistic
    assert steady["median_ms"] == 10.5 and steady["iqr_ms"] == pytest.approx(0.8)
    assert steady["noisy"] is False


def test_model_rows_report_overhead(result):
    row = next(r for r in result.models if r["model"] == "resnet8")
    for key in ("model", "device", "forward_ms", "backward_ms", "hooked_forward_ms",
                "hook_overhead_ratio", "layer_sum_forward_ms", "layer_sum_to_total"):
        assert row[key] is not None
    assert row["device"] == "cpu" and row["threads"] >= 1
    # The compared time is the median of the un-hooked interleaved rounds kept as raw rows.
    rounds = [r["forward_ms"] for r in result.rounds if r["model"] == "resnet8"]
    assert row["forward_ms"] == statistics.median(rounds)
    assert row["forward_ms_ci95_low"] <= row["forward_ms"] <= row["forward_ms_ci95_high"]
    assert result.environment["peak_source"].startswith("given by the user")


def test_sweep_rows(result):
    assert [(r["model"], r["batch_size"]) for r in result.sweep] == [
        ("resnet8", 1), ("resnet8", 2), ("plain8", 1), ("plain8", 2)]
    assert all(r["images_per_s"] > 0 for r in result.sweep)


def test_roofline_classification(result):
    conv = next(r for r in result.layers if r["model"] == "resnet8"
                and r["module"] == "layer1.0.conv1" and r["direction"] == "forward")
    # 3*3*16*16*32*32 MACs = 2,359,296 -> 4,718,592 FLOPs; bytes = (weights+in+out) * 4.
    assert conv["flops"] == 2 * 2_359_296
    assert conv["bytes_moved"] == (3 * 3 * 16 * 16 + 2 * 16 * 32 * 32) * 4
    from resnet_probe.labels import roofline_bound

    # The ridge is 100 GFLOP/s / 10 GB/s = 10 FLOPs per byte; this conv does 2 FLOPs per MAC
    # on 2,304 weights and 32,768 activations: 4,718,592 / 140,288 = 33.6 FLOPs per byte.
    assert conv["arithmetic_intensity"] == pytest.approx(4_718_592 / 140_288)
    assert roofline_bound(conv["flops"], conv["arithmetic_intensity"], 100.0, 10.0) == \
        "compute-bound"
    relu = next(r for r in result.layers if r["module"] == "relu" and r["model"] == "resnet8")
    # A ReLU does 1 FLOP per element and moves 8 bytes per element: 1/8 < 10.
    assert roofline_bound(relu["flops"], relu["arithmetic_intensity"], 100.0, 10.0) == \
        "memory-bound"


def test_hooks_removed_and_mode_restored_when_forward_raises():
    model = build_model("resnet8").train()
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]

    def explode(module, args, output):
        raise RuntimeError("boom")

    def install(session):
        session.add(model.layer2[0].conv2.register_forward_hook(explode))

    with pytest.raises(ForwardFailed, match="layer2.0.conv2.*boom"):
        with hooked(model, train=False, install=install):
            assert not model.training
            model(torch.randn(2, 3, 32, 32))
    assert model.training is True
    assert all(r.inplace for r in relus)
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())
    model(torch.randn(2, 3, 32, 32))  # runs clean afterwards


class FakeEvent:
    """Stands in for torch.cuda.Event: a fake clock advancing 1 ms per record()."""

    clock = 0.0
    records = 0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.time = None

    def record(self):
        FakeEvent.clock += 1.0
        FakeEvent.records += 1
        self.time = FakeEvent.clock

    def elapsed_time(self, other):
        return other.time - self.time


def test_cuda_timers_use_events_and_one_synchronize(monkeypatch):
    syncs = []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: syncs.append(1))
    timers = _Timers(torch.device("cuda"))
    for name in ("a", "b", "c"):
        timers.start((name, "forward"))
        timers.stop((name, "forward"))
    timers.start(("a", "forward"))  # a shared module called twice: spans add up
    timers.stop(("a", "forward"))
    assert syncs == []  # no per-module synchronize
    spans = timers.read_ms()
    assert syncs == [1]
    assert spans == {("a", "forward"): 2.0, ("b", "forward"): 1.0, ("c", "forward"): 1.0}


def test_device_cuda_without_cuda_is_clear(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no usable CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_out_of_memory_keeps_measured_rows(monkeypatch):
    real = latency_module.profile_layers

    def maybe_oom(source, *args):
        if source.text == "plain8":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(source, *args)

    monkeypatch.setattr(latency_module, "profile_layers", maybe_oom)
    result = measure_latency(["resnet8", "plain8"], LatencyConfig(**FAST))
    assert [r["model"] for r in result.models] == ["resnet8"]
    assert result.failures[0]["model"] == "plain8"
    assert "out of GPU memory" in result.failures[0]["error"]


def test_out_of_memory_inside_the_forward_is_not_wrapped(monkeypatch):
    def oom_in_big_models(module, args, output):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")

    big = build_model("resnet10")  # given as a module: measured as it is, hook included
    big.layer3[0].conv1.register_forward_hook(oom_in_big_models)
    result = measure_latency(["resnet8", big], LatencyConfig(**FAST))
    assert [r["model"] for r in result.models] == ["resnet8"]
    assert result.failures[0]["model"] == "resnet10"


@pytest.mark.parametrize("kwargs, message", [
    (dict(repeats=0), "repeats=0"),
    (dict(repeats=-3), "repeats=-3"),
    (dict(warmup=-1), "warmup=-1"),
    (dict(repeats=2.5), "repeats must be an integer, at least 1: repeats=2.5"),
    (dict(dtype="fp8"), "dtype must be one of: fp32, bf16, fp16: dtype='fp8'"),
    (dict(device="tpu"), "device must be one of: auto, cpu, cuda: device='tpu'"),
    (dict(threads=0), "threads=0"),
    (dict(sweep_batch_sizes=(8, 0)), r"each at least 1: sweep_batch_sizes=\(8, 0\)"),
    (dict(peak_gflops=0.0), "above 0: peak_gflops=0.0"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_config_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatencyConfig(**kwargs)


def test_half_precision_on_a_cpu_that_cannot(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\'')

    monkeypatch.setattr(torch.nn.Conv2d, "forward", refuse)
    with pytest.raises(ValueError, match="dtype fp16 cannot run on this cpu device"):
        measure_latency(["resnet8"], LatencyConfig(**{**FAST, "dtype": "fp16"}))


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "--repeats"),
    (["--repeats", "-2"], "--repeats"),
    (["--warmup", "-1"], "--warmup"),
    (["--dtype", "fp8"], "'fp8' is not one of 'fp32', 'bf16', 'fp16'"),
])
def test_cli_bad_inputs(invoke, args, message):
    result = invoke("latency", "resnet8", *args)
    assert result.exit_code == 2  # a bad command line, refused at parse time
    assert message in result.stderr and "Traceback" not in result.output


def test_cli_cuda_without_cuda(invoke, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("latency", "resnet8", "--device", "cuda")
    assert result.exit_code == 1 and "no usable CUDA device" in result.stderr


def test_cli_json_rows(invoke):
    result = invoke("latency", "resnet8", "--input-size", "32", "--repeats", "2", "--warmup",
                    "1", "--format", "json", "--threads", "1")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    assert {"model", "device", "forward_ms", "backward_ms"} <= set(row)
    assert row["device"] == "cpu" and row["forward_ms"] > 0 and row["backward_ms"] > 0


def test_cli_rollups_sum_layers(invoke):
    args = ["latency", "resnet8", "--input-size", "32", "--repeats", "2", "--warmup", "1",
            "--format", "json", "--forward-only"]
    layers = json.loads(invoke(*args, "--by", "layer").stdout)
    stages = json.loads(invoke(*args, "--by", "stage").stdout)
    blocks = json.loads(invoke(*args, "--by", "block").stdout)
    assert {r["stage"] for r in stages} == {"stem", "stage1", "stage2", "stage3", "head"}
    assert {r["block"] for r in blocks} >= {"layer1.0", "layer2.0", "layer3.0", "stem", "head"}
    assert all(r["sum_of_median_ms"] > 0 for r in stages + blocks)
    assert len(layers) == len(leaves("resnet8"))


def test_a_model_too_big_for_memory_is_refused_alone(monkeypatch):
    from resnet_probe.measure import memory

    real = memory.estimate_peak_bytes

    def huge_for_resnet10(model, shape, training, element_bytes=4, inputs=None):
        estimate = real(model, shape, training, element_bytes, inputs)
        if sum(p.numel() for p in model.parameters()) > 1e6:  # resnet10, not resnet8
            return memory.MemoryEstimate(estimate.parameter_bytes * 10**6,
                                         estimate.activation_bytes_per_sample, estimate.batch_size)
        return estimate

    monkeypatch.setattr(memory, "estimate_peak_bytes", huge_for_resnet10)
    result = measure_latency(["resnet8", "resnet10"], LatencyConfig(**FAST))
    assert [r["model"] for r in result.models] == ["resnet8"]
    assert result.failures[0]["model"] == "resnet10"
    assert result.failures[0]["error"].startswith("refused before allocating: timing resnet10")


# --- the profiler engine ------------------------------------------------------------------


class _Uneven(torch.nn.Module):
    """Two convs whose costs differ by 256x (64 -> 64 channels vs 4 -> 4), and a ReLU."""

    def __init__(self):
        super().__init__()
        self.big = torch.nn.Conv2d(64, 64, 3, padding=1)
        self.small = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        return self.act(self.small(self.big(x)[:, :4]))


def test_the_profiler_engine_charges_each_operator_to_its_innermost_module():
    from resnet_probe.measure.latency.profiled import attribute, profiled_pass

    torch.manual_seed(0)
    model = _Uneven().eval()
    x = torch.randn(4, 64, 32, 32)
    device = torch.device("cpu")
    profiled_pass(model, x, "forward", device)  # warm-up
    passes = [attribute(profiled_pass(model, x, "forward", device)[0], "forward")
              for _ in range(5)]
    forward = passes[-1]
    assert {"big", "small", "act"} <= set(forward.modules)
    assert forward.modules["big"]["kernels"] == forward.modules["small"]["kernels"] == 1
    # 256x the MACs: over five passes the big conv's median is the larger (no ratio is
    # asserted: this machine is shared)
    assert statistics.median(p.modules["big"]["kernel_ms"] for p in passes) > \
        statistics.median(p.modules["small"]["kernel_ms"] for p in passes)
    assert "(model)" in forward.modules  # the slice runs in the root's own code
    total = sum(m["kernel_ms"] for m in forward.modules.values())
    assert total == pytest.approx(forward.busy_ms)  # on a CPU, top-level ops do not overlap
    assert forward.busy_ms <= forward.wall_ms and 0 <= forward.launch_bound_fraction < 1
    backward = attribute(profiled_pass(model, x, "backward", device)[0], "backward")
    # each conv's ConvolutionBackward0 comes back to it by its sequence number (on this
    # CPU the 4-channel conv's weight gradient is as slow as the big one's: no ratio here)
    assert backward.modules["big"]["kernels"] == backward.modules["small"]["kernels"] == 1
    assert sum(m["kernel_ms"] for m in backward.modules.values()) == \
        pytest.approx(backward.busy_ms)


def test_a_recorded_cuda_trace_is_attributed_by_correlation_and_sequence_number():
    """A hand-made trace (times in µs): forward ops launch kernels (correlation ids 1-3), the
    backward evaluates the conv's node (sequence number 7) and launches kernel 4."""
    from resnet_probe.measure.latency.profiled import TraceEvent, attribute

    cpu = [
        TraceEvent("pass::forward", 0, 100),
        TraceEvent("module::conv", 10, 40),
        TraceEvent("aten::conv2d", 12, 38, sequence_nr=7),
        TraceEvent("cudaLaunchKernel", 20, 25, correlation=1),
        TraceEvent("cudaLaunchKernel", 30, 33, correlation=2),
        TraceEvent("module::relu", 50, 60),
        TraceEvent("aten::relu", 51, 59, sequence_nr=8),
        TraceEvent("cudaLaunchKernel", 52, 55, correlation=3),
        TraceEvent("cudaDeviceSynchronize", 61, 99),
        TraceEvent("pass::backward", 200, 300),
        TraceEvent("autograd::engine::evaluate_function: ConvolutionBackward0", 210, 230,
                   sequence_nr=7),
        TraceEvent("cudaLaunchKernel", 212, 215, correlation=4),
    ]
    kernels = [TraceEvent("implicit_gemm", 30, 50, "cuda", correlation=1),
               TraceEvent("bias_add", 50, 52, "cuda", correlation=2),
               TraceEvent("relu_kernel", 70, 72, "cuda", correlation=3),
               TraceEvent("dgrad", 220, 280, "cuda", correlation=4)]
    forward = attribute(cpu + kernels, "forward")
    assert forward.modules["conv"] == {"kernel_ms": 0.022, "kernels": 2,
                                       "dispatch_ms": pytest.approx(0.026)}
    assert forward.modules["relu"]["kernel_ms"] == pytest.approx(0.002)
    assert forward.busy_ms == pytest.approx(0.024)  # [30, 52] and [70, 72]
    assert forward.wall_ms == pytest.approx(0.1)
    assert forward.launch_bound_fraction == pytest.approx(0.76)
    backward = attribute(cpu + kernels, "backward")
    assert backward.modules["conv"]["kernel_ms"] == pytest.approx(0.06)  # by sequence nr 7
    assert backward.busy_ms == pytest.approx(0.06)


def test_latency_traces_parse_and_name_every_leaf(invoke, tmp_path):
    import json

    from resnet_probe.zoo import build_model

    result = invoke("latency", "resnet8", "--engine", "profiler", "--repeats", "2",
                    "--warmup", "1", "--trace", str(tmp_path / "traces"), "--by", "layer",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {row["engine"] for row in rows} == {"profiler"}
    assert all(row["kernels"] >= 0 for row in rows)
    leaves = {name for name, module in build_model("resnet8").named_modules()
              if name and next(module.children(), None) is None}
    for direction in ("forward", "backward"):
        trace = json.loads((tmp_path / "traces" / f"resnet8-{direction}.trace.json").read_text())
        names = {event.get("name", "") for event in trace["traceEvents"]}
        assert f"pass::{direction}" in names
        assert {f"module::{leaf}" for leaf in leaves} <= names
    refused = invoke("latency", "resnet8", "--trace", str(tmp_path / "t"))
    assert refused.exit_code == 2 and "--engine profiler" in refused.stderr


def test_both_engines_time_the_same_modules_side_by_side():
    from resnet_probe.measure.latency import LatencyConfig, measure_latency
    from resnet_probe.views import latency_view

    stages = {}
    for engine in ("hooks", "profiler"):
        result = measure_latency(["resnet8"], LatencyConfig(
            engine=engine, repeats=2, warmup=1, backward=False, input_size=32))
        stages[engine] = latency_view(result, "stage").set_index("stage")
        assert result.models[0]["engine"] == engine
    assert set(stages["hooks"].index) == set(stages["profiler"].index)
    assert (stages["profiler"]["sum_of_median_ms"] > 0).all()
