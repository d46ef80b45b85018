"""Every comparison carries its uncertainty; differences inside the noise are labelled so."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from resnet_probe.stats import (
    NO_DIFFERENCE,
    mean_interval,
    median_difference,
    median_interval,
    paired_mean_difference,
    positive_mean_interval,
    positive_seed_estimate,
)


def test_identical_distributions_are_no_measurable_difference():
    rng = np.random.default_rng(1)
    a = list(10 + rng.normal(0, 1, 40))
    b = list(10 + rng.normal(0, 1, 40))
    difference = median_difference(a, b, paired=True)
    assert not difference.measurable
    assert difference.low_pct < 0 < difference.high_pct
    assert difference.text().startswith(NO_DIFFERENCE)


def test_a_real_shift_is_measured_with_an_interval_around_it():
    rng = np.random.default_rng(2)
    base = 10 + rng.normal(0, 0.5, 40)
    slower = base * 1.5  # paired rounds: every round 50% slower
    difference = median_difference(list(base), list(slower), paired=True)
    assert difference.measurable
    assert difference.low_pct <= 50 <= difference.high_pct
    assert difference.pct == pytest.approx(50)
    assert difference.text().startswith("+50.0%")


def test_pairing_by_round_removes_shared_drift():
    # Both models drift together from 10 to 30 ms; one is 2% slower in every round. Unpaired,
    # the drift swamps the 2%; paired by round, it is measured.
    drift = np.linspace(10, 30, 30)
    base, other = list(drift), list(drift * 1.02)
    assert not median_difference(base, other, paired=False).measurable
    paired = median_difference(base, other, paired=True)
    assert paired.measurable and paired.low_pct > 0


def test_median_interval_brackets_the_median_and_is_a_point_for_constant_samples():
    interval = median_interval([3.0, 1.0, 2.0, 5.0, 4.0])
    assert interval.estimate == 3.0 and interval.low <= 3.0 <= interval.high
    constant = median_interval([2.0] * 5)
    assert (constant.low, constant.high) == (2.0, 2.0)


def test_paired_seed_difference_matches_a_hand_computed_t_interval():
    # Differences 0.1, 0.2, 0.3 on a baseline mean of 1: +20%, sd 0.1, t(0.975, 2) = 4.3027,
    # half-width 4.3027 * 0.1 / sqrt(3) = 0.2484 -> 24.84 points: the interval spans zero.
    difference = paired_mean_difference([1.0, 1.0, 1.0], [1.1, 1.2, 1.3])
    assert difference.pct == pytest.approx(20.0)
    assert difference.high_pct - difference.pct == pytest.approx(24.84, abs=0.01)
    assert not difference.measurable
    one_seed = paired_mean_difference([0.1], [0.5])
    assert not one_seed.known and "one seed" in one_seed.text()
    assert math.isnan(mean_interval([0.3]).low)


def test_the_reported_negative_error_interval_becomes_a_positive_one_by_hand():
    # Issue 37: three final errors whose t interval ran below zero (-0.0021 to 0.0183).
    values = [0.0030, 0.0081, 0.0132]
    t_interval = mean_interval(values)
    assert t_interval.low < 0
    interval = positive_mean_interval(values)
    # log-scale: mean x exp(+-t s / (mean sqrt n)); s = 0.0051, t(2) = 4.303
    half = 4.302653 * 0.0051 / math.sqrt(3) / 0.0081
    assert interval.estimate == pytest.approx(0.0081)
    assert interval.low == pytest.approx(0.0081 * math.exp(-half), rel=1e-4)
    assert interval.high == pytest.approx(0.0081 * math.exp(half), rel=1e-4)
    assert 0 < interval.low < 0.0081 < interval.high


def test_no_interval_of_a_positive_quantity_is_negative_over_random_small_samples():
    rng = np.random.default_rng(37)
    for trial in range(2000):
        n = int(rng.integers(2, 6))
        kind = trial % 4
        if kind == 0:  # errors near zero, some exactly zero
            values = np.where(rng.random(n) < 0.3, 0.0, rng.exponential(0.01, n))
        elif kind == 1:  # norms spanning orders of magnitude
            values = np.exp(rng.normal(0, 3, n))
        elif kind == 2:  # ratios, one far out
            values = np.abs(rng.standard_cauchy(n))
        else:  # bounded: a radius censored at 1
            values = np.minimum(rng.exponential(0.8, n), 1.0)
        interval = positive_mean_interval(list(values), upper=1.0 if kind == 3 else None)
        assert interval.low >= 0, values
        assert interval.low <= interval.estimate <= interval.high, values
        if kind == 3:
            assert interval.high <= 1.0


def test_a_positive_interval_needs_positive_values_and_two_of_them():
    with pytest.raises(ValueError, match="cannot be negative.*-0.1"):
        positive_mean_interval([0.2, -0.1])
    single = positive_mean_interval([0.5])
    assert single.estimate == 0.5 and math.isnan(single.low) and math.isnan(single.high)
    assert positive_mean_interval([0.0, 0.0]) == positive_mean_interval([0.0, 0.0, 0.0])
    assert positive_mean_interval([0.0, 0.0]).high == 0.0
    estimate = positive_seed_estimate("final error", {2: 0.01, 1: 0.02, 3: 0.0})
    assert list(estimate.per_seed) == [1, 2, 3] and estimate.low > 0 and estimate.above_zero


def test_delta_table_blanks_deltas_inside_the_noise():
    from resnet_probe.results import delta_table, measurable_deltas

    summary = pd.DataFrame({"model": ["a", "b", "c"], "forward_ms": [10.0, 10.1, 15.0]})
    uncertainty = pd.DataFrame([
        {"model": "b", "metric": "forward_ms", "ci95_low_pct": -2.0, "ci95_high_pct": 3.0,
         "measurable": False, "change": "no measurable difference (95% CI -2.0 to +3.0%)"},
        {"model": "c", "metric": "forward_ms", "ci95_low_pct": 45.0, "ci95_high_pct": 55.0,
         "measurable": True, "change": "+50.0% (95% CI +45.0 to +55.0%)"}])
    deltas = delta_table(summary, ["forward_ms"], uncertainty=uncertainty)
    assert deltas["forward_ms_delta_pct"].tolist() == pytest.approx([0.0, 1.0, 50.0])
    shown = measurable_deltas(deltas).set_index("model")
    assert math.isnan(shown.loc["b", "forward_ms_delta_pct"])
    assert shown.loc["b", "forward_ms_change"].startswith(NO_DIFFERENCE)
    assert shown.loc["c", "forward_ms_delta_pct"] == pytest.approx(50.0)
    assert shown.loc["a", "forward_ms_change"] == "baseline"
    assert "forward_ms_delta_ci95_low" not in shown


def test_latency_models_are_timed_in_interleaved_rounds_with_intervals(invoke):
    result = invoke("latency", "resnet8", "plain8", "--input-size", "32", "--repeats", "12",
                    "--warmup", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    for row in rows.values():
        for kind in ("forward_ms", "backward_ms"):
            assert row[f"{kind}_ci95_low"] <= row[kind] <= row[f"{kind}_ci95_high"]


def test_latency_rounds_visit_every_model_once_per_round_in_varying_order():
    from resnet_probe.measure.latency import LatencyConfig, measure_latency

    result = measure_latency(["resnet8", "plain8", "resnet10"], LatencyConfig(
        repeats=8, warmup=1, input_size=32, sweep_batch_sizes=()))
    rounds = pd.DataFrame(result.rounds)
    assert (rounds.groupby("round")["model"].nunique() == 3).all()
    assert len(rounds) == 3 * 8
    orders = {tuple(group.sort_values("forward_position")["model"]) for _, group in
              rounds.groupby("round")}
    assert len(orders) > 1  # not always the same order
    compared = pd.DataFrame(result.comparisons)
    assert set(compared["metric"]) == {"forward_ms", "backward_ms", "images_per_s"}
    assert set(compared["model"]) == {"plain8", "resnet10"}
    assert (compared["ci95_low_pct"] <= compared["ci95_high_pct"]).all()
    # images/s is the inverse of the forward time: its change mirrors the forward change.
    for name in ("plain8", "resnet10"):
        forward = compared[(compared["model"] == name) & (compared["metric"] == "forward_ms")
                           ].iloc[0]
        images = compared[(compared["model"] == name) & (compared["metric"] == "images_per_s")
                          ].iloc[0]
        assert images["delta_pct"] == pytest.approx((100 / (100 + forward["delta_pct"]) - 1)
                                                    * 100)


def test_latency_difference_view_in_the_cli(invoke):
    result = invoke("latency", "resnet8", "resnet8[zero_init_residual=true]", "--input-size",
                    "32", "--repeats", "10", "--warmup", "1")
    assert result.exit_code == 0, result.output
    assert "change" in result.stdout and "forward_ms" in result.stdout


def test_stage_latency_has_intervals_over_repeats(invoke):
    result = invoke("latency", "resnet8", "--input-size", "32", "--repeats", "6", "--warmup",
                    "1", "--by", "stage", "--format", "json")
    rows = json.loads(result.stdout)
    assert rows and all(r["ci95_low_ms"] <= r["median_ms"] <= r["ci95_high_ms"] for r in rows)
