"""Gradient norms: the identity path carries the gradient; plain nets explode toward the input."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from resnet_probe.labels import gradient_trend, stage_trend
from resnet_probe.measure.gradients import (
    GradientConfig,
    growth_fits,
    lag_correlation,
    layer_grad_norms,
    measure_gradients,
    run_probe,
    shattering,
    stage_rates,
    within_stage_ratios,
)
from resnet_probe.views import gradient_view
from resnet_probe.zoo import build_model


def probe(name, size=32, batch=8, seed=0):
    torch.manual_seed(seed)
    model = build_model(name)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, model.spec.num_classes, (batch,))
    rows, findings = run_probe(model, x, y)
    return model, {r["block"]: r["act_grad_norm"] for r in rows}, findings


@pytest.mark.parametrize("name, size", [("resnet34[zero_init_residual=true]", 64),
                                        ("resnet20[zero_init_residual=true]", 32)])
def test_identity_carries_the_gradient_untouched(name, size):
    # Zero-initialized branches output 0, so dy/dx = dF/dx + I = I between identity blocks.
    model, norms, _ = probe(name, size)
    blocks = [(n, b) for n, b in model.blocks()]
    checked = 0
    triples = zip(blocks, blocks[1:], blocks[2:], strict=False)
    for (prev, _), (name_b, block_b), (_, block_c) in triples:
        if block_b.downsample is None and block_c.downsample is None:
            assert norms[prev] == pytest.approx(norms[name_b], rel=1e-6), (prev, name_b)
            checked += 1
    assert checked >= 3


def test_gradient_changes_where_a_projection_sits():
    model, norms, _ = probe("resnet34[zero_init_residual=true]", 64)
    # layer2.0 has a 1x1 projection with stride 2: the norm into it differs from the one before.
    assert norms["layer1.1"] != pytest.approx(norms["layer1.2"], rel=1e-3)
    assert norms["layer1.0"] == pytest.approx(norms["layer1.1"], rel=1e-6)


def test_plain_net_ratio_exceeds_residual_twin():
    result = measure_gradients(["plain32", "resnet32"],
                               GradientConfig(batch_size=16, seeds=(0,), shatter_points=0))
    ratio = {r["model"]: r["grad_ratio_first_last"] for r in result.models}
    assert ratio["plain32"] > ratio["resnet32"]
    assert ratio["plain32"] > 1.5  # plain BN nets explode toward the input


def test_toy_network_norms_by_hand():
    # y = w2 . (W1 x) with W1 = [[1, 2], [3, 4]], w2 = [1, -1], x = [1, 1]:
    # h = W1 x = [3, 7]; dL/dw2 = h = [3, 7] -> ||.|| = sqrt(58);
    # dL/dW1 = w2^T x^T = [[1, 1], [-1, -1]] -> ||.|| = 2.
    toy = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False))
    toy.layer_info = {}
    with torch.no_grad():
        toy[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        toy[1].weight.copy_(torch.tensor([[1.0, -1.0]]))
    toy(torch.tensor([[1.0, 1.0]])).sum().backward()
    rows = {r["module"]: r for r in layer_grad_norms(toy)}
    assert rows["0"]["grad_norm"] == pytest.approx(2.0)
    assert rows["1"]["grad_norm"] == pytest.approx(math.sqrt(58))
    assert rows["0"]["weight_norm"] == pytest.approx(math.sqrt(30))
    assert rows["1"]["grad_to_weight"] == pytest.approx(math.sqrt(58) / math.sqrt(2))


def test_lag_correlation_by_hand():
    same = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    flipped = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    assert lag_correlation(same, 1) == pytest.approx(1.0)
    assert lag_correlation(flipped, 1) == pytest.approx(-1.0)
    # Rows a, b, a: lag 2 pairs a with a (1); lag 1 pairs a-b and b-a (-1 each).
    alternating = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert lag_correlation(alternating, 2) == pytest.approx(1.0)
    assert lag_correlation(alternating, 1) == pytest.approx(-1.0)
    assert lag_correlation(torch.randn(5, 40), 0) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def shattered():
    config = GradientConfig(seeds=(0, 1), shatter_points=256, shatter_projections=1)
    return {name: pd.DataFrame(shattering(name, config)) for name in ("plain20", "resnet20")}


def test_shattering_grid_has_256_points_and_lag_zero_is_one(shattered):
    rows = shattered["plain20"]
    assert (rows["points"] == 256).all() and (rows["samples"] == 2).all()
    assert set(rows["lag"]) == {0, 1, 2, 4, 8, 16, 32, 64, 128}
    assert rows.query("lag == 0")["correlation"].tolist() == pytest.approx([1.0] * 3)


def test_shattering_correlation_decays_with_lag(shattered):
    for rows in shattered.values():
        for _, block in rows.groupby("block"):
            curve = block.sort_values("lag")["correlation"].tolist()
            # non-increasing, up to sampling noise
            assert all(a >= b - 0.02 for a, b in zip(curve, curve[1:], strict=False))
            assert curve[0] - curve[-1] > 0.3


def test_plain_gradients_shatter_faster_than_residual(shattered):
    def at(name, lag):
        rows = shattered[name]
        last_stage = rows[rows["depth"] == rows["depth"].max()]
        return last_stage.query("lag == @lag")["correlation"].item()

    assert at("plain20", 8) < at("resnet20", 8) - 0.2


def test_seeds_make_results_reproducible():
    config = GradientConfig(batch_size=4, seeds=(3, 4), shatter_points=8)
    first = measure_gradients(["resnet8"], config)
    second = measure_gradients(["resnet8"], config)
    assert first.blocks == second.blocks and first.shattering == second.shattering
    other = measure_gradients(["resnet8"], GradientConfig(batch_size=4, seeds=(5,),
                                                          shatter_points=0))
    assert other.blocks[0]["act_grad_norm"] != first.blocks[0]["act_grad_norm"]


def test_nonfinite_is_reported_with_its_layer():
    torch.manual_seed(0)
    model = build_model("resnet8")
    with torch.no_grad():
        model.layer2[0].conv1.weight[0, 0, 0, 0] = float("inf")
    _, findings = run_probe(model, torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    assert findings["first_nonfinite_forward"] == "layer2.0.conv1"
    assert findings["first_nonfinite_gradient"] is not None


def test_nonfinite_gradient_found_from_the_output_side():
    torch.manual_seed(0)
    model = build_model("resnet8")
    # A finite forward whose backward turns NaN inside layer3.0: the first block output to
    # receive a NaN gradient is layer2.0's, the input of layer3.0.
    model.layer3[0].register_full_backward_hook(
        lambda module, grad_in, grad_out: (torch.full_like(grad_in[0], float("nan")),))
    _, findings = run_probe(model, torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    assert findings["first_nonfinite_forward"] is None
    assert findings["first_nonfinite_gradient"] == "layer2.0"


def test_gradient_shape_fits_exponential_for_plain_and_power_law_for_residual():
    result = measure_gradients(["plain20", "resnet20", "plain56", "resnet56"],
                               GradientConfig(batch_size=16, seeds=(0, 1, 2),
                                              shatter_points=0))
    rows = {r["model"]: r for r in result.models}
    advantage = {name: row["exp_r2"] - row["power_r2"] for name, row in rows.items()}
    for depth in (20, 56):
        assert advantage[f"plain{depth}"] > advantage[f"resnet{depth}"]
    # At depth 56 the seeds settle it; the label is the fit the t interval favours.
    assert rows["plain56"]["better_fit"] == "exponential"
    assert rows["plain56"]["r2_power_minus_exp_ci95_high"] < 0
    assert rows["resnet56"]["better_fit"] == "power law"
    assert rows["resnet56"]["r2_power_minus_exp_ci95_low"] > 0
    # The trend is named from the per-stage rates: plain56 grows within each of its stages.
    trends = gradient_view(result, "model").set_index("model")["gradient_trend"]
    assert trends["plain56"].startswith("grows toward the input within every stage")
    for row in rows.values():
        if row["better_fit"] == "neither":
            assert row["r2_power_minus_exp_ci95_low"] <= 0 <= \
                row["r2_power_minus_exp_ci95_high"]
    stages = gradient_view(result, "stage")
    plain_stages = stages[stages["model"] == "plain56"]
    assert len(plain_stages) == 3 and (plain_stages["rate_ci95_low"] > 1).all()


def _sawtooth(rates: dict[str, float], seeds: int = 3) -> list[dict]:
    """Block rows whose ||dL/ds|| grows by rates[stage] per layer toward the input inside
    each stage of five blocks (two layers each) and is reset to 1 at each stage's end, as a
    projection's BN resets the stream; seed s scales every norm by 1 + s/10."""
    rows = []
    for seed in range(seeds):
        depth = 1
        for stage, rate in rates.items():
            depths = [depth + 2 * b for b in range(5)]
            rows += [{"model": "net", "seed": seed, "stage": stage, "block": f"{stage}.{b}",
                      "depth": d, "join_grad_norm": (1 + seed / 10) * rate ** (depths[-1] - d)}
                     for b, d in enumerate(depths)]
            depth = depths[-1] + 2
    return rows


def test_per_stage_fits_recover_each_stages_rate_from_a_sawtooth():
    rates = {"layer1": 1.3, "layer2": 1.2, "layer3": 1.1}
    blocks = _sawtooth(rates)
    found = {row["stage"]: row for row in stage_rates(within_stage_ratios(blocks))}
    for stage, rate in rates.items():
        assert found[stage]["rate_per_layer"] == pytest.approx(rate)
        assert found[stage]["layers"] == 8 and found[stage]["seeds"] == 3
        assert found[stage]["rate_ci95_low"] == pytest.approx(rate)  # no spread over seeds
    # One line across the resets fits none of the teeth.
    across = growth_fits([r["depth"] for r in blocks], [r["join_grad_norm"] for r in blocks])
    assert across["exp_r2"] < 0.5
    label = gradient_trend(4.0, list(found.values()))
    assert label == ("grows toward the input within every stage (x1.1 to x1.3 per layer); "
                     "x4 first/last over the whole net")


def test_the_trend_rule_per_stage():
    def stage(rate, low, high, name="layer1", layers=8):
        return {"stage": name, "rate_per_layer": rate, "rate_ci95_low": low,
                "rate_ci95_high": high, "layers": layers}

    assert stage_trend(1.05, 1.01, 1.09, 8) == "level"  # 1.05^8 = 1.48, within x2
    assert stage_trend(1.2, 1.1, 1.3, 8) == "grows"  # 1.2^8 = 4.3
    assert stage_trend(0.8, 0.7, 0.9, 8) == "shrinks"
    assert stage_trend(1.2, 0.9, 1.5, 8) == "unsettled"  # the interval holds 1
    assert stage_trend(1.2, math.nan, math.nan, 8) == "unsettled"  # one seed
    mixed = gradient_trend(2.0, [stage(1.2, 1.1, 1.3), stage(1.0, 0.99, 1.01, "layer2")])
    assert mixed.startswith("differs by stage: layer1 grows (x1.2/layer), layer2 level")
    assert gradient_trend(2.0, []).startswith("no stage has two blocks")
    assert gradient_trend(math.nan, []) == "not measured"


def test_zero_init_residual_net_passes_gradients_unchanged_through_every_join():
    result = measure_gradients(["resnet56[zero_init_residual=true]"],
                               GradientConfig(batch_size=8, seeds=(0,), shatter_points=0))
    assert [r["within_stage_ratio"] for r in result.stages] == pytest.approx([1.0] * 3)
    # Option A's zero padding costs nothing here: the whole-net ratio at the joins is 1 too.
    assert result.models[0]["grad_ratio_first_last"] == pytest.approx(1.0, abs=1e-5)
    assert all(r["variance_ratio"] == 0 for r in result.blocks)  # the branches output zeros


def test_plain_block_variance_ratio_is_output_over_input_variance():
    # Measured at each block's join; cross-checked against the block-output stds recorded
    # separately: a plain block's input is the previous block's output.
    result = measure_gradients(["plain20"], GradientConfig(batch_size=16, seeds=(0,),
                                                           shatter_points=0))
    blocks = result.blocks
    for before, after in zip(blocks, blocks[1:], strict=False):
        assert after["variance_ratio"] == pytest.approx(
            after["act_std"] ** 2 / before["act_std"] ** 2, rel=1e-3)


def test_random_and_data_inputs_are_named():
    data = measure_gradients(["resnet8"], GradientConfig(batch_size=4, seeds=(0,),
                                                         shatter_points=0))
    noise = measure_gradients(["resnet8"], GradientConfig(batch_size=4, seeds=(0,),
                                                          shatter_points=0, input="random"))
    assert "digits" in data.input_description
    assert "random" in noise.input_description


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=1), "batch_size=1"),
    (dict(seeds=()), "at least one seed"),
    (dict(input="noise"), "input must be one of: data, random: input='noise'"),
    (dict(shatter_points=1), "shatter_points"),
])
def test_config_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GradientConfig(**kwargs)


def test_cli_json_has_ratio(invoke):
    result = invoke("gradients", "plain8", "resnet8", "--seeds", "0", "--batch-size", "4",
                    "--shatter-points", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["plain8", "resnet8"]
    assert all(r["grad_ratio_first_last"] > 0 for r in rows)


def test_cli_bad_seeds(invoke):
    result = invoke("gradients", "resnet8", "--seeds", "a")
    assert result.exit_code == 2 and "comma-separated integers" in result.stderr


def test_cli_by_stage(invoke):
    result = invoke("gradients", "plain8", "--seeds", "0", "--batch-size", "4",
                    "--shatter-points", "0", "--by", "stage", "--format", "json")
    rows = json.loads(result.stdout)
    assert [r["stage"] for r in rows] == ["stage1", "stage2", "stage3"]
    assert all(r["act_grad_norm"] > 0 for r in rows)


def test_the_recipe_s_first_steps_are_watched_without_changing_the_run():
    from resnet_probe.data import load_dataset
    from resnet_probe.train.loop import TrainConfig, train_run

    digits = load_dataset("digits")
    recipe = TrainConfig(steps=6, batch_size=32, lr=0.05, warmup_steps=2, eval_every=6,
                         grad_norm_every=6, checkpoint_every=6, milestones=())
    watched = TrainConfig(**{**recipe.__dict__, "record_steps": (0, 1, 4)})
    plain = train_run("plain20", digits, watched, seed=3)
    unwatched = train_run("plain20", digits, recipe, seed=3)
    assert [r["train_loss"] for r in plain.history] == [r["train_loss"] for r in
                                                         unwatched.history]
    layers = pd.DataFrame(plain.dynamics)
    assert sorted(layers["step"].unique()) == [0, 1, 4]
    assert layers["effective_step"].tolist() == pytest.approx(
        (layers["lr"] * layers["grad_to_weight"]).tolist())
    assert set(layers["lr"]) == {0.01, 0.05}  # the warm-up's lr, then the recipe's
    residual = train_run("resnet20", digits, watched, seed=3)
    joins = {run.model: pd.DataFrame(run.joins).set_index("step")["grad_ratio_first_last"]
             for run in (plain, residual)}
    assert joins["plain20"][0] > joins["resnet20"][0]  # the explosion at init
    first = {run.model: pd.DataFrame(run.dynamics).query("depth == 1 and step == 0")
             for run in (plain, residual)}
    # The same init up to the shortcuts: both first convs start at the same norm.
    assert first["plain20"]["weight_norm"].item() == pytest.approx(
        first["resnet20"]["weight_norm"].item())


def test_gradients_steps_option_prints_the_dynamics(invoke):
    result = invoke("gradients", "resnet8", "--steps", "0,2", "--seeds", "0,1", "--format",
                    "json")
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.stdout)
    assert summary["model"] == "resnet8" and (summary["from_step"], summary["to_step"]) == (0, 2)
    assert summary["seeds"] == 2 and summary["weight_growth_ci95_low"] is not None
    layers = invoke("gradients", "resnet8", "--steps", "0,2", "--seeds", "0", "--by",
                    "dynamics_layer", "--format", "json")
    assert sorted({r["step"] for r in json.loads(layers.stdout)}) == [0, 2]
    bad = invoke("gradients", "resnet8", "--steps", "0,2", "--by", "block")
    assert bad.exit_code == 2 and "--steps" in bad.output
