"""The causal test of the early-layer freeze: the intervention keeps the function, the
learning-rate variant follows its formula, an intervened run stops at K and is its own cache
entry, and the rule (train/causal.py) on synthetic runs with hand-computed numbers."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from resnet_probe.errors import InvalidRequest
from resnet_probe.report.words import causal_line, causal_record
from resnet_probe.train.causal import (
    CausalOutcome,
    ControlChangesLittle,
    ControlChangesToo,
    DivergedRun,
    InterventionDiverged,
    MissingRuns,
    NoGapToExplain,
    PlainGapDoesNotShrink,
    PlainGapShrinks,
    causal_test,
)
from resnet_probe.train.interventions import (
    Intervention,
    InterventionVariant,
    bn_fed_convs,
    lr_factors,
    parameter_groups,
    project_to_norms,
    weight_norms,
)
from resnet_probe.train.loop import RunResult, RunStatus, TrainConfig
from resnet_probe.zoo import build_model

CHANCE = 0.9
T_975_2 = 4.302653


def trained_a_little(name: str):
    """A zoo net after three SGD steps with momentum: running statistics and momentum buffers
    away from their init, conv norms grown."""
    torch.manual_seed(0)
    model = build_model(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer, x


@pytest.mark.parametrize("name", ["resnet8[num_classes=10]", "plain8[num_classes=10]"])
def test_the_projection_keeps_the_function_in_eval_and_train_mode(name):
    model, optimizer, x = trained_a_little(name)
    convs = bn_fed_convs(model)
    norms = {conv: 0.5 * norm for conv, norm in weight_norms(model, convs).items()}
    projected = copy.deepcopy(model)
    moved = torch.optim.SGD(projected.parameters(), lr=0.5, momentum=0.9)
    moved.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    conv = next(iter(convs))
    before = optimizer.state[dict(model.named_modules())[conv].weight]["momentum_buffer"]
    project_to_norms(projected, moved, convs, norms)
    assert weight_norms(projected, convs) == pytest.approx(norms)  # the weights did move
    # the momentum buffer holds gradients, which scale as 1/c: divided by c = 0.5
    after = moved.state[dict(projected.named_modules())[conv].weight]["momentum_buffer"]
    assert torch.allclose(after, before / 0.5)
    with torch.no_grad():  # eval first: a train-mode forward moves the running statistics
        reference, output = model.eval()(x), projected.eval()(x)
        assert torch.allclose(output, reference, rtol=1e-3, atol=1e-3 * reference.abs().max())
        reference, output = model.train()(x), projected.train()(x)
        assert torch.allclose(output, reference, rtol=1e-3, atol=1e-3 * reference.abs().max())


def test_every_conv_feeding_a_bn_is_found_and_no_other():
    # post-activation resnet8: the stem and two convs in each of three blocks, all into a BN
    assert sorted(bn_fed_convs(build_model("resnet8[num_classes=10]"))) == [
        "conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2",
        "layer3.0.conv1", "layer3.0.conv2"]
    # pre-activation: each block's conv1 feeds its bn2; conv2 feeds the add, and the stem
    # feeds both a BN and the identity shortcut: scaling those would change the function
    assert bn_fed_convs(build_model("resnet8[num_classes=10,preact=true]")) == {
        "layer1.0.conv1": "layer1.0.bn2", "layer2.0.conv1": "layer2.0.bn2",
        "layer3.0.conv1": "layer3.0.bn2"}


def test_the_lr_factor_is_the_squared_norm_ratio():
    model, _, _ = trained_a_little("plain8[num_classes=10]")
    convs = bn_fed_convs(model)
    now = weight_norms(model, convs)
    initial = {conv: norm / 3 for conv, norm in now.items()}
    assert lr_factors(model, convs, initial) == pytest.approx({conv: 9.0 for conv in convs})
    groups = parameter_groups(model, convs)
    assert [g["conv"] for g in groups] == [*convs, None]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_the_lr_variant_sets_each_layer_lr_by_the_formula(monkeypatch, digits_small):
    from resnet_probe.train import loop

    seen = []
    make = loop.sgd

    def watched(model, config, groups=None):
        optimizer = make(model, config, groups)
        modules = dict(model.named_modules())
        step = optimizer.step

        def recorded(*args, **kwargs):
            seen.append([(g["conv"], g["lr"], modules[g["conv"]].weight.norm().item())
                         for g in optimizer.param_groups if g["conv"] is not None])
            return step(*args, **kwargs)
        optimizer.step = recorded
        return optimizer

    monkeypatch.setattr(loop, "sgd", watched)
    config = TrainConfig(steps=8, batch_size=16, warmup_steps=1, warmup_lr=0.5, lr=1.0,
                         eval_every=8, grad_norm_every=8, checkpoint_every=8, eval_images=32,
                         intervention=Intervention(4, InterventionVariant.LEARNING_RATE))
    run = loop.train_run("plain8", digits_small, config, seed=0)
    assert len(run.history) == 4 and len(seen) == 4
    initial = {conv: norm for conv, _, norm in seen[0]}
    for step, groups in enumerate(seen):
        for conv, lr, norm in groups:
            assert lr == pytest.approx(config.lr_at(step) * (norm / initial[conv]) ** 2)
    assert any(lr > 1.5 * config.lr_at(3) for _, lr, _ in seen[3])  # the norms did grow


def test_an_intervened_run_stops_at_k_with_its_convs_at_their_init_norm(tmp_path,
                                                                         digits_small):
    from resnet_probe.train.loop import build_for_dataset, load_checkpoint, train_run

    config = TrainConfig(steps=8, batch_size=16, warmup_steps=1, eval_every=8,
                         grad_norm_every=8, checkpoint_every=8, eval_images=32,
                         intervention=Intervention(3))
    run = train_run("plain8", digits_small, config, seed=0, checkpoint=tmp_path / "run.pt")
    assert run.status is RunStatus.FINISHED and len(run.history) == 3
    assert [row["lr"] for row in run.history] == [config.lr_at(s) for s in range(3)]
    torch.manual_seed(0)
    fresh = build_for_dataset("plain8", digits_small)
    convs = bn_fed_convs(fresh)
    weights = load_checkpoint(tmp_path / "run.pt", model=fresh)["model"]
    for conv, norm in weight_norms(fresh, convs).items():
        assert weights[f"{conv}.weight"].float().norm().item() == pytest.approx(norm, rel=2e-3)


def test_the_run_cache_keys_the_intervention(digits_small):
    from resnet_probe.sources import resolve
    from resnet_probe.train.run_cache import RunCache

    cache = RunCache()
    config = TrainConfig(steps=8, warmup_steps=1)
    keys = [cache.content(resolve("plain8"), digits_small, c, seed=0)["recipe"]
            for c in (config, TrainConfig(**{**config.__dict__,
                                            "intervention": Intervention(3)}))]
    assert keys[0] != keys[1] and keys[1]["intervention"] == {"steps": 3, "variant": "project"}


def test_an_intervention_longer_than_the_budget_is_refused():
    with pytest.raises(InvalidRequest, match="intervention.steps=9, steps=8"):
        TrainConfig(steps=8, warmup_steps=1, intervention=Intervention(9))


def test_an_intervention_of_no_steps_is_refused():
    with pytest.raises(InvalidRequest, match="steps=0"):
        Intervention(0)


@pytest.fixture(scope="module")
def digits_small():
    from resnet_probe.data import load_dataset

    return load_dataset("digits")


# --- the rule, on synthetic runs ---------------------------------------------------------------

def run(model, seed, errors, depth, shortcut):
    return RunResult(model=model, seed=seed, status=RunStatus.FINISHED, depth=depth,
                     shortcut=shortcut, seconds=1.0,
                     history=[{"step": i, "train_error": e} for i, e in enumerate(errors)])


def runs_for(plain_deep, resnet_deep, plain_shallow=(0.5, 0.5, 0.5), steps=4,
             intervened=False):
    """Per seed, each net's error held at one level for ``steps`` steps (so its endpoint over
    K steps is that level); the shallow nets only for the normal runs."""
    made = []
    for seed in range(len(plain_deep)):
        made += [run("plain56", seed, [plain_deep[seed]] * steps, 56, False),
                 run("resnet56", seed, [resnet_deep[seed]] * steps, 56, True)]
        if not intervened:
            made += [run("plain20", seed, [plain_shallow[seed]] * steps, 20, False),
                     run("resnet20", seed, [0.3] * steps, 20, True)]
    return made


def test_the_rule_says_supported_with_the_hand_numbers():
    normal = runs_for([0.85, 0.87, 0.86], [0.40, 0.42, 0.41], steps=8)
    treated = runs_for([0.60, 0.65, 0.61], [0.40, 0.43, 0.40], steps=4, intervened=True)
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    # plain changes -0.25, -0.22, -0.25: mean -0.24, sd 0.017321, half-width 0.043027
    assert test.plain_change.estimate == pytest.approx(-0.24)
    assert test.plain_change.high == pytest.approx(-0.24 + T_975_2 * 0.017321 / math.sqrt(3),
                                                   abs=1e-5)
    # control changes 0, +0.01, -0.01: interval +-0.0248, inside the band 0.5 x 0.24 = 0.12
    assert test.control_band == pytest.approx(0.12)
    assert test.outcome is CausalOutcome.SUPPORTED
    assert test.reasons == (PlainGapShrinks(), ControlChangesLittle(pytest.approx(0.12)))
    assert test.gap_before.estimate == pytest.approx(0.36)  # over the first 4 steps
    assert test.gap_after.estimate == pytest.approx(0.12)
    assert test.seconds == 6.0
    assert "mechanism supported" in causal_line(test)
    assert causal_record(test)["plain_change"]["mean"] == pytest.approx(-0.24)


def test_a_control_that_speeds_up_as_much_is_not_supported():
    normal = runs_for([0.85, 0.87, 0.86], [0.60, 0.62, 0.61])
    treated = runs_for([0.60, 0.65, 0.61], [0.40, 0.40, 0.41], intervened=True)
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    assert test.outcome is CausalOutcome.NOT_SUPPORTED
    assert isinstance(test.reasons[-1], ControlChangesToo)


def test_an_intervention_that_slows_the_plain_net_is_not_supported():
    normal = runs_for([0.70, 0.72, 0.71], [0.40, 0.42, 0.41])
    treated = runs_for([0.85, 0.86, 0.88], [0.40, 0.42, 0.41], intervened=True)
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    assert test.plain_change.per_seed[1] == pytest.approx(0.86 - 0.72)
    assert test.outcome is CausalOutcome.NOT_SUPPORTED
    assert test.reasons[0] == PlainGapDoesNotShrink(slower=True)
    assert "makes it train slower" in causal_line(test)


def test_an_intervened_run_that_diverged_leaves_the_mechanism_untested():
    """The main job's first held-out run: every intervened plain34 diverged at step 7, and
    counting them at chance had called the mechanism 'not supported'."""
    normal = runs_for([0.70, 0.72, 0.71], [0.40, 0.42, 0.41])
    treated = runs_for([0.85, 0.86, 0.88], [0.40, 0.42, 0.41], intervened=True)
    # plain56 seed 1 diverged after two of four steps: counted at chance for the other two
    diverged = treated[2]
    diverged.history, diverged.status, diverged.diverged_at = (
        diverged.history[:2], RunStatus.DIVERGED, 2)
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    assert test.plain_change.per_seed[1] == pytest.approx((2 * 0.86 + 2 * 0.9) / 4 - 0.72)
    assert test.outcome is CausalOutcome.UNTESTED
    assert InterventionDiverged((DivergedRun("plain56", 1, 2),)) in test.reasons
    assert "mechanism not tested" in causal_line(test)
    assert "plain56 seed 1 at step 2" in causal_line(test)


def test_no_gap_in_the_first_k_steps_leaves_nothing_to_explain():
    normal = runs_for([0.50, 0.52, 0.49], [0.40, 0.42, 0.41])
    treated = runs_for([0.40, 0.40, 0.41], [0.40, 0.42, 0.41], intervened=True)
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    assert test.outcome is CausalOutcome.UNTESTED and test.reasons == (NoGapToExplain(),)


def test_missing_intervened_runs_leave_it_untested():
    normal = runs_for([0.85, 0.87, 0.86], [0.40, 0.42, 0.41])
    treated = runs_for([0.60, 0.65, 0.61], [0.40, 0.42, 0.41], intervened=True)[:-1]
    test = causal_test(normal, treated, Intervention(4), CHANCE)
    assert test.outcome is CausalOutcome.UNTESTED
    assert test.reasons[0] == MissingRuns(test.reasons[0].runs)
    assert [(r.model, r.seed) for r in test.reasons[0].runs] == [("resnet56", 2)]


def test_a_degradation_run_with_intervene_trains_the_deepest_twins_and_states_the_test(
        tmp_path, digits_small):
    from resnet_probe.jobs.sweep import run_degradation
    from resnet_probe.report.words import verdict_record
    from resnet_probe.train.degradation import DegradationConfig

    models = ("plain8", "resnet8", "cifar[layers=2-2-2,shortcut=false]", "cifar[layers=2-2-2]")
    config = DegradationConfig(
        models=models, seeds=(0, 1, 2), intervene=True, intervention=Intervention(2),
        train=TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=4,
                          grad_norm_every=4, checkpoint_every=4, eval_images=32))
    result = run_degradation(config, tmp_path, dataset=digits_small)
    assert sorted((r.model, r.seed, len(r.history)) for r in result.intervened_runs) == sorted(
        (m, s, 2) for m in models[2:] for s in (0, 1, 2))
    assert len(result.runs) == 12  # the normal runs are untouched
    test = result.tables().causal
    assert test is not None and (test.plain, test.control, test.shallow) == (
        models[2], models[3], "plain8")
    assert test.plain_change.seeds == 3
    record = verdict_record(result.verdict(), test)
    assert record["causal_test"]["outcome"] == test.outcome.value
    assert record["controls"]["causal_test_control"]["model"] == models[3]
