"""Real torchvision models, in the second CI environment (torch 2.14.1 + torchvision 0.29.1).

torchvision does not import beside the main environment's CPU torch 2.13 wheel, so these tests
skip there; ``.ci/run`` runs them in their own environment with
RESNET_PROBE_REQUIRE_TORCHVISION=1, where a missing torchvision fails instead of skipping.
"""

from __future__ import annotations

import pytest
import torch

from resnet_probe.zoo import build_model

pytestmark = pytest.mark.torchvision


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d", "resnext101_32x8d",
                                  "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"])
def test_torchvision_weights_give_identical_logits(torchvision, name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = build_model(name).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


# --- foreign models through MODEL sources (resnet_probe.sources) -------------------------------

def test_resnext50_from_torchvision_is_counted_as_torchvision_documents(torchvision, invoke):
    import json

    result = invoke("flops", "torchvision:resnext50_32x4d", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["params"] == 25_028_904  # torchvision's docs: 25,028,904 params
    assert round(row["macs"] / 1e9, 2) == 4.23  # and 4.23 GFLOPS (their GFLOPS are MACs)
    assert row["partial"] is False


def test_plain_twin_of_torchvision_resnet50_equals_the_zoos_plain50(torchvision):
    from resnet_probe.sources import resolve

    torch.manual_seed(0)
    original = torchvision.models.resnet50().eval()
    twin = resolve("plain:torchvision:resnet50").build().eval()
    twin.load_state_dict({k: v for k, v in original.state_dict().items()
                          if ".downsample." not in k})
    plain = build_model("plain50").eval()
    plain.load_state_dict(twin.state_dict(), strict=True)  # the same names, the same shapes
    assert sum(p.numel() for p in twin.parameters()) == 22_780_456
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(twin(x), plain(x))


def test_timm_resnet50d_and_its_plain_twin(torchvision):
    timm = pytest.importorskip("timm")
    from resnet_probe.measure.costs import count_costs

    residual = count_costs("timm:resnet50d").summary
    plain = count_costs("plain:timm:resnet50d").summary
    model = timm.create_model("resnet50d", pretrained=False)
    projections = sum(p.numel() for name, p in model.named_parameters()
                      if ".downsample." in name)
    assert residual["params"] == sum(p.numel() for p in model.parameters())
    assert plain["params"] == residual["params"] - projections
    assert residual["shortcut"] is True and plain["shortcut"] is False


def test_non_resnets_count_every_operator(torchvision):
    """ConvNeXt's layer norms and Swin's window masks (comparisons) and v2 cosine attention
    (vector norms) have formulas in convention (b); nothing is left uncounted."""
    from resnet_probe.measure.costs import count_costs

    convnext = count_costs("torchvision:convnext_tiny")
    assert convnext.summary["partial"] is False and convnext.uncounted == {}
    assert convnext.summary["params"] == 28_589_128  # torchvision's docs
    swin = count_costs("torchvision:swin_v2_t")
    assert swin.uncounted == {} and swin.summary["macs_with_elementwise"] > swin.summary["macs"]


def test_attention_gates_and_activations_are_counted(torchvision):
    """SE gates (sigmoid, multiply) and hard-swish have a formula in convention (b)."""
    pytest.importorskip("timm")
    from resnet_probe.measure.costs import count_costs

    for name in ("torchvision:mobilenet_v3_small", "timm:seresnet50"):
        result = count_costs(name)
        assert result.summary["partial"] is False and result.uncounted == {}, name
        assert result.summary["macs_with_elementwise"] > result.summary["macs"]
    # The shape pass follows SE gates: every row keeps its own backward.
    rows = count_costs("timm:seresnet50").modules
    assert all(row["backward_flops"] is not None for row in rows)
    assert count_costs("torchvision:mobilenet_v3_small").summary["params"] == 2_542_856


def test_compare_torchvision_resnet50_with_its_plain_twin_writes_a_full_report(
        torchvision, tmp_path):
    from resnet_probe import compare
    from resnet_probe.analysis import AnalysisOptions
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.measure.latency import LatencyConfig
    from resnet_probe.train.loop import TrainConfig

    models = ["torchvision:resnet50", "plain:torchvision:resnet50"]
    result = compare(
        models, out=tmp_path, input_size=64,
        latency=LatencyConfig(repeats=2, warmup=1, sweep_batch_sizes=(1,), input_size=64),
        gradients=GradientConfig(batch_size=4, seeds=(0, 1), shatter_points=8),
        train=TrainConfig(steps=4, batch_size=8, eval_every=2, grad_norm_every=2,
                          checkpoint_every=2, warmup_steps=1),
        train_seeds=(0,),
        why=AnalysisOptions(limit=32, lesion_views=("block",), landscape_points=3,
                            landscape_limit=16, landscape_directions=1, hessian_images=4,
                            hessian_iterations=2, path_images=2, path_samples=1))
    assert not result.failures, result.failures
    for frame_ in (result.costs.summary, result.costs.layers, result.costs.stages,
                   result.latency.models, result.gradients.blocks,
                   result.training.degradation.final, result.training.why.tables.landscape,
                   result.training.why.tables.lesion_blocks, result.training.why.tables.responses):
        assert not frame_.empty
    summary = result.costs.summary.set_index("model")
    assert summary.loc["plain:torchvision:resnet50", "params"] == 22_780_456
    lesions = result.training.why.tables.lesion_blocks.set_index("model")
    twin = lesions.loc["plain:torchvision:resnet50"]
    # torchvision's 4 projection blocks cannot be deleted from the twin, per seed trained
    assert twin["not_deletable_because"].notna().sum() == 4 * twin["seed"].nunique()
    assert lesions.loc["torchvision:resnet50", "error"].notna().all()
    assert set(result.costs.stages["stage"]) >= {"stem", "stage1", "stage4", "head"}
    from resnet_probe.report import compare_report_path

    page = compare_report_path(tmp_path, result.models).read_text()
    assert "plain:torchvision:resnet50" in page
    assert "Why: what the trained nets show" in page
    assert "Lesions (Veit et al. 2016): how" in page  # the lesion study's method note


def test_flop_analysis_of_a_torchvision_module_finds_its_stages(torchvision):
    from resnet_probe import FlopAnalysis

    model = torchvision.models.resnet18()
    analysis = FlopAnalysis(model, torch.zeros(1, 3, 224, 224))
    stages = analysis.by_stage().set_index("stage")["macs"]
    assert list(stages.index) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert stages.sum() == analysis.total() == 1_814_073_344
    assert not hasattr(model, "layer_info")  # measured on a copy; the user's module untouched


@pytest.mark.parametrize("name", ["torchvision:resnet50", "torchvision:resnext50_32x4d",
                                  "plain:torchvision:resnet50", "timm:resnet50d"])
def test_foreign_resnets_get_their_backward_per_module(torchvision, name):
    """The shape pass reproduces FlopCounterMode's count on these nets, so its attribution is
    used: each conv's backward is its input and weight gradients (the stem's input needs
    none), and the rows add up to the total. The zoo's twin agrees where one exists."""
    from resnet_probe.measure.costs import count_costs

    result = count_costs(name)
    convs = [row for row in result.modules if row["type"] == "Conv2d"]
    assert all(row["backward_flops"] is not None for row in result.modules)
    first, *rest = convs  # the first conv's input (the image) needs no gradient
    assert first["backward_flops"] == first["flops"]
    assert all(row["backward_flops"] == 2 * row["flops"] for row in rest)
    assert sum(row["backward_flops"] for row in result.modules) == \
        result.summary["backward_flops"]
    zoo = {"torchvision:resnet50": "resnet50", "torchvision:resnext50_32x4d": "resnext50_32x4d",
           "plain:torchvision:resnet50": "plain50", "timm:resnet50d": "resnet50d"}[name]
    assert result.summary["backward_flops"] == count_costs(zoo).summary["backward_flops"]
