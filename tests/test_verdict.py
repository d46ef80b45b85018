"""The three-outcome degradation rule on fabricated results (train/verdict.py states it)."""

from __future__ import annotations

import pytest

from resnet_probe.train.verdict import Verdict, depth_gaps, judge

CHANCE = 0.9  # ten classes


def finals(plain_shallow, plain_deep, residual_shallow=None, residual_deep=None,
           status="finished"):
    """One row per (model, seed); each argument lists final training errors by seed."""
    rows = []
    for shortcut, shallow, deep in ((False, plain_shallow, plain_deep),
                                    (True, residual_shallow, residual_deep)):
        if shallow is None:
            continue
        for depth, errors in ((20, shallow), (56, deep)):
            for seed, error in enumerate(errors):
                rows.append({"model": f"{'resnet' if shortcut else 'plain'}{depth}",
                             "depth": depth, "shortcut": shortcut, "seed": seed,
                             "final_train_error": error, "status": status})
    return rows


def test_a_clear_gap_over_several_seeds_is_degradation():
    verdict = judge(finals([0.01, 0.02, 0.0], [0.25, 0.30, 0.20],
                           [0.0, 0.01, 0.0], [0.0, 0.0, 0.01]), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    plain = next(g for g in verdict.gaps if g.kind == "plain")
    assert plain.gap_mean == pytest.approx(0.24) and plain.seeds == 3


def test_one_seed_is_inconclusive_however_large_the_gap():
    verdict = judge(finals([0.0], [0.4], [0.0], [0.0]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "1 seed(s) paired; the rule needs at least 2" in verdict.reasons[0]


def test_a_plain_net_that_never_trained_is_not_degradation():
    verdict = judge(finals([0.01, 0.02], [0.87, 0.88], [0.0, 0.0], [0.0, 0.0]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "did not train" in verdict.reasons[0] and "plain56 seed 0 (0.870)" in \
        verdict.reasons[0]


def test_a_gap_inside_the_seed_noise_is_inconclusive():
    # Gaps +0.30 and -0.26: mean 0.02, 2 SE = 0.56.
    verdict = judge(finals([0.0, 0.30], [0.30, 0.04], [0.0, 0.0], [0.0, 0.0]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE and "inside the seed noise" in \
        verdict.reasons[0]


def test_no_gap_with_a_tight_bound_is_no_degradation():
    verdict = judge(finals([0.0, 0.0, 0.0], [0.0, 0.001, 0.0], [0.0] * 3, [0.0] * 3), CHANCE)
    assert verdict.verdict is Verdict.NONE


def test_residual_nets_degrading_too_is_inconclusive():
    verdict = judge(finals([0.0, 0.0], [0.3, 0.32], [0.0, 0.0], [0.25, 0.27]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE and "residual nets lose" in \
        verdict.reasons[0]


def test_unfinished_runs_make_it_inconclusive():
    verdict = judge(finals([0.0, 0.0], [0.3, 0.32], status="interrupted"), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE and "did not finish" in verdict.reasons[0]


def test_gaps_pair_seeds():
    rows = finals([0.1, 0.2], [0.3, 0.6])
    (plain,) = depth_gaps(rows)
    assert plain.gap_mean == pytest.approx(0.3)  # (0.2 + 0.4) / 2, each seed with its own
    assert plain.gap_se == pytest.approx(0.1)  # stdev(0.2, 0.4) / sqrt(2)


def test_every_degradation_run_writes_verdict_json(tiny_degradation):
    import json

    verdict = json.loads((tiny_degradation / "data" / "verdict.json").read_text())
    assert verdict["verdict"] in {v.value for v in Verdict}
    assert isinstance(verdict["reasons"], list) and verdict["reasons"]
    assert "rule" in verdict


def test_the_measured_default_run_with_three_seeds():
    """The final errors `degradation --seeds 0,1,2` measured here (README): plain56 at 0.450 has
    learned half the task, so it trained, and the gap is far outside the seed noise."""
    verdict = judge(finals([0.0, 0.0, 0.00026], [0.2331, 0.45, 0.2576],
                           [0.0, 0.0, 0.0], [0.00052, 0.0, 0.00078]), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    plain = next(g for g in verdict.gaps if g.kind == "plain")
    assert round(plain.gap_mean, 3) == 0.313 and round(2 * plain.gap_se, 3) == 0.137


def test_the_stated_rule_names_its_thresholds():
    from resnet_probe.train import verdict as module

    rule = judge(finals([0.0], [0.1]), CHANCE).rule
    assert f"MIN_SEEDS ({module.MIN_SEEDS})" in rule and f"MIN_GAP ({module.MIN_GAP})" in rule
    assert module.TRAINED_FRACTION == 0.75 and "TRAINED_FRACTION, 3/4," in rule


def test_an_untrained_plain_run_settles_the_verdict_before_more_seeds():
    from resnet_probe.train.verdict import settled_early

    trained = finals([0.05], [0.30], [0.01], [0.01])
    assert settled_early(trained, CHANCE) is None  # still open: a second seed runs
    stuck = finals([0.05], [0.85], [0.01], [0.01])
    assert "did not train" in settled_early(stuck, CHANCE)
    assert "did not finish" in settled_early(finals([0.05], [0.3], status="diverged"), CHANCE)


def test_compare_stops_after_the_first_seed_once_a_plain_net_did_not_train(tmp_path):
    from resnet_probe.comparison import CompareOptions, run_compare
    from resnet_probe.train.loop import TrainConfig

    train = TrainConfig(steps=3, batch_size=16, warmup_steps=1, eval_every=3,
                        grad_norm_every=3, checkpoint_every=3)  # far too short to train
    result = run_compare(["resnet8", "plain8"], CompareOptions(
        latency=None, gradients=None, train=train, input_size=32, train_seeds=(0, 1, 2)),
        out_dir=tmp_path)
    finals = result.tables["train_final"]
    assert set(finals["seed"]) == {0}
    verdict = result.tables["train_verdict"].iloc[0]
    assert verdict["verdict"] == "inconclusive"
    assert "stopped after seed 0, skipping 2 more" in verdict["reasons"]
