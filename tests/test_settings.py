"""Config fields are declared once (resnet_probe.settings): the configs check themselves from the
declarations, and the CLI's options carry the same defaults, ranges and choices."""

from __future__ import annotations

import pytest

from resnet_probe.analysis import AnalysisOptions
from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.compare import COMPARE_TRAIN
from resnet_probe.measure.gradients import GradientConfig
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.loop import TrainConfig


@pytest.mark.parametrize("make, message", [
    (lambda: TrainConfig(lr=0), "lr must be a number, above 0: lr=0"),
    (lambda: TrainConfig(steps=10.0),
     r"steps must be an integer, at least 1 and at most 1e\+09: steps=10.0"),
    (lambda: LatencyConfig(channels_last="yes"),
     "channels_last must be True or False: channels_last='yes'"),
    (lambda: LatencyConfig(batch_size=True), "batch_size must be an integer, at least 1"),
    (lambda: LatencyConfig(peak_gflops=float("inf")), "peak_gflops must be a number, above 0"),
    (lambda: AnalysisOptions(landscape_dims=3),
     "landscape_dims must be an integer, at least 1 and at most 2: landscape_dims=3"),
    (lambda: AnalysisOptions(split="val"), "split must be one of: test, train: split='val'"),
    (lambda: DegradationConfig(dataset="mnist"),
     "dataset must be one of: digits, fashion-mnist, cifar10: dataset='mnist'"),
    (lambda: GradientConfig(seeds=(0, "1")),
     r"seeds must be a tuple of integers: seeds=\(0, '1'\)"),
])
def test_a_bad_value_names_the_field_and_what_it_accepts(make, message):
    with pytest.raises(InvalidRequest, match=message):
        make()


def test_none_where_declared_optional_and_lists_become_tuples():
    config = GradientConfig(seeds=[0, 1], input_size=None)
    assert config.seeds == (0, 1)
    assert hash(config)  # frozen configs key caches
    assert LatencyConfig(threads=None, peak_gflops=None).threads is None
    with pytest.raises(InvalidRequest, match="repeats must be an integer"):
        LatencyConfig(repeats=None)


def test_cli_options_show_the_configs_defaults(invoke):
    """The help shows what the library uses: compare's help once said 200 training steps
    while compare trained for 120."""
    compare_help = " ".join(invoke("compare", "--help").output.split())
    assert f"--train-steps INTEGER RANGE Steps per model in the training section; its " \
           f"recipe warms up for {COMPARE_TRAIN.warmup_steps} steps" in compare_help
    assert f"[default: {COMPARE_TRAIN.steps}; x>=" in compare_help
    latency_help = " ".join(invoke("latency", "--help").output.split())
    assert f"[default: {LatencyConfig().repeats}; x>=1]" in latency_help
    assert "--backward / --forward-only" in latency_help
    degradation_help = " ".join(invoke("degradation", "--help").output.split())
    assert f"[default: {TrainConfig().lr}; x>0]" in degradation_help


@pytest.mark.parametrize("args, option", [
    (["latency", "resnet8", "--warmup", "-1"], "--warmup"),
    (["latency", "resnet8", "--dtype", "fp8"], "--dtype"),
    (["landscape", "--dims", "3"], "--dims"),
    (["degradation", "--lr", "0"], "--lr"),
    (["gradients", "resnet8", "--batch-size", "1"], "--batch-size"),
    (["latency", "resnet8", "--sweep-batch", "8,0"], "--sweep-batch"),
    (["gradients", "resnet8", "--steps", "-1,2"], "--steps"),
    (["flops", "resnet8", "--sweep", "0"], "--sweep"),
    (["degradation", "--depths", "0,20"], "--depths"),
])
def test_cli_refuses_what_the_declaration_refuses_at_parse_time(invoke, args, option):
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr


def test_the_forward_only_flag_reaches_the_config(invoke, monkeypatch):
    seen = {}

    def record(models, config, progress=None, trace_dir=None):
        seen["config"] = config
        raise KeyboardInterrupt  # stop before any timing

    monkeypatch.setattr("resnet_probe.measure.latency.measure_latency", record)
    result = invoke("latency", "resnet8", "--forward-only", "--sweep-batch", "1,4",
                    "--threads", "1")
    assert result.exit_code == 130
    assert seen["config"] == LatencyConfig(backward=False, sweep_batch_sizes=(1, 4), threads=1)
