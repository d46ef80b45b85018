"""The three-outcome degradation rule on fabricated results (train/verdict.py states it), with
every interval computed by hand here: t(0.975, 2 df) = 4.302653 for three seeds."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from resnet_probe.report.words import (
    reasons_text,
    residual_finding,
    verdict_line,
    verdict_record,
)
from resnet_probe.stats import lowest_lower_bound, sign_test
from resnet_probe.train.verdict import (
    PlainGapAboveZero,
    PlainGapNotAboveZero,
    ReferenceUntrained,
    SeedRole,
    TooFewSeeds,
    Unfinished,
    Verdict,
    error_auc,
    judge,
    settled_early,
)

CHANCE = 0.9  # ten classes
T_975_2 = 4.302653  # Student t, 97.5th percentile, 2 degrees of freedom


def finals(plain_shallow, plain_deep, residual_shallow=None, residual_deep=None,
           status="finished", seeds=None, final=None):
    """One row per (model, seed); each argument lists endpoints (areas under the training-error
    curve) by seed, and the final training error is the same number unless ``final`` maps a
    model to its own list."""
    rows = []
    for shortcut, shallow, deep in ((False, plain_shallow, plain_deep),
                                    (True, residual_shallow, residual_deep)):
        if shallow is None:
            continue
        for depth, values in ((20, shallow), (56, deep)):
            model = f"{'resnet' if shortcut else 'plain'}{depth}"
            for index, value in enumerate(values):
                rows.append({"model": model, "depth": depth, "shortcut": shortcut,
                             "seed": (seeds or range(100))[index], "train_error_auc": value,
                             "final_train_error": (final or {}).get(model, values)[index],
                             "status": status})
    return rows


def t_interval(values):
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = T_975_2 * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


# --- the endpoint ----------------------------------------------------------------------------

def test_the_endpoint_is_the_mean_error_and_a_diverged_run_counts_chance_from_there_on():
    assert error_auc([0.9, 0.5, 0.25, 0.125], 4, CHANCE) == pytest.approx(1.775 / 4)
    # diverged after two of five steps: 0.8 + 0.6 + 3 x 0.9 = 4.1
    assert error_auc([0.8, 0.6], 5, CHANCE) == pytest.approx(4.1 / 5)
    # over the first K steps only (the causal test's window)
    assert error_auc([0.8, 0.6, 0.1, 0.0], 2, CHANCE) == pytest.approx(0.7)


def test_the_endpoint_needs_a_budget():
    with pytest.raises(ValueError, match="steps=0"):
        error_auc([0.5], 0, CHANCE)


# --- the stats beside it -----------------------------------------------------------------------

def test_the_sign_test_p_values_by_hand():
    # 3 of 3 above zero: 1/8; 2 of 3: (3 + 1)/8; 7 of 8: (8 + 1)/256; a tie is dropped
    assert sign_test([0.1, 0.2, 0.3]).p_value == pytest.approx(0.125)
    assert sign_test([0.1, -0.2, 0.3]).p_value == pytest.approx(0.5)
    assert sign_test([0.1] * 7 + [-0.1]).p_value == pytest.approx(9 / 256)
    tied = sign_test([0.1, 0.0, 0.3])
    assert (tied.above, tied.below, tied.ties, tied.p_value) == (2, 0, 1, 0.25)
    assert sign_test([0.1, 0.2, 0.3]).smallest_p == 0.125


def test_the_lowest_bound_is_at_a_corner_by_hand():
    # Gaps 0.05 x 3, each free to rise to 0.95. Corner (0.05, 0.05, 0.95): mean 0.35,
    # sd sqrt((0.09 + 0.09 + 0.36) / 2) = 0.519615, bound 0.35 - 4.302653 x 0.519615 / sqrt 3
    assert lowest_lower_bound([0.05] * 3, [0.95] * 3) == pytest.approx(
        0.35 - T_975_2 * math.sqrt(0.27) / math.sqrt(3), abs=1e-6)
    # nothing to raise: the observed bound
    mean, low, _ = t_interval([0.2, 0.3, 0.25])
    assert lowest_lower_bound([0.2, 0.3, 0.25], [0.2, 0.3, 0.25]) == pytest.approx(low)


def test_the_lowest_bound_is_no_higher_than_any_point_inside_the_box():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 6)
        low = [rng.uniform(-0.2, 0.6) for _ in range(n)]
        high = [v + rng.uniform(0, 0.5) for v in low]
        lowest = lowest_lower_bound(low, high)
        inside = [rng.uniform(a, b) for a, b in zip(low, high, strict=True)]
        assert lowest <= t_bound(inside) + 1e-9


def test_the_greedy_search_for_many_seeds_is_a_corner_between_the_exact_and_the_observed(
        monkeypatch):
    from resnet_probe import stats

    rng = random.Random(1)
    cases = []
    for _ in range(100):
        low = [rng.uniform(0.0, 0.6) for _ in range(7)]
        cases.append((low, [v + rng.uniform(0, 0.6) for v in low]))
    exact = [lowest_lower_bound(low, high) for low, high in cases]
    monkeypatch.setattr(stats, "EXHAUSTIVE_SEEDS", 3)
    for (low, high), best in zip(cases, exact, strict=True):
        greedy = lowest_lower_bound(low, high)
        assert best - 1e-12 <= greedy <= t_bound(low) + 1e-12


def t_bound(values):
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean - stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)


# --- the rule ----------------------------------------------------------------------------------

def test_a_clear_gap_over_three_seeds_is_degradation_with_the_hand_interval():
    verdict = judge(finals([0.31, 0.32, 0.30], [0.85, 0.90, 0.80],
                           [0.30, 0.31, 0.30], [0.30, 0.30, 0.31]), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    # Plain gaps 0.54, 0.58, 0.50: sd 0.04, SE 0.0231, half-width 4.3027 x 0.0231 = 0.0994.
    assert verdict.plain_gap.estimate == pytest.approx(0.54)
    assert (verdict.plain_gap.low, verdict.plain_gap.high) == pytest.approx(
        (0.54 - 0.099365, 0.54 + 0.099365), abs=1e-5)
    # Difference of differences, a supporting number: 0.54 - 0, 0.58 + 0.01, 0.50 - 0.01.
    mean, low, high = t_interval([0.54, 0.59, 0.49])
    dd = verdict.difference_of_differences
    assert (dd.estimate, dd.low, dd.high) == pytest.approx((mean, low, high))
    assert verdict.sign_test.p_value == pytest.approx(0.125)
    # The lowest bound had plain56 done worse (up to error 1): the worst of the 8 corners
    corners = [[g if not up else 1.0 - s for g, s, up in zip([0.54, 0.58, 0.50],
                                                            [0.31, 0.32, 0.30], raise_,
                                                            strict=True)]
               for raise_ in itertools.product([False, True], repeat=3)]
    assert verdict.lowest_low == pytest.approx(min(t_interval(c)[1] for c in corners))
    assert verdict.lowest_low > 0


def test_a_plain_net_that_never_left_chance_counts_and_is_degradation():
    """The old rule's failure: seed 4 of an earlier round ended at 0.759 of chance 0.9, above
    the 'trained' cut (0.675), and turned the verdict inconclusive. Now it counts."""
    verdict = judge(finals([0.10, 0.12, 0.11], [0.70, 0.86, 0.72],
                           [0.05, 0.06, 0.05], [0.06, 0.07, 0.06],
                           final={"plain56": [0.55, 0.759, 0.58], "plain20": [0.01, 0.02, 0.01],
                                  "resnet20": [0.0] * 3, "resnet56": [0.0] * 3}), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    assert verdict.reasons == (PlainGapAboveZero(final_errors_differ=True),)


def test_a_diverged_deep_plain_run_counts_and_a_diverged_reference_does_not():
    rows = finals([0.10, 0.12, 0.11], [0.70, 0.90, 0.72], [0.05] * 3, [0.06] * 3)
    rows[4]["status"] = "diverged"  # plain56 seed 1, its endpoint counted at chance
    assert judge(rows, CHANCE).verdict is Verdict.OBSERVED
    rows[7]["status"] = "diverged"  # resnet20 seed 1: a reference
    verdict = judge(rows, CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert isinstance(verdict.reasons[0], ReferenceUntrained)
    assert "the budget is too small" in reasons_text(verdict)[0]


def test_an_untrained_reference_makes_it_inconclusive_the_budget_is_too_small():
    verdict = judge(finals([0.80, 0.12, 0.11], [0.89, 0.86, 0.85], [0.05] * 3, [0.06] * 3,
                           final={"plain20": [0.70, 0.02, 0.01], "plain56": [0.8] * 3,
                                  "resnet20": [0.0] * 3, "resnet56": [0.0] * 3}), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert verdict.reasons[0].bar == pytest.approx(0.675)
    assert [(r.model, r.seed) for r in verdict.reasons[0].runs] == [("plain20", 0)]
    assert "plain20 seed 0 (0.700)" in reasons_text(verdict)[0]


def test_slower_optimisation_when_the_final_errors_do_not_differ():
    verdict = judge(finals([0.10, 0.12, 0.11], [0.65, 0.70, 0.68], [0.05] * 3, [0.06] * 3,
                           final={"plain20": [0.01, 0.00, 0.02], "plain56": [0.00, 0.03, 0.01],
                                  "resnet20": [0.0] * 3, "resnet56": [0.0] * 3}), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED and verdict.slower_optimisation
    assert "slower optimisation at this budget" in verdict_line(verdict)
    assert verdict_record(verdict)["in_words"] == \
        "degradation observed (slower optimisation at this budget)"


def test_two_seeds_are_inconclusive_however_large_the_gap():
    verdict = judge(finals([0.1, 0.11], [0.8, 0.85], [0.1, 0.1], [0.1, 0.1]), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert TooFewSeeds(seeds=2, needed=3) in verdict.reasons
    assert any("2 seed(s) have all four runs; the rule needs at least 3" in r
               for r in reasons_text(verdict))


def test_a_gap_inside_the_seed_noise_is_inconclusive():
    # Plain gaps +0.30, -0.26, +0.02: mean 0.02, interval about +-0.70.
    verdict = judge(finals([0.1, 0.40, 0.1], [0.40, 0.14, 0.12], [0.1] * 3, [0.1] * 3), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert isinstance(verdict.reasons[0], PlainGapNotAboveZero)
    assert reasons_text(verdict)[0].startswith("the plain gap is not measurably above zero")


def test_a_gap_the_t_interval_clears_but_a_worse_deep_run_would_not_is_inconclusive():
    """Gaps 0.20, 0.22, 0.21 clear zero on their own t interval; had plain56 stayed at error 1
    on one seed, the interval would reach below zero. Calling that "observed" would let a
    worse plain56 turn the verdict off; the rule asks for the lowest bound instead."""
    verdict = judge(finals([0.1] * 3, [0.30, 0.32, 0.31], [0.1] * 3, [0.1] * 3), CHANCE)
    assert verdict.plain_gap.low > 0
    assert t_interval([0.20, 0.22, 0.9])[1] < 0  # plain56 at error 1 on seed 2
    assert verdict.lowest_low < 0
    assert verdict.verdict is Verdict.INCONCLUSIVE
    assert "would reach -0.560" in reasons_text(verdict)[0]


def test_no_gap_with_a_tight_bound_is_no_degradation():
    verdict = judge(finals([0.1, 0.1, 0.1], [0.1, 0.101, 0.1], [0.1] * 3, [0.1] * 3), CHANCE)
    assert verdict.verdict is Verdict.NONE
    assert verdict.plain_gap.high < 0.01


def test_the_residual_pair_is_reported_and_decides_nothing():
    # the residual pair degrades as much as the plain pair: supporting numbers only
    verdict = judge(finals([0.1] * 3, [0.80, 0.82, 0.81], [0.1] * 3, [0.81, 0.80, 0.83],
                           final={"resnet56": [0.3] * 3}), CHANCE)
    assert verdict.verdict is Verdict.OBSERVED
    assert residual_finding(verdict).startswith("the residual pair degrades too: +0.713")
    assert not verdict.difference_of_differences.above_zero


def test_unfinished_runs_make_it_inconclusive():
    verdict = judge(finals([0.1] * 3, [0.8, 0.82, 0.81], [0.1] * 3, [0.1] * 3,
                           status="interrupted"), CHANCE)
    assert verdict.verdict is Verdict.INCONCLUSIVE and "did not finish" in reasons_text(verdict)[0]


# --- the verdict cannot flip off ---------------------------------------------------------------

def test_a_worse_deep_plain_net_never_turns_observed_into_anything_else():
    """Synthetic run sets, per-step curves: each perturbation makes random steps of random
    plain56 runs worse (up to error 1); the endpoint can only rise, and the verdict stays."""
    rng = random.Random(0)
    steps, checked = 40, 0
    for _ in range(60):
        seeds = rng.randint(3, 5)
        curves = {(model, seed): [max(0.0, min(1.0, level * math.exp(-t / tau)
                                               + rng.gauss(0, 0.03))) for t in range(steps)]
                  for seed in range(seeds)
                  for model, level, tau in (("plain20", 0.9, 5), ("resnet20", 0.9, 4),
                                            ("resnet56", 0.9, 4),
                                            ("plain56", 0.9, rng.uniform(20, 400)))}
        verdict = judge(rows_of(curves, steps), CHANCE)
        if verdict.verdict is not Verdict.OBSERVED:
            continue
        checked += 1
        for _ in range(20):
            worse = dict(curves)
            for seed in rng.sample(range(seeds), rng.randint(1, seeds)):
                curve = list(worse[("plain56", seed)])
                for t in rng.sample(range(steps), rng.randint(1, steps)):
                    curve[t] = rng.uniform(curve[t], 1.0)
                worse[("plain56", seed)] = curve
            assert judge(rows_of(worse, steps), CHANCE).verdict is Verdict.OBSERVED
    assert checked >= 10  # enough observed run sets to perturb


def rows_of(curves, steps):
    rows = []
    for (model, seed), curve in curves.items():
        rows.append({"model": model, "depth": int(model[-2:]),
                     "shortcut": model.startswith("resnet"), "seed": seed, "status": "finished",
                     "final_train_error": sum(curve[-4:]) / 4,
                     "train_error_auc": error_auc(curve, steps, CHANCE)})
    return rows


# --- seeds, the record, the early stop ---------------------------------------------------------

def test_seeds_carry_their_roles():
    rows = finals([0.1] * 3, [0.8, 0.82, 0.81], [0.1] * 3, [0.1] * 3, seeds=[2, 3, 4])
    verdict = judge(rows, CHANCE, tuning_seeds=(0, 1, 2))
    assert verdict.seed_roles == {2: SeedRole.TUNING, 3: SeedRole.HELD_OUT,
                                  4: SeedRole.HELD_OUT}
    record = verdict_record(verdict)
    assert record["seeds"] == [{"seed": 2, "role": "tuning"}, {"seed": 3, "role": "held-out"},
                               {"seed": 4, "role": "held-out"}]
    assert record["supporting"]["difference_of_differences"]["seeds"] == 3


def test_the_record_holds_the_endpoint_its_test_the_sign_test_and_the_controls():
    record = verdict_record(judge(finals([0.31, 0.32, 0.30], [0.85, 0.90, 0.80],
                                         [0.30, 0.31, 0.30], [0.30, 0.30, 0.31]), CHANCE))
    assert "area under the training-error curve" in record["endpoint"]
    assert record["primary_test"]["plain_gap"]["mean"] == pytest.approx(0.54)
    assert record["primary_test"]["lowest_low_with_a_worse_deep_plain_net"] > 0
    assert record["sign_test"]["p_value_one_sided"] == pytest.approx(0.125)
    assert record["controls"]["residual_pair"]["gap"]["mean"] == pytest.approx(0, abs=1e-12)
    assert record["causal_test"] is None  # not run here


def test_the_stated_rule_names_its_thresholds():
    from resnet_probe.report.words import VERDICT_RULE as rule
    from resnet_probe.train import verdict as module

    assert module.MIN_SEEDS == 3 and module.TRAINED_FRACTION == 0.75 and module.MIN_GAP == 0.01
    assert "fewer than 3 seeds" in rule and "at least 0.01" in rule
    assert "not below 0.75 of chance error" in rule and "sign test" in rule


def test_an_untrained_reference_settles_the_verdict_before_more_seeds():
    trained = finals([0.05], [0.30], [0.01], [0.01])
    assert settled_early(trained, CHANCE) is None  # still open: another seed runs
    # a deep plain net at chance settles nothing: it counts
    assert settled_early(finals([0.05], [0.90], [0.01], [0.01]), CHANCE) is None
    stuck = settled_early(finals([0.80], [0.90], [0.01], [0.01]), CHANCE)
    assert isinstance(stuck, ReferenceUntrained) and stuck.bar == pytest.approx(0.675)
    assert [(run.model, run.seed) for run in stuck.runs] == [("plain20", 0)]
    interrupted = settled_early(finals([0.05], [0.3], status="interrupted"), CHANCE)
    assert isinstance(interrupted, Unfinished) and interrupted.runs[0].status == "interrupted"


def test_every_degradation_run_writes_verdict_json(tiny_degradation):
    verdict = json.loads((tiny_degradation / "data" / "verdict.json").read_text())
    assert verdict["verdict"] in {v.value for v in Verdict}
    assert isinstance(verdict["reasons"], list) and verdict["reasons"]
    assert "rule" in verdict and {"seed", "role"} <= set(verdict["seeds"][0])
    assert set(verdict) >= {"endpoint", "primary_test", "sign_test", "supporting", "controls",
                            "causal_test"}


def test_compare_stops_after_the_first_seed_once_a_reference_did_not_train(tmp_path):
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
    assert isinstance(tables.stopped_early.reason, ReferenceUntrained)


# --- the twin verdict: a model against its plain twin, one depth -----------------------------

def _twin_rows(gaps: list[float], model_auc: float = 0.30, model_final: float = 0.20,
               status: str = "finished") -> list[dict]:
    """A residual model and its plain twin at depth 8: the twin's endpoint is the model's
    plus ``gaps[seed]``."""
    rows = []
    for seed, gap in enumerate(gaps):
        rows.append({"model": "net.py:build", "depth": 8, "shortcut": True, "seed": seed,
                     "status": status, "final_train_error": model_final,
                     "train_error_auc": model_auc})
        rows.append({"model": "plain:net.py:build", "depth": 8, "shortcut": False,
                     "seed": seed, "status": "finished",
                     "final_train_error": model_final + gap,
                     "train_error_auc": model_auc + gap})
    return rows


def test_a_model_and_its_twin_get_a_twin_verdict_not_a_missing_depth():
    from resnet_probe.train.verdict import MissingDepths, judge, judge_twins

    rows = _twin_rows([0.001, -0.001, 0.002])
    assert MissingDepths() in judge(rows, 0.9).reasons
    twin = judge_twins(rows, 0.9)
    assert twin is not None and (twin.model, twin.twin, twin.depth) == \
        ("net.py:build", "plain:net.py:build", 8)


def test_the_twin_verdict_is_no_difference_when_the_interval_lies_within_the_minimum():
    from resnet_probe.train.verdict import TwinOutcome, judge_twins

    # gaps 0.001, -0.001, 0.002: mean 0.000667, sd 0.001528, t(2) 4.303:
    # half-width 4.303 * 0.001528 / sqrt(3) = 0.003795, inside +-0.01
    twin = judge_twins(_twin_rows([0.001, -0.001, 0.002]), 0.9)
    assert twin.verdict is TwinOutcome.NO_DIFFERENCE
    assert twin.twin_gap.estimate == pytest.approx(0.002 / 3)
    assert twin.twin_gap.high == pytest.approx(0.002 / 3 + 0.003795, abs=1e-5)


def test_the_twin_trains_better_when_its_interval_lies_below_zero():
    from resnet_probe.train.verdict import TwinOutcome, judge_twins

    twin = judge_twins(_twin_rows([-0.05, -0.06, -0.07]), 0.9)
    assert twin.verdict is TwinOutcome.BETTER
    assert twin.twin_gap.high < 0


def test_the_twin_trains_worse_only_when_a_worse_twin_cannot_undo_the_call():
    from resnet_probe.train.verdict import TwinOutcome, judge_twins

    # a large, tight gap: even a twin at error 1 on any seed keeps the bound above zero
    worse = judge_twins(_twin_rows([0.6, 0.6, 0.6], model_auc=0.1), 0.9)
    assert worse.verdict is TwinOutcome.WORSE and worse.lowest_low > 0
    # +0.05 to +0.07 clears zero for these runs, but a worse twin on one seed would not
    unsettled = judge_twins(_twin_rows([0.05, 0.06, 0.07]), 0.9)
    assert unsettled.twin_gap.low > 0 and unsettled.lowest_low < 0
    assert unsettled.verdict is TwinOutcome.INCONCLUSIVE


def test_the_twin_verdict_needs_three_seeds_and_a_model_that_trained():
    from resnet_probe.train.verdict import (
        ReferenceUntrained,
        TooFewSeeds,
        TwinOutcome,
        judge_twins,
    )

    few = judge_twins(_twin_rows([-0.05, -0.06]), 0.9)
    assert few.verdict is TwinOutcome.INCONCLUSIVE and TooFewSeeds(2) in few.reasons
    # the model ends at 0.7, not below 3/4 of chance (0.675): the budget is too small
    untrained = judge_twins(_twin_rows([-0.05, -0.06, -0.07], model_final=0.7), 0.9)
    assert untrained.verdict is TwinOutcome.INCONCLUSIVE
    assert isinstance(untrained.reasons[0], ReferenceUntrained)


def test_two_depths_or_two_residual_models_are_not_a_twin_pair():
    from resnet_probe.train.verdict import judge_twins

    rows = _twin_rows([0.0, 0.0, 0.0])
    deeper = [{**row, "depth": 14} if not row["shortcut"] else row for row in rows]
    assert judge_twins(deeper, 0.9) is None
    both_residual = [{**row, "shortcut": True} for row in rows]
    assert judge_twins(both_residual, 0.9) is None


def test_the_twin_verdict_is_said_in_one_line_with_its_interval():
    from resnet_probe.report.words import twin_headline, twin_verdict_line
    from resnet_probe.train.verdict import judge_twins

    twin = judge_twins(_twin_rows([-0.05, -0.06, -0.07]), 0.9)
    line = twin_verdict_line(twin)
    assert line.startswith("twin verdict: the twin trains better, plain:net.py:build against "
                           "net.py:build (seeds 0, 1, 2")
    assert "95% CI -0.085 to -0.035" in line
    assert twin_headline(twin).startswith("No, the reverse: the plain twin")
