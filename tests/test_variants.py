"""The rest of the residual family: ResNeXt, Wide ResNet, pre-activation, ResNet-C/D.

Facts come from tests/data (copied from shared/reference): torchvision's and timm's parameter
and MAC counts, torchvision's state_dict shapes, and the papers' printed counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import count_costs
from resnet_probe.zoo import (
    BlockType,
    Design,
    ResNetSpec,
    ZeroPadShortcut,
    build_model,
    build_on_meta,
    get_spec,
    list_models,
    plain_twin_name,
)

DATA = Path(__file__).parent / "data"
PUBLISHED = json.loads((DATA / "published_numbers_variants.json").read_text())
REFERENCE = {**PUBLISHED["torchvision"], **PUBLISHED["timm"]}
NEW_NAMES = [*REFERENCE, "preact_resnet110", "preact_resnet164", "preact_resnet1001", "wrn16_8",
             "wrn28_10", "wrn40_4"]


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_implementation_counts_exactly(name):
    """torchvision's/timm's params and conv+linear MACs at 224 (resnext50_32x4d: 4.230 G)."""
    summary = count_costs(name).summary
    assert summary["params"] == REFERENCE[name]["params"]
    assert summary["macs"] == REFERENCE[name]["macs_224"]
    assert not summary["partial"], summary["uncounted_operators"]


def test_resnet_c_stem_costs_what_the_arithmetic_says():
    # Three 3x3 convs at 112x112 (3->32 /2, 32->32, 32->64) replace one 7x7 3->64 /2:
    # 9·112²·(3·32 + 32·32 + 32·64) - 49·112²·3·64 = 357,654,528 - 118,013,952 MACs.
    extra = count_costs("resnet50c").summary["macs"] - count_costs("resnet50").summary["macs"]
    assert extra == 9 * 112**2 * (3 * 32 + 32 * 32 + 32 * 64) - 49 * 112**2 * 3 * 64
    # ResNet-D moves the projections' stride into an average pool: the same 1x1 MACs.
    assert count_costs("resnet50d").summary["macs"] == count_costs("resnet50c").summary["macs"]


def test_resnet_d_pool_is_counted_once_per_input_element():
    extra = (count_costs("resnet50d").summary["macs_with_elementwise"]
             - count_costs("resnet50c").summary["macs_with_elementwise"])
    assert extra == 256 * 56 * 56 + 512 * 28 * 28 + 1024 * 14 * 14  # the pooled inputs


@pytest.mark.parametrize("name", list(PUBLISHED["torchvision"]))
def test_state_dict_matches_torchvision(name):
    shapes = json.loads((DATA / "torchvision_variant_state_shapes.json").read_text())[name]
    model = build_on_meta(name)
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert ours == shapes
    assert list(ours) == list(shapes)  # the same order, too


def test_torchvision_weights_load_strictly_and_run():
    shapes = json.loads((DATA / "torchvision_variant_state_shapes.json").read_text())
    small = get_spec("resnext50_32x4d").replace(layers=(1, 1, 1, 1))  # shapes per stage kept
    torch.manual_seed(0)
    state = {key: torch.randn(shape) if shape else torch.tensor(0)
             for key, shape in shapes["resnext50_32x4d"].items()
             if not key.startswith("layer") or key.split(".")[1] == "0"}
    model = build_model(small)
    model.load_state_dict(state, strict=True)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("name,printed,with_batch_norm", [
    ("wrn16_8", 11.0, 11.0), ("wrn28_10", 36.5, 36.5), ("wrn40_4", 8.9, 9.0),
    ("preact_resnet164", 1.7, 1.7), ("preact_resnet1001", 10.2, 10.3),
    ("preact_resnet110", 1.7, 1.7)])
def test_paper_counts_to_their_printed_precision(name, printed, with_batch_norm):
    """The papers print conv and fc parameters in millions to one decimal. Ours, without the BN
    parameters, rounds to the printed value for every row; with them, WRN-40-4 (8.95M) and
    ResNet-1001 (10.33M) round up to the next digit."""
    model = build_on_meta(name)
    batch_norm = sum(params(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert round((params(model) - batch_norm) / 1e6, 1) == printed
    assert round(params(model) / 1e6, 1) == with_batch_norm


def test_wrn_and_preact_layouts():
    wrn = get_spec("wrn28_10")
    assert wrn.layers == (4, 4, 4) and wrn.widths == (160, 320, 640) and wrn.preact
    assert wrn.design is Design.WIDE
    assert get_spec("preact_resnet1001").layers == (111, 111, 111)
    assert get_spec("preact_resnet164").depth == 164
    assert get_spec("resnext101_64x4d").design is Design.RESNEXT
    assert get_spec("resnet50d").design is Design.RESNET_D
    assert get_spec("resnet50c").design is Design.RESNET_C


@pytest.mark.parametrize("name", NEW_NAMES)
def test_every_new_name_has_a_registered_plain_twin(name):
    twin = plain_twin_name(name)
    assert twin in list_models()
    assert get_spec(twin) == get_spec(name).replace(shortcut=False)
    assert get_spec(f"{name}[shortcut=false]") == get_spec(twin)
    assert not any("downsample" in key for key in build_on_meta(twin).state_dict())


@pytest.mark.parametrize("name", NEW_NAMES)
def test_every_design_and_its_twin_run_forward_and_backward(name):
    """The full layout on meta (shapes), a one-block-per-stage layout for real numbers."""
    spec = get_spec(name)
    size = 64 if spec.family == "imagenet" else 32  # the smallest input both stems take well
    small = spec.replace(layers=(1,) * len(spec.layers))
    for variant in (small, small.replace(shortcut=False)):
        torch.manual_seed(0)
        model = build_model(variant)
        out = model(torch.randn(2, 3, size, size))
        out.sum().backward()
        assert out.shape == (2, spec.num_classes) and torch.isfinite(out).all()
        assert all(p.grad is not None for p in model.parameters())


def test_preact_block_order_by_hand():
    """conv2(relu(bn2(conv1(relu(bn1(x)))))) + projection(relu(bn1(x))) (He et al. 2016b)."""
    torch.manual_seed(0)
    spec = ResNetSpec(BlockType.BASIC, (1,), widths=(8,), preact=True)
    block = build_model(spec.replace(layers=(1, 1), widths=(4, 8))).layer2[0].eval()
    for bn in (block.bn1, block.bn2):  # non-trivial statistics, so order matters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 8, 8)
    pre = torch.relu(block.bn1(x))
    expected = block.conv2(torch.relu(block.bn2(block.conv1(pre)))) + block.downsample(pre)
    assert torch.allclose(block(x), expected, atol=1e-6)
    assert block.bn1.num_features == 4  # normalizes the block's input, not its output


def test_zero_init_preact_blocks_are_the_identity():
    torch.manual_seed(0)
    model = build_model("preact_resnet110[layers=2-2-2,zero_init_residual=true]").eval()
    for name, block in model.blocks():
        if block.downsample is not None:
            continue
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        assert torch.equal(block(x), x), name


def test_resnet_d_shortcut_and_deep_stem_modules():
    model = build_on_meta("resnet50d")
    shortcut = model.layer2[0].downsample
    assert isinstance(shortcut[0], nn.AvgPool2d) and shortcut[1].stride == (1, 1)
    assert isinstance(model.layer1[0].downsample[0], nn.Identity)  # stride 1: nothing to pool
    stem = [m.out_channels for m in model.conv1 if isinstance(m, nn.Conv2d)]
    assert stem == [32, 32, 64]
    assert model.layer_info["conv1.6"].stage == "stem"


def test_resnext_block_matches_the_bottleneck_at_equal_cost():
    """Xie et al. Table 1: the 32x4d block has about the 1x64d bottleneck's weights (~70k)."""
    totals = {t["template"]: t for t in block_cost_totals(block_cost_rows(64, 56))}
    resnext = totals["resnext 32x4d at 4d"]
    assert resnext["weights"] == 256 * 128 + 9 * 128 * 128 // 32 + 128 * 256 == 70_144
    assert totals["bottleneck at 4d"]["weights"] == 69_632
    assert 1.0 < resnext["macs_vs_bottleneck"] < 1.01


def test_resnext_template_needs_a_channel_per_group():
    assert all(t != "resnext 32x4d at 4d"
               for t in {r["template"] for r in block_cost_rows(8, 8)})


@pytest.mark.parametrize("text,named", [
    ("resnet20[groups=4]", "groups"),
    ("resnet34[width_per_group=128]", "width_per_group"),
    ("resnet20[avg_down=true]", "avg_down"),
    ("resnet50[stem=deep,stem_width=63]", "stem_width"),
])
def test_impossible_combinations_name_the_fields(invoke, text, named):
    result = invoke("flops", text)
    assert result.exit_code == 2
    assert named in result.stderr and "Traceback" not in result.stderr


def test_option_a_bottleneck_pads_the_expansion():
    """Option A works with a 4x expansion: zero channels are appended, no parameters."""
    model = build_model("preact_resnet164[layers=1-1-1,shortcut_option=A]")
    assert isinstance(model.layer1[0].downsample, ZeroPadShortcut)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_list_shows_the_design(invoke):
    rows = json.loads(invoke("list", "--format", "json").stdout)
    designs = {row["name"]: row["design"] for row in rows}
    assert designs["resnext50_32x4d"] == "resnext" and designs["wide_plain50_2"] == "wide"
    assert designs["preact_resnet164"] == "preact" and designs["resnet34"] == "resnet"


def test_bottleneck_command_shows_the_grouped_conv(invoke):
    result = invoke("bottleneck", "--format", "json")
    rows = json.loads(result.stdout)
    grouped = [r for r in rows if r["groups"] > 1]
    assert grouped and grouped[0]["formula"] == "3²·128/32·128·56·56"


def test_variant_compare_costs_read_well():
    """compare resnet50 resnext50_32x4d wide_resnet50_2 resnet50d: the cost sections."""
    import resnet_probe as rp
    from resnet_probe.report.costs import shortcut_words

    names = ["resnet50", "resnext50_32x4d", "wide_resnet50_2", "resnet50d"]
    result = rp.compare(names, out=None, latency=None, gradients=None, train=None)
    summary = result.costs.summary.set_index("model")
    assert summary.loc["resnext50_32x4d", "macs"] == REFERENCE["resnext50_32x4d"]["macs_224"]
    assert list(summary["design"]) == ["resnet", "resnext", "wide", "resnet-d"]
    stages = result.costs.architecture.set_index(["model", "stage"])
    stage2 = stages.loc[("resnet50d", "stage2")]
    # resnet50d's stage 2 has 4 bottlenecks: the first changes shape through avg-pool + 1x1
    assert (stage2["pooled_projection_blocks"], stage2["projection_blocks"],
            stage2["identity_blocks"]) == (1, 0, 3)
    assert "2x2 avg-pool + 1x1 projection (D) on 1 block; identity on 3 blocks" == \
        shortcut_words(stages.loc[("resnet50d", "stage2")])
    deltas = result.summary.deltas.set_index("model")
    assert deltas.loc["wide_resnet50_2", "params_delta_pct"] > 150


def test_preact_nets_go_through_gradients_and_training():
    from resnet_probe.data import load_dataset
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.train.loop import TrainConfig, train_run

    names = ["preact_resnet110[layers=3-3-3]", "preact_plain110[layers=3-3-3]"]
    result = measure_gradients(names, GradientConfig(batch_size=8, seeds=(0,),
                                                     shatter_points=0))
    ratios = {row["model"]: row["grad_ratio_first_last"] for row in result.models}
    assert all(torch.isfinite(torch.tensor(r)) for r in ratios.values())
    config = TrainConfig(steps=30, batch_size=32, lr=0.05, warmup_steps=2, eval_every=30,
                         grad_norm_every=30, checkpoint_every=30)
    run = train_run("preact_resnet110[layers=1-1-1]", load_dataset("digits"), config)
    losses = [row["train_loss"] for row in run.history]
    assert run.status == "finished" and sum(losses[-5:]) < sum(losses[:5])


def test_degradation_preact_twins():
    from resnet_probe.train.degradation import twin_names

    assert twin_names("cifar", 110, preact=True) == ("preact_plain110", "preact_resnet110")
    plain, residual = twin_names("cifar", 20, preact=True)
    assert get_spec(residual).preact and not get_spec(plain).shortcut
    assert get_spec(plain) == get_spec(residual).replace(shortcut=False)


def test_gradient_report_explains_the_preact_identity_path():
    from resnet_probe.measure.gradients import GradientConfig, measure_gradients
    from resnet_probe.report.gradients import preact_explanation
    from resnet_probe.results import frame

    result = measure_gradients(["preact_resnet110[layers=3-3-3]", "resnet20"],
                               GradientConfig(batch_size=8, seeds=(0, 1), shatter_points=0))
    blocks = frame(result.blocks).groupby(["model", "block"], sort=False)["act_std"].mean()
    preact = blocks.loc["preact_resnet110[layers=3-3-3]"]
    assert preact.iloc[-1] > preact.iloc[0]  # the un-normalized stream spreads with depth
    text = preact_explanation(frame(result.models), frame(result.blocks))
    assert "pre-activation, depth 20" in text and "post-activation, depth 20" in text


def test_new_designs_time_through_the_api():
    import resnet_probe as rp

    names = ["resnext50_32x4d[layers=1-1-1-1]", "resnet50d[layers=1-1-1-1]",
             "preact_resnet164[layers=1-1-1]", "wrn16_8[layers=1-1-1,widths=16-32-64]"]
    rows = rp.latency(names, input_size=64, repeats=2, warmup=1, backward=False,
                      peak_gflops=100.0, peak_gbytes_per_s=10.0)
    assert list(rows["model"]) == names and (rows["forward_ms"] > 0).all()
    stages = rp.latency(names[:1], by="stage", input_size=64, repeats=2, warmup=1,
                        backward=False, peak_gflops=100.0, peak_gbytes_per_s=10.0)
    assert list(stages["stage"]) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]


def test_degradation_trains_preact_twins_through_the_cli(invoke, tmp_path):
    result = invoke("degradation", "--depths", "8", "--preact", "--steps", "3",
                    "--warmup-steps", "1", "--batch-size", "16", "--out", str(tmp_path),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    models = {row["model"] for row in json.loads(result.stdout)}
    assert models == {"cifar[layers=1-1-1,preact=true,shortcut=false]",
                      "cifar[layers=1-1-1,preact=true]"}
