"""The three-outcome degradation rule on fabricated results (train/verdict.py states it), with
every interval computed by hand here: t(0.975, 2 df) = 4.302653 for three seeds."""

from __future__ import annotations

import json
import math

import pytest

from resnet_probe.report.words import reasons_text, residual_finding, verdict_record
from resnet_probe.train.verdict import (
    SeedRole,
    TooFewSeeds,
    Unfinished,
    Untrained,
    Verdict,
    judge,
    settled_early,
)

CHANCE = 0.9  # ten classes
T_975_2 = 4.302653  # Student t, 97.5th percentile, 2 degrees of freedom


def finals(plain_shallow, plain_deep, residual_shallow=None, residual_deep=None,
           status="finished", seeds=None):
    """One row per (model, seed); each argument lists final training errors by seed."""
    rows = []
    for shortcut, shallow, deep in ((False, plain_shallow, plain_deep),
                                    (True, residual_shallow, residual_deep)):
        if shallow is None:
            continue
        for depth, errors in ((20, shallow), (56, deep)):
            for index, error in enumerate(errors):
                rows.append({"model": f"{'resnet' if shortcut else 'plain'}{depth}",
                             "depth": depth, "shortcut": shortcut,
                             "seed": (seeds or range(100))[index],
                             "final_train_error": error, "status": status})
    return rows


def t_interval(values):
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = T_975_2 * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def test_a_clear_gap_over_three_seeds_is_degradation_with_the_hand_interval():
    verdict = judge(finals([0.01, 0.02, 0.0], [0.25, 0.30, 0.20],
                           [0.0, 0.01, 0.0], [0.0, 0.0, 0.01]), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    # Plain gaps 0.24, 0.28, 0.20: sd 0.04, SE 0.0231, half-width 4.3027 x 0.0231 = 0.0994.
    assert verdict.plain_gap.estimate == pytest.approx(0.24)
    assert (verdict.plain_gap.low, verdict.plain_gap.high) == pytest.approx(
        (0.24 - 0.099365, 0.24 + 0.099365), abs=1e-5)
    # Difference of differences: 0.24 - 0, 0.28 + 0.01, 0.20 - 0.01.
    mean, low, high = t_interval([0.24, 0.29, 0.19])
    dd = verdict.difference_of_differences
    assert (dd.estimate, dd.low, dd.high) == pytest.approx((mean, low, high))
    assert dd.per_seed == pytest.approx({0: 0.24, 1: 0.29, 2: 0.19})


def test_two_seeds_are_inconclusive_however_large_the_gap():
    verdict = judge(finals([0.0, 0.01], [0.4, 0.5], [0.0, 0.0], [0.0, 0.0]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert TooFewSeeds(seeds=2, needed=3) in verdict.reasons
    assert any("2 seed(s) have all four runs; the rule needs at least 3" in r
               for r in reasons_text(verdict))


def test_a_plain_net_that_never_trained_is_not_degradation():
    verdict = judge(finals([0.01, 0.02, 0.0], [0.87, 0.88, 0.3], [0.0] * 3, [0.0] * 3),
                    CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "did not train" in reasons_text(verdict)[0] and "plain56 seed 0 (0.870)" in \
        reasons_text(verdict)[0] and "0.675" in reasons_text(verdict)[0]


def test_a_gap_inside_the_seed_noise_is_inconclusive_and_names_the_open_comparison():
    # Plain gaps +0.30, -0.26, +0.02: mean 0.02, interval about ±0.70.
    verdict = judge(finals([0.0, 0.30, 0.0], [0.30, 0.04, 0.02], [0.0] * 3, [0.0] * 3), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert reasons_text(verdict)[0].startswith("the plain gap and the difference of differences")
    assert "no measurable difference" in reasons_text(verdict)[0]


def test_a_wide_gap_over_three_seeds_is_not_observed_on_two_standard_errors():
    """An earlier round's held-out degradation seeds (plain56 0.133, 0.282, 0.378): gap +0.264,
    which the old rule called degradation on ±2 SE; the t interval (±4.30 SE) spans zero."""
    verdict = judge(finals([0.00026, 0.0, 0.0], [0.1326, 0.2823, 0.3779],
                           [0.0, 0.0, 0.0], [0.0013, 0.00026, 0.0]), CHANCE)
    mean, low, high = t_interval([0.1326 - 0.00026, 0.2823, 0.3779])
    assert low < 0 < high
    assert (verdict.plain_gap.low, verdict.plain_gap.high) == pytest.approx((low, high))
    assert verdict.verdict is Verdict.INCONCLUSIVE


def test_no_gap_with_a_tight_bound_is_no_degradation():
    verdict = judge(finals([0.0, 0.0, 0.0], [0.0, 0.001, 0.0], [0.0] * 3, [0.0] * 3), CHANCE)
    assert verdict.verdict is Verdict.NONE
    assert verdict.plain_gap.high < 0.01


def test_residual_nets_degrading_less_is_degradation_and_the_residual_pair_is_reported():
    verdict = judge(finals([0.0, 0.0, 0.0], [0.30, 0.32, 0.31], [0.0] * 3, [0.05, 0.06, 0.04]),
                    CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    assert residual_finding(verdict).startswith("the residual pair degrades too: +0.050")


def test_residual_nets_degrading_as_much_is_inconclusive():
    verdict = judge(finals([0.0, 0.0, 0.0], [0.30, 0.32, 0.31], [0.0] * 3, [0.31, 0.30, 0.33]),
                    CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "the difference of differences" in reasons_text(verdict)[0] and \
        "the twin gap" in reasons_text(verdict)[0]


def test_unfinished_runs_make_it_inconclusive():
    verdict = judge(finals([0.0] * 3, [0.3, 0.32, 0.31], [0.0] * 3, [0.0] * 3,
                           status="interrupted"), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE and "did not finish" in reasons_text(verdict)[0]


def test_seeds_carry_their_roles():
    rows = finals([0.0] * 3, [0.3, 0.32, 0.31], [0.0] * 3, [0.0] * 3, seeds=[2, 3, 4])
    verdict = judge(rows, CHANCE, tuning_seeds=(0, 1, 2))
    assert verdict.seed_roles == {2: SeedRole.TUNING, 3: SeedRole.HELD_OUT,
                                  4: SeedRole.HELD_OUT}
    record = verdict_record(verdict)
    assert record["seeds"] == [{"seed": 2, "role": "tuning"}, {"seed": 3, "role": "held-out"},
                               {"seed": 4, "role": "held-out"}]
    assert record["difference_of_differences"]["seeds"] == 3


def test_the_stated_rule_names_its_thresholds():
    from resnet_probe.report.words import VERDICT_RULE as rule
    from resnet_probe.train import verdict as module

    assert f"MIN_SEEDS ({module.MIN_SEEDS})" in rule and f"MIN_GAP ({module.MIN_GAP})" in rule
    assert module.MIN_SEEDS == 3 and module.TRAINED_FRACTION == 0.75
    assert "TRAINED_FRACTION, 3/4," in rule and "difference of differences" in rule


def test_an_untrained_plain_run_settles_the_verdict_before_more_seeds():
    trained = finals([0.05], [0.30], [0.01], [0.01])
    assert settled_early(trained, CHANCE) is None  # still open: another seed runs
    stuck = settled_early(finals([0.05], [0.85], [0.01], [0.01]), CHANCE)
    assert isinstance(stuck, Untrained) and stuck.bar == pytest.approx(0.675)
    assert [(run.model, run.seed) for run in stuck.runs] == [("plain56", 0)]
    diverged = settled_early(finals([0.05], [0.3], status="diverged"), CHANCE)
    assert isinstance(diverged, Unfinished) and diverged.runs[0].status == "diverged"


def test_every_degradation_run_writes_verdict_json(tiny_degradation):
    verdict = json.loads((tiny_degradation / "data" / "verdict.json").read_text())
    assert verdict["verdict"] in {v.value for v in Verdict}
    assert isinstance(verdict["reasons"], list) and verdict["reasons"]
    assert "rule" in verdict and {"seed", "role"} <= set(verdict["seeds"][0])
    assert set(verdict) >= {"plain_gap", "residual_gap", "difference_of_differences",
                            "twin_gap", "residual_pair"}


def test_compare_stops_after_the_first_seed_once_a_plain_net_did_not_train(tmp_path):
    from resnet_probe.jobs.compare import CompareOptions, Plan, run_compare
    from resnet_probe.jobs.parts import TrainingPart
    from resnet_probe.train.loop import TrainConfig

    train = TrainConfig(steps=3, batch_size=16, warmup_steps=1, eval_every=3,
                        grad_norm_every=3, checkpoint_every=3)  # far too short to train
    plan = Plan.build(["resnet8", "plain8"], CompareOptions(
        latency=None, gradients=None, train=train, input_size=32, train_seeds=(0, 1, 2),
        why=None))
    result = run_compare(plan)
    assert isinstance(result.training, TrainingPart)
    tables = result.training.degradation
    assert set(tables.final["seed"]) == {0}
    assert tables.verdict.verdict is Verdict.INCONCLUSIVE
    assert (tables.stopped_early.after_seed, tables.stopped_early.skipped) == (0, 2)
    assert isinstance(tables.stopped_early.reason, Untrained)
