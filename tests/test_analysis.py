"""Lesions, layer responses and loss landscapes on trained nets (resnet_probe.analysis); the
half-way radius, the controls and the gates have their own tests in test_claims.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from resnet_probe.analysis import AnalysisOptions, Outcome
from resnet_probe.analysis.landscape import (
    filter_normalized_direction,
    slice_hessian_ratio,
    surface,
)
from resnet_probe.analysis.lesion import block_table, lesion_by_block, lesioned
from resnet_probe.analysis.responses import layer_responses, response_layers
from resnet_probe.zoo import build_model


def _eval_net(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_model(name, in_channels=1, num_classes=10, **overrides).eval()
    # Non-trivial BN statistics, so "unchanged" is not an artefact of identity BNs.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net


def test_deleting_a_block_of_a_zero_init_residual_net_leaves_its_output_unchanged():
    net = _eval_net("cifar[layers=2-2-2,zero_init_residual=true]")
    x = torch.randn(6, 1, 16, 16)
    reference = net(x)
    shape_preserving = [row["block"] for row in block_table(net) if not row["downsampling"]]
    assert shape_preserving == ["layer1.0", "layer1.1", "layer2.1", "layer3.1"]
    for block in shape_preserving:
        with lesioned(net, [block]):
            assert torch.equal(net(x), reference), block
    with lesioned(net, shape_preserving):  # all of them at once, too
        assert torch.equal(net(x), reference)


def test_deleting_a_block_of_a_trained_like_residual_net_changes_it_and_is_undone():
    net = _eval_net("resnet8")
    x = torch.randn(4, 1, 16, 16)
    before = net(x)
    with lesioned(net, ["layer1.0"]):
        changed = net(x)
    assert not torch.allclose(changed, before)
    assert torch.equal(net(x), before)  # the block's own forward is back


def test_plain_net_identity_replacement_runs_changes_the_output_and_refuses_shape_changes():
    net = _eval_net("cifar[layers=2-2-2,shortcut=false]")
    x = torch.randn(4, 1, 16, 16)
    before = net(x)
    with lesioned(net, ["layer2.1"]):
        assert not torch.allclose(net(x), before)
    table = {row["block"]: row["not_deletable_because"] for row in block_table(net)}
    assert table["layer1.0"] is None and table["layer2.1"] is None
    assert "16 -> 32 channels, stride 2" in table["layer2.0"]
    with pytest.raises(ValueError, match="layer3.0: changes shape"):
        with lesioned(net, ["layer3.0"]):
            pass
    rows = lesion_by_block(net, x, torch.zeros(4, dtype=torch.long), chance=0.9)
    refused = [row for row in rows if row["not_deletable_because"]]
    assert [row["block"] for row in refused] == ["layer2.0", "layer3.0"]
    assert all(row["error"] is None for row in refused)  # listed, never a made-up error


def test_preact_deletion_keeps_the_projection_on_the_preactivated_input():
    net = _eval_net("cifar[layers=1-1-1,preact=true,shortcut_option=B]")
    block = net.layer2[0]
    x = torch.randn(2, 16, 8, 8)
    with lesioned(net, ["layer2.0"]):
        deleted = block(x)
    expected = block.downsample(block.relu(block.bn1(x)))
    assert torch.equal(deleted, expected)


def test_response_std_equals_a_hand_computation():
    net = _eval_net("resnet8")
    x = torch.randn(5, 1, 16, 16)
    rows = {row["layer"]: row for row in layer_responses(net, x)}
    # resnet8: the stem's 3x3 conv and two 3x3 convs in each of three blocks.
    assert list(rows) == ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer2.0.bn1",
                          "layer2.0.bn2", "layer3.0.bn1", "layer3.0.bn2"]
    with torch.no_grad():
        stem = net.bn1(net.conv1(x))
        h = torch.relu(stem)  # not the net's in-place ReLU: stem must stay as it is
        block = net.layer1[0]
        first = block.bn1(block.conv1(h))
        second = block.bn2(block.conv2(torch.relu(first)))
    for name, tensor in (("bn1", stem), ("layer1.0.bn1", first), ("layer1.0.bn2", second)):
        values = tensor.double().flatten()
        hand = ((values - values.mean()) ** 2).mean().sqrt().item()
        assert rows[name]["response_std"] == pytest.approx(hand, rel=1e-9)
    ranks = sorted(rows.values(), key=lambda row: row["rank"])
    assert [r["rank"] for r in ranks] == list(range(1, 8))
    stds = [r["response_std"] for r in ranks]
    assert stds == sorted(stds, reverse=True)
    assert rows["layer2.0.bn2"]["depth"] == 5  # stem 1, then two convs per block


def test_responses_skip_1x1_convs_in_bottlenecks():
    net = _eval_net("resnet50[layers=1-1-1-1]")
    names = [name for name, _ in response_layers(net)]
    assert names == ["layer1.0.bn2", "layer2.0.bn2", "layer3.0.bn2", "layer4.0.bn2"]


def test_filter_normalisation_gives_each_filter_the_trained_filters_norm():
    net = _eval_net("resnet8")
    direction = filter_normalized_direction(net, torch.Generator().manual_seed(1))
    for name, weight in net.named_parameters():
        if weight.dim() <= 1:
            assert torch.count_nonzero(direction[name]) == 0, name  # biasbn ignored
            continue
        trained = weight.detach().flatten(1).norm(dim=1)
        assert torch.allclose(direction[name].flatten(1).norm(dim=1), trained, rtol=1e-4), name


def test_a_surface_at_zero_reproduces_the_trained_loss_and_restores_the_weights():
    net = _eval_net("resnet8")
    x, y = torch.randn(32, 1, 16, 16), torch.randint(0, 10, (32,))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        trained_loss = F.cross_entropy(net(x), y).item()
    rows = surface(net, x, y, points=5, extent=0.5)
    centre = [row for row in rows if row["alpha"] == 0 and row["beta"] == 0]
    assert len(rows) == 25 and len(centre) == 1
    assert centre[0]["loss"] == pytest.approx(trained_loss, rel=1e-6)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    moved = [row for row in rows if row["alpha"] == 0.5 and row["beta"] == 0.5][0]
    assert moved["loss"] != pytest.approx(trained_loss)


def test_the_slice_hessian_ratio_of_a_bowl_and_a_saddle():
    alphas = [i / 10 for i in range(-10, 11)]
    bowl = [{"alpha": a, "beta": b, "loss": a * a + b * b} for a in alphas for b in alphas]
    assert slice_hessian_ratio(bowl) == pytest.approx(0.0)
    saddle = [{"alpha": a, "beta": b, "loss": a * a - b * b} for a in alphas for b in alphas]
    assert slice_hessian_ratio(saddle) == pytest.approx(1.0)


def test_options_reject_a_grid_without_the_trained_point():
    from resnet_probe.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="odd number of points"):
        AnalysisOptions(landscape_points=10)


# --- on trained runs, through the CLI ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("command, table, columns", [
    (["lesion"], "lesion_blocks", ["model", "block", "stage", "downsampling", "error",
                                   "baseline_error", "relative_rise"]),
    (["lesion", "--by", "count", "--samples", "2"], "lesion_count",
     ["model", "removed", "error", "error_std", "relative_rise"]),
    (["responses"], "responses", ["model", "layer", "depth", "response_std", "rank"]),
    (["landscape", "--directions", "2", "--limit", "64"], "landscape",
     ["model", "alpha", "loss", "error"]),
])
def test_commands_on_a_degradation_run(invoke, tiny_degradation, tmp_path, command, table,
                                       columns):
    result = invoke(*command, str(tiny_degradation), "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert set(columns) <= set(rows[0])
    if table == "landscape":
        assert "beta" not in rows[0]  # a 1-D slice has no beta
    assert {row["model"] for row in rows} == {"plain8", "resnet8", "cifar[layers=2-2-2]",
                                             "cifar[layers=2-2-2,shortcut=false]"}
    assert {row["seed"] for row in rows} == {0, 1}
    name = command[0]
    assert (tmp_path / f"{name}.html").exists()
    assert (tmp_path / f"{name}-data" / f"{table}.csv").exists()
    assert "depth 8" in result.stderr and "depth 14" in result.stderr  # the claims


@pytest.mark.slow
def test_degradation_report_has_the_why_section(tiny_degradation):
    page = (tiny_degradation / "degradation.html").read_text()
    assert "Why: what the trained nets show" in page
    for table in ("lesion_blocks", "lesion_count", "responses", "landscape",
                  "landscape_radii", "landscape_summary", "hessian", "paths", "why_findings"):
        assert (tiny_degradation / "data" / f"{table}.csv").exists(), table
    findings_table = pd.read_csv(tiny_degradation / "data" / "why_findings.csv")
    assert set(findings_table["depth"]) == {8, 14}
    assert set(findings_table["outcome"]) <= {o.value for o in Outcome}
    radius = findings_table[findings_table["claim"] == "landscape_radius"].set_index("depth")
    assert radius.loc[8, "role"] == "control" and radius.loc[14, "control_depth"] == 8


@pytest.mark.slow
def test_compare_runs_are_analysed_in_the_report_and_by_the_commands(invoke, tiny_compare,
                                                                     tmp_path):
    result, out = tiny_compare
    why = result.training.why
    assert not why.tables.lesion_blocks.empty and not why.tables.hessian.empty
    assert not why.findings.empty
    data = out / "compare-resnet8-vs-plain8-vs-resnet14-data"
    page = (out / "compare-resnet8-vs-plain8-vs-resnet14.html").read_text()
    assert "Why: what the trained nets show" in page
    recorded = json.loads((data / "train_runs.json").read_text())
    assert {row["model"] for row in recorded} >= {"resnet8", "plain8", "resnet14"}
    run = invoke("responses", str(data), "--out", str(tmp_path), "--format", "json")
    assert run.exit_code == 0, run.output
    assert {row["model"] for row in json.loads(run.stdout)} >= {"resnet8", "plain8"}


def test_bad_run_arguments_exit_2_with_the_reason(invoke, tmp_path):
    missing = invoke("lesion", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    empty = invoke("responses", str(tmp_path))
    assert empty.exit_code == 2 and "holds no trained runs" in empty.stderr
    grid = invoke("landscape", str(tmp_path), "--points", "4")
    assert grid.exit_code == 2 and "odd number of points" in grid.stderr
