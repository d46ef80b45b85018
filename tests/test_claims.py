"""The bounded measures and the rule the claims are tested by (issue 37): the half-way radius
and Keskar's sharpness, matched losses, the no-degradation control, the responses' trained
gate; and the findings in words."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.analysis import Outcome, WhyTables, findings
from resnet_probe.analysis.claims import MATCHED_LOSS_FRACTION, MIN_GAMMA_DRIFT, DepthTest
from resnet_probe.analysis.claims import control_outcome as control_rule
from resnet_probe.analysis.landscape import (
    KESKAR_RADIUS,
    SMALLEST_RADIUS,
    crossing_radius,
    half_way_loss,
    keskar_sharpness,
    landscape_radii,
)
from resnet_probe.analysis.responses import gamma_drift, layer_responses
from resnet_probe.report.words import FINDINGS_RULE, findings_in_words
from resnet_probe.results import to_json_records
from resnet_probe.stats import mean_interval
from resnet_probe.zoo import build_model

# --- the half-way radius ----------------------------------------------------------------------


def test_the_half_way_loss_is_half_way_to_a_uniform_guess():
    assert half_way_loss(0.0, 10) == pytest.approx(math.log(10) / 2)  # 1.1513
    assert half_way_loss(0.3, 10) == pytest.approx(0.3 + (2.302585 - 0.3) / 2)


@pytest.mark.parametrize("guess", [None, 0.3])
@pytest.mark.parametrize("curvature", [3.0, 20.0, 400.0])
def test_the_radius_of_a_quadratic_loss_is_the_analytic_one(curvature, guess):
    # L(r) = L0 + c r^2 reaches the half-way loss T at r = sqrt((T - L0) / c).
    loss_at_0 = 0.01
    threshold = half_way_loss(loss_at_0, 10)
    expected = math.sqrt((threshold - loss_at_0) / curvature)  # 0.616, 0.239, 0.053
    radius, reached, losses = crossing_radius(lambda r: loss_at_0 + curvature * r * r,
                                              threshold, loss_at_0, 1.0, guess)
    assert reached
    assert radius == pytest.approx(expected, rel=1e-9)  # log-log interpolation is exact
    assert 0.1 in losses  # Keskar's radius is always probed
    below = max(r for r in losses if r < expected)
    above = min(r for r in losses if r > expected)
    assert above / below <= math.sqrt(2) + 1e-9  # the bracket the rule promises
    assert len(losses) <= 5


def test_an_exponential_rise_is_found_within_one_percent():
    loss_at_0, threshold = 0.01, 1.15
    expected = math.log(threshold / loss_at_0) / 12  # L = L0 exp(12 r): 0.395
    radius, reached, _ = crossing_radius(lambda r: loss_at_0 * math.exp(12 * r), threshold,
                                         loss_at_0, 1.0)
    assert reached and radius == pytest.approx(expected, rel=0.01)


def test_a_side_that_never_reaches_the_half_way_loss_is_censored_at_the_extent():
    radius, reached, losses = crossing_radius(lambda r: 0.01 + 0.1 * r * r, 1.15, 0.01, 1.0)
    assert (radius, reached) == (1.0, False)
    assert max(losses) == 1.0  # nothing probed beyond the extent
    radius, reached, losses = crossing_radius(lambda r: 0.01 + 0.1 * r * r, 1.15, 0.01, 1.0,
                                              guess=1.0)
    assert (radius, reached, sorted(losses)) == (1.0, False, [0.1, 1.0])  # two evaluations


def test_a_non_finite_loss_counts_as_reached():
    radius, reached, _ = crossing_radius(lambda r: math.inf if r > 0.3 else 0.02, 1.15,
                                         0.01, 1.0)
    assert reached and 0.3 <= radius <= 0.3 * math.sqrt(2)


def test_a_side_sharper_than_the_smallest_radius_is_taken_there():
    radius, reached, _ = crossing_radius(lambda r: 5.0, 1.15, 0.01, 1.0)
    assert reached and radius <= SMALLEST_RADIUS


def test_keskar_sharpness_by_hand():
    # the largest rise within |alpha| <= 0.1 over 1 + L0: 0.3 / (1 + 0.5)
    assert keskar_sharpness([0.1, 0.3, 0.2], 0.5) == pytest.approx(0.2)
    assert keskar_sharpness([0.1, math.nan], 0.0) == math.inf


def _separable_net(scale: float) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A linear classifier of two points whose margin is 2 * scale: its loss at the trained
    weights is log(1 + exp(-2 scale)), 1e-6 for scale 6.9."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        net[1].weight.copy_(scale * torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
        net[1].bias.zero_()
    x = torch.tensor([[1.0, 0.3, -0.2, 0.1], [-1.0, 0.1, 0.4, -0.3]]).view(2, 1, 2, 2)
    return net, x, torch.tensor([0, 1])


def test_the_radius_is_bounded_and_finite_as_the_trained_loss_goes_to_zero():
    for scale in (2.0, 4.0, 6.9):
        net, x, y = _separable_net(scale)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        points, sides, summary = landscape_radii(net, x, y, classes=2, directions=10,
                                                 extent=1.0)
        assert summary["loss_at_0"] == pytest.approx(math.log1p(math.exp(-2 * scale)),
                                                     rel=0.1)  # float32
        assert all(0 <= side["half_way_radius"] <= 1.0 for side in sides)
        assert 0 < summary["half_way_radius"] <= 1.0
        assert 0 <= summary["half_way_radius_ci95_low"] <= summary["half_way_radius_ci95_high"]
        assert summary["half_way_radius_ci95_high"] <= 1.0
        assert summary["sides"] == 20 and summary["directions"] == 10
        assert math.isfinite(summary["keskar_sharpness"])
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert summary["loss_at_0"] < 2e-6  # the last net: where a rise / L0 reads ~1e6 x rise


def test_the_radius_of_a_net_is_where_its_loss_crosses_and_keskar_reads_its_probes():
    net, x, y = _separable_net(3.0)
    points, sides, summary = landscape_radii(net, x, y, classes=2, directions=3)
    threshold = summary["half_way_loss"]
    for side in sides:
        along = sorted((abs(p["alpha"]), p["loss"]) for p in points
                       if p["direction"] == side["direction"]
                       and p["alpha"] * side["side"] > 0)
        if side["reached"]:  # the probes bracket the radius
            assert max(loss for r, loss in along if r < side["half_way_radius"]) < threshold
            assert min(loss for r, loss in along if r >= side["half_way_radius"]) >= \
                threshold
        inside = [loss for r, loss in along if r <= KESKAR_RADIUS]
        assert side["keskar_rise"] == pytest.approx(max(inside) - summary["loss_at_0"])
    assert summary["keskar_sharpness"] == pytest.approx(
        max(side["keskar_rise"] for side in sides) / (1 + summary["loss_at_0"]))


def test_a_net_at_or_above_the_chance_loss_has_no_radius():
    net, x, y = _separable_net(0.0)  # all-zero weights: the uniform guess, L0 = ln 2
    _, sides, summary = landscape_radii(net, x, y, classes=2, directions=2)
    assert math.isnan(summary["half_way_radius"]) and summary["censored"] == 0
    assert all(math.isnan(side["half_way_radius"]) for side in sides)


# --- the findings rule ------------------------------------------------------------------------

def _landscape(pairs: dict[int, tuple[list[float], list[float]]],
               losses: dict[int, tuple[float, float]] | None = None) -> pd.DataFrame:
    """landscape_summary rows: per depth, (plain radii, residual radii) over seeds, and
    optionally (plain L0, residual L0)."""
    rows = []
    for depth, (plain, residual) in pairs.items():
        plain_loss, residual_loss = (losses or {}).get(depth, (0.02, 0.01))
        for kind, values, loss in (("plain", plain, plain_loss),
                                   ("resnet", residual, residual_loss)):
            rows += [{"model": f"{kind}{depth}", "seed": seed, "net_depth": depth,
                      "shortcut": kind == "resnet", "half_way_radius": value,
                      "loss_at_0": loss} for seed, value in enumerate(values)]
    return pd.DataFrame(rows)


def _radius_claims(pairs, losses=None) -> pd.DataFrame:
    found = findings(WhyTables.of({"landscape_summary": _landscape(pairs, losses)}))
    return found.set_index("depth")


def test_findings_apply_the_stated_rule_at_a_depth():
    # residual minus plain radius, per seed: +0.3, +0.35, +0.32 -> holds (no control: one depth)
    held = _radius_claims({56: ([0.2, 0.25, 0.23], [0.5, 0.6, 0.55])}).loc[56]
    assert held["outcome_at_depth"] == Outcome.HOLDS and held["seeds"] == 3
    assert held["mean"] == pytest.approx((0.3 + 0.35 + 0.32) / 3)
    assert held["ci95_low"] > 0 and held["per_seed"] == pytest.approx([0.3, 0.35, 0.32])
    assert held["outcome"] == Outcome.NO_CONTROL  # nothing shows it is absent without depth
    failed = _radius_claims({56: ([0.5, 0.6, 0.55], [0.2, 0.25, 0.23])}).loc[56]
    assert failed["outcome"] == Outcome.FAILS
    noisy = _radius_claims({56: ([0.5, 0.2, 0.4], [0.3, 0.5, 0.45])}).loc[56]
    assert noisy["outcome"] == Outcome.NOT_MEASURABLE
    assert _radius_claims({56: ([0.2], [0.5])}).loc[56]["outcome"] == Outcome.TOO_FEW_SEEDS
    # A plain net that sits at a loss of 1.2 is not at a minimum: its radius proves nothing.
    far = _radius_claims({56: ([0.2, 0.25, 0.23], [0.5, 0.6, 0.55])}, {56: (1.2, 0.01)})
    assert far.loc[56]["outcome"] == Outcome.INCONCLUSIVE
    assert far.loc[56]["blocked"][0]["value"] == 1.2


def test_nets_at_different_losses_are_confounded():
    tolerance = MATCHED_LOSS_FRACTION * math.log(10)  # 0.23 nats
    radii = {56: ([0.2, 0.25, 0.23], [0.5, 0.6, 0.55])}
    near = _radius_claims(radii, {56: (0.01 + tolerance - 0.01, 0.01)}).loc[56]
    assert near["outcome_at_depth"] == Outcome.HOLDS
    apart = _radius_claims(radii, {56: (0.01 + tolerance + 0.01, 0.01)}).loc[56]
    assert apart["outcome"] == Outcome.CONFOUNDED
    assert apart["blocked"][0]["value"] == pytest.approx(tolerance + 0.01)


def test_a_deep_difference_holds_only_beyond_the_control_pairs():
    deep = ([0.2, 0.25, 0.23], [0.5, 0.6, 0.55])  # +0.30, +0.35, +0.32
    # The shallow pair differs by +0.01, +0.02, 0.00: the excess (+0.29, +0.33, +0.32) has an
    # interval above zero.
    held = _radius_claims({56: deep, 20: ([0.5, 0.5, 0.5], [0.51, 0.52, 0.5])})
    assert held.loc[20, "role"] == "control" and held.loc[56, "role"] == "tested"
    row = held.loc[56]
    assert row["outcome"] == Outcome.HOLDS and row["control_depth"] == 20
    excess = mean_interval([0.29, 0.33, 0.32])
    assert row["excess_mean"] == pytest.approx(excess.estimate)
    assert row["excess_ci95_low"] == pytest.approx(excess.low) and excess.low > 0
    assert row["control_mean"] == pytest.approx(0.01)
    # The shallow pair, where nothing degrades, differs as much: +0.28, +0.36, +0.33.
    inside = _radius_claims({56: deep, 20: ([0.3, 0.3, 0.3], [0.58, 0.66, 0.63])}).loc[56]
    assert inside["outcome_at_depth"] == Outcome.HOLDS
    assert inside["excess_ci95_low"] < 0 < inside["excess_ci95_high"]
    assert inside["outcome"] == Outcome.WITHIN_CONTROL
    # ... or more: the excess lies below zero, still not beyond the control.
    more = _radius_claims({56: deep, 20: ([0.1, 0.1, 0.1], [0.7, 0.8, 0.75])}).loc[56]
    assert more["excess_ci95_high"] < 0 and more["outcome"] == Outcome.WITHIN_CONTROL
    # A control pair that cannot be compared leaves the claim without a control.
    blocked = _radius_claims({56: deep, 20: ([0.5, 0.5, 0.5], [0.51, 0.52, 0.5])},
                             {20: (0.9, 0.01)}).loc[56]
    assert blocked["control_outcome"] == Outcome.INCONCLUSIVE
    assert blocked["outcome"] == Outcome.NO_CONTROL


def test_the_control_rule_leaves_other_outcomes_as_they_are():
    per_seed = {0: 0.3, 1: -0.2, 2: 0.1}
    deep = DepthTest(per_seed, mean_interval(list(per_seed.values())), Outcome.NOT_MEASURABLE)
    control = DepthTest({0: 0.0, 1: 0.0, 2: 0.1}, mean_interval([0.0, 0.0, 0.1]),
                     Outcome.NOT_MEASURABLE)
    outcome, excess = control_rule(deep, control)
    assert outcome == Outcome.NOT_MEASURABLE
    assert excess.estimate == pytest.approx((0.3 - 0.2 + 0.0) / 3)


def test_the_hessian_claim_carries_the_control_too():
    # Issue 37: plain - residual |λmin/λmax| +0.011 at depth 20 holds at its depth, but the
    # control pair, where nothing degrades, shows +0.0059: the excess is inside the noise.
    deep, control = [0.014, 0.008, 0.011], [0.0030, 0.0080, 0.0067]
    rows = [{"model": f"{'resnet' if residual else 'plain'}{depth}", "seed": seed,
             "net_depth": depth, "shortcut": residual, "loss": 0.05,
             "min_max_ratio": 0.01 + (0 if residual else difference)}
            for depth, differences in ((8, control), (20, deep))
            for residual in (False, True)
            for seed, difference in enumerate(differences)]
    found = findings(WhyTables.of({"hessian": pd.DataFrame(rows)})).set_index("depth")
    row = found.loc[20]
    assert row["claim"] == "hessian_ratio" and row["mean"] == pytest.approx(0.011)
    assert row["outcome_at_depth"] == Outcome.HOLDS and row["ci95_low"] > 0
    assert row["control_mean"] == pytest.approx(0.0059)
    assert row["excess_mean"] == pytest.approx(0.011 - 0.0059)
    assert row["excess_ci95_low"] < 0 and row["outcome"] == Outcome.WITHIN_CONTROL


# --- the responses' trained gate --------------------------------------------------------------

def test_gamma_drift_is_the_mean_distance_of_bn_scales_from_one():
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 1.2, 0.9, 1.1]))
    assert gamma_drift(bn) == pytest.approx((0 + 0.2 + 0.1 + 0.1) / 4)
    assert math.isnan(gamma_drift(nn.Conv2d(1, 1, 3)))
    torch.manual_seed(0)
    net = build_model("resnet8", in_channels=1, num_classes=10).eval()
    rows = layer_responses(net, torch.randn(4, 1, 16, 16))
    assert all(row["gamma_drift"] == 0.0 for row in rows)  # fresh BNs: gamma = 1


def _responses(drift: float, plain_std: float = 2.0, residual_std: float = 1.0,
               seeds: int = 3) -> pd.DataFrame:
    return pd.DataFrame([
        {"model": f"{kind}20", "seed": seed, "net_depth": 20, "shortcut": kind == "resnet",
         "layer": f"l{layer}", "response_std": (residual_std if kind == "resnet"
                                                 else plain_std) * (1 + 0.1 * layer + 0.01 * seed),
         "gamma_drift": drift}
        for kind in ("plain", "resnet") for seed in range(seeds) for layer in range(4)])


def test_responses_are_not_testable_until_bn_scales_move():
    found = findings(WhyTables.of({"responses": _responses(MIN_GAMMA_DRIFT / 2)})).iloc[0]
    assert found["claim"] == "responses"
    assert found["outcome"] == Outcome.NOT_TESTABLE
    assert found["blocked"][0]["measure"] == "gamma_drift"
    trained = findings(WhyTables.of({"responses": _responses(MIN_GAMMA_DRIFT * 2)})).iloc[0]
    # log10(plain / residual) = log10 2 on every layer: He et al.'s smaller residual responses
    assert trained["outcome"] == Outcome.HOLDS
    assert trained["mean"] == pytest.approx(math.log10(2))
    # no BN among the response layers (pre-activation): nothing to gate on
    preact = findings(WhyTables.of({"responses": _responses(math.nan)})).iloc[0]
    assert preact["outcome"] == Outcome.HOLDS


# --- in words ---------------------------------------------------------------------------------

def test_findings_in_words_name_the_claim_the_control_and_what_blocked_it():
    deep = ([0.2, 0.25, 0.23], [0.5, 0.6, 0.55])
    found = findings(WhyTables.of({"landscape_summary": _landscape(
        {56: deep, 20: ([0.3, 0.3, 0.3], [0.58, 0.66, 0.63])})}))
    worded = findings_in_words(found).set_index("depth")
    assert worded.loc[56, "claim"] == "half-way radius r½ (residual − plain)"
    assert worded.loc[56, "claim_id"] == "landscape_radius"
    assert "control at depth 20 +0.323" in worded.loc[56, "evidence"]
    assert "control pair" in worded.loc[20, "evidence"]
    blocked = findings_in_words(findings(WhyTables.of({"landscape_summary": _landscape(
        {56: deep}, {56: (1.2, 0.01)})})))
    assert "did not train: plain56 seed 0 (loss_at_0 1.200)" in blocked.iloc[0]["evidence"]
    assert "not beyond the control" in FINDINGS_RULE and "ln C" in FINDINGS_RULE
    # as the cache of results gives them back: JSON, NaN read as null
    mixed = pd.concat([found, findings(WhyTables.of({"landscape_summary": _landscape(
        {56: ([0.2], [0.5])})}))])
    reread = pd.DataFrame.from_records(json.loads(to_json_records(mixed)))
    assert list(findings_in_words(reread)["evidence"]) == list(
        findings_in_words(mixed)["evidence"])


def test_the_landscape_on_a_tiny_trained_pair_crosses_the_half_way_loss():
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    net = build_model("cifar[layers=1-1-1]", in_channels=1, num_classes=10)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(12):  # memorise the 32 images
        optimiser.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimiser.step()
    _, sides, summary = landscape_radii(net.eval(), x, y, classes=10, directions=10)
    assert summary["loss_at_0"] < 0.5
    assert 0 < summary["half_way_radius"] < 1.0 and summary["sides"] == 20
    assert summary["censored"] == sum(not side["reached"] for side in sides)
