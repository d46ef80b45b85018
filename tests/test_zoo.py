"""The zoo: exact published parameter counts, torchvision-identical state_dicts, plain twins."""

from __future__ import annotations

import pytest
import torch

from resnet_probe.zoo import (
    BasicBlock,
    BlockType,
    Bottleneck,
    ResNetSpec,
    UnknownModelError,
    build_model,
    build_on_meta,
    get_spec,
    list_models,
    register_model,
)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                                  "plain18", "plain34"])
def test_imagenet_params_match_published(name, published):
    assert n_params(build_on_meta(name)) == published["imagenet_224"]["params"][name]


def test_projection_shortcuts_are_the_difference(published):
    # torchvision's three 1x1 projections in resnet18/34: 173,824 parameters.
    params = published["imagenet_224"]["params"]
    assert params["resnet18"] - params["plain18"] == 173_824
    assert n_params(build_on_meta("resnet34")) - n_params(build_on_meta("plain34")) == 173_824


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                                  "resnet1202"])
def test_cifar_option_a_params(name, published):
    assert n_params(build_on_meta(name)) == published["cifar10_32"]["params_option_A"][name]


@pytest.mark.parametrize("name", ["resnet20", "resnet32", "resnet44", "resnet56"])
def test_cifar_option_b_params(name, published):
    model = build_on_meta(f"{name}[shortcut_option=B]")
    assert n_params(model) == published["cifar10_32"]["params_option_B"][name]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_plain_twin_has_option_a_count(depth, published):
    # Option A adds no parameters, so the plain twin counts exactly the same.
    expected = published["cifar10_32"]["params_option_A"][f"resnet{depth}"]
    assert n_params(build_on_meta(f"plain{depth}")) == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_state_dict_matches_torchvision(name, torchvision_shapes):
    ours = {k: list(v.shape) for k, v in build_on_meta(name).state_dict().items()}
    assert ours == torchvision_shapes[name]


def test_torchvision_style_weights_load_strictly(torchvision_shapes):
    state = {k: torch.full(shape, 0.5) if shape else torch.tensor(3)
             for k, shape in torchvision_shapes["resnet18"].items()}
    model = build_model("resnet18")
    assert not model.load_state_dict(state, strict=True).missing_keys
    assert torch.equal(model.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])


def test_plain_twin_has_no_shortcut_modules():
    for name in ("plain18", "plain50", "plain56"):
        model = build_on_meta(name)
        assert not any("downsample" in key for key in model.state_dict())
        assert all(not block.residual and block.downsample is None for _, block in model.blocks())


@pytest.mark.parametrize("block_cls", [BasicBlock, Bottleneck])
def test_plain_block_really_has_no_shortcut(block_cls):
    torch.manual_seed(0)
    channels = 16 if block_cls is BasicBlock else 64
    planes = 16
    spec = ResNetSpec(BlockType.BASIC if block_cls is BasicBlock else BlockType.BOTTLENECK, (1,),
                      widths=(planes,))
    residual = block_cls(channels, planes, 1, spec).eval()
    plain = block_cls(channels, planes, 1, spec.replace(shortcut=False)).eval()
    for block in (residual, plain):
        torch.nn.init.zeros_(block.last_bn.weight)  # branch output becomes bias = 0
    x = torch.randn(2, channels, 8, 8)
    assert torch.allclose(residual(x), torch.relu(x))
    assert torch.equal(plain(x), torch.zeros_like(x))


@pytest.mark.parametrize("name", ["resnet10", "plain10", "resnet14", "resnet8", "plain8",
                                  "resnet8[shortcut_option=C]"])
def test_every_parameter_receives_a_gradient(name):
    torch.manual_seed(0)
    model = build_model(name)
    spec = model.spec
    size = spec.total_stride * 2
    model(torch.randn(2, spec.in_channels, size, size)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152", "plain50"])
def test_stride_placement_changes_no_parameter(name):
    v15 = build_on_meta(name)
    v1 = build_on_meta(f"{name}[stride_placement=1x1]")
    assert n_params(v1) == n_params(v15)
    # ...but it does move the stride: v1 strides the 1x1 conv.
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


def test_option_c_projects_every_block():
    model = build_on_meta("resnet20[shortcut_option=C]")
    projections = [block.downsample[0] for _, block in model.blocks()]
    assert len(projections) == 9 and all(conv.kernel_size == (1, 1) for conv in projections)
    # 16-16 x3, 16-32 + 32-32 x2, 32-64 + 64-64 x2: option C's extra weights over option B's.
    extra = 3 * 16 * 16 + 2 * 32 * 32 + 2 * 64 * 64 + 2 * (3 * 16 + 2 * 32 + 2 * 64)
    params = {option: sum(p.numel() for p in build_on_meta(
        f"resnet20[shortcut_option={option}]").parameters()) for option in "BC"}
    assert params["C"] - params["B"] == extra


def test_option_a_shortcut_pads_zeros():
    model = build_model("resnet8").eval()
    shortcut = model.layer2[0].downsample
    x = torch.randn(1, 16, 8, 8)
    out = shortcut(x)
    assert out.shape == (1, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert not out[:, 16:].any()


def test_zero_init_residual_zeroes_last_bn():
    model = build_model("resnet50[zero_init_residual=true]")
    assert all(not block.bn3.weight.any() for _, block in model.blocks())


def test_depth_follows_the_paper():
    assert [get_spec(n).depth for n in ("resnet18", "resnet34", "resnet50", "resnet101",
                                        "resnet152", "resnet20", "resnet56", "resnet110")] == \
        [18, 34, 50, 101, 152, 20, 56, 110]


def test_layer_info_records_stage_block_depth():
    model = build_on_meta("resnet34")
    info = model.layer_info
    assert info["conv1"].stage == "stem" and info["conv1"].depth == 1
    assert info["layer1.0.conv1"].depth == 2 and info["layer1.0.conv2"].depth == 3
    assert info["layer3.5.conv2"].stage == "stage3" and info["layer3.5.conv2"].block == 5
    assert info["layer2.0.downsample.0"].role == "shortcut"
    assert info["fc"].depth == 34
    conv_depths = sorted(v.depth for k, v in info.items()
                         if v.role in ("main", "stem", "head") and k.endswith(("conv1", "conv2",
                                                                               "fc")))
    assert conv_depths == list(range(1, 35))


def test_in_channels_and_classes():
    model = build_model("resnet20", in_channels=1, num_classes=7)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 7)


def test_list_models_globs():
    assert list_models(include="resnet1*") == ["resnet18", "resnet101", "resnet152", "resnet110",
                                                "resnet1202", "resnet10", "resnet14",
                                                "resnet101d"]
    plain = list_models(include="plain*", exclude=["*1202", "plain8", "plain10", "plain14",
                                                   "plain_*", "plain5?[cd]", "plain101d"])
    assert plain == ["plain18", "plain34", "plain50", "plain101", "plain152", "plain20",
                     "plain32", "plain44", "plain56", "plain110"]


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18", get_spec("resnet18"))


def test_text_form_builds_custom_layouts():
    assert get_spec("cifar[layers=9-9-9]") == get_spec("resnet56")
    spec = get_spec("imagenet[block=bottleneck,layers=3-4-23-3,shortcut=false]")
    assert spec == get_spec("plain101")
    model = build_model(ResNetSpec("basic", (1, 2), widths=(8, 16), stem="cifar", stem_width=8,
                                   num_classes=3))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as error:
        get_spec("resnet35")
    assert error.value.suggestions[0] == "resnet34"
    assert "'resnet35'" in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("cifar[layers=]", "expected field=value"),
    ("cifar[layers=0-1-1]", "at least 1 block"),
    ("cifar[layers=-1-1-1]", "layers"),
    ("cifar[in_channels=0]", "in_channels=0"),
    ("resnet18[depth=3]", "unknown field 'depth'"),
    ("resnet18[shortcut=maybe]", "true or false"),
    ("resnet18[stride_placement=2x2]", "'2x2'"),
    ("resnet18[widths=1-2]", "one entry per stage"),
    ("plain18[zero_init_residual=true]", "needs shortcuts"),
])
def test_impossible_specs_name_the_value(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        get_spec(text)


def test_spec_validation_in_python():
    with pytest.raises(ValueError, match=r"layers=\(\)"):
        ResNetSpec("basic", ())
    with pytest.raises(ValueError, match="in_channels=0"):
        ResNetSpec("basic", (1,), widths=(8,), in_channels=0)


def test_input_too_small_for_stride_stack():
    with pytest.raises(ValueError, match="8x8 is smaller than the network's total stride 32"):
        get_spec("resnet34").check_input_size(8)
    get_spec("resnet34").check_input_size(32)
    get_spec("resnet20").check_input_size(4)
