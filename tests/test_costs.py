"""Static costs: published numbers exactly, hand-derived arithmetic, and invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reference_counts import flop_counter_mode_counts, nonzero
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals
from resnet_probe.measure.costs import count_costs, count_model_costs, stage_costs
from resnet_probe.zoo import build_model, build_on_meta, get_spec, list_models

aten = torch.ops.aten


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_torchvision_gmacs_v1_5(name, published):
    expected = published["imagenet_224"]["gmacs_v1_5_stride_on_3x3"][name]
    summary = count_costs(name).summary
    assert round(summary["macs"] / 1e9, 3) == expected
    assert summary["stride_placement"] == "3x3" and summary["input_size"] == 224


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_paper_table1_via_v1_stride(name, published):
    expected = published["imagenet_224"]["gmacs_v1_stride_on_1x1"][name]
    assert round(count_costs(f"{name}[stride_placement=1x1]").summary["macs"] / 1e9, 3) == expected
    # macs_v1 on the v1.5 model is the same count, computed alongside.
    assert round(count_costs(name).summary["macs_v1"] / 1e9, 3) == expected


def test_v1_to_v1_5_difference_is_three_transitions():
    # Published note: +77,070,336 MACs at each of the three stage transitions.
    summary = count_costs("resnet50").summary
    assert summary["macs"] - summary["macs_v1"] == 3 * 77_070_336


def test_plain34_gmacs():
    assert round(count_costs("plain34").summary["macs"] / 1e9, 3) == 3.644


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_option_a_mmacs(depth, published):
    expected = published["cifar10_32"]["mmacs_option_A"][f"resnet{depth}"]
    assert round(count_costs(f"resnet{depth}").summary["macs"] / 1e6, 2) == expected


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_cifar_option_b_mmacs(depth, published):
    expected = published["cifar10_32"]["mmacs_option_B"][f"resnet{depth}"]
    summary = count_costs(f"resnet{depth}[shortcut_option=B]").summary
    assert round(summary["macs"] / 1e6, 2) == expected


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_fvcore_default_reproduced_by_formula(name, published):
    # fvcore's own total (conv+linear+BN eval+avgpool) from the reference, to the unit.
    expected = published["imagenet_224"]["fvcore_total_v1_5_incl_batchnorm_eval"][name]
    assert count_costs(name).summary["macs_fvcore_default"] == expected


def test_flops_are_twice_macs_as_torch_counts(published):
    summary = count_costs("resnet34").summary
    assert summary["flops"] == 2 * summary["macs"]
    # The reference's note: torch's FlopCounterMode gives 7,327,522,816 for resnet34.
    assert summary["flops"] == 7_327_522_816


def test_engines_agree_on_conv_linear_macs():
    for name in ("resnet18", "resnet20[shortcut_option=B]", "resnet14"):
        torch_rows = count_costs(name).modules
        fvcore_rows = count_costs(name, engine="fvcore").modules
        # Per module, wherever either engine counts conv/linear work.
        assert {r["module"]: r["macs"] for r in torch_rows if r["macs"]} == \
            {r["module"]: r["macs"] for r in fvcore_rows if r["macs"]}
        assert sum(r["macs"] for r in torch_rows) == sum(r["macs"] for r in fvcore_rows)


def test_fvcore_engine_reports_its_own_total_and_what_it_skipped(published):
    summary = count_costs("resnet18", engine="fvcore").summary
    assert summary["macs_fvcore_default"] == \
        published["imagenet_224"]["fvcore_total_v1_5_incl_batchnorm_eval"]["resnet18"]
    assert summary["partial"] and "max_pool2d" in summary["uncounted_operators"]
    assert summary["backward_flops"] is None  # not measured by this engine, never a zero


def test_hand_derived_cifar8_counts():
    # resnet8 (CIFAR, one basic block per stage, option A) at 32x32, batch 1:
    stem = 3 * 3 * 3 * 16 * 32 * 32                       # 442,368
    stage1 = 2 * (3 * 3 * 16 * 16 * 32 * 32)              # 4,718,592
    stage2 = 3 * 3 * 16 * 32 * 16 * 16 + 3 * 3 * 32 * 32 * 16 * 16   # 1,179,648 + 2,359,296
    stage3 = 3 * 3 * 32 * 64 * 8 * 8 + 3 * 3 * 64 * 64 * 8 * 8       # 1,179,648 + 2,359,296
    fc = 64 * 10
    result = count_costs("resnet8")
    assert result.summary["macs"] == stem + stage1 + stage2 + stage3 + fc == 12_239_488
    stages = {row["stage"]: row["macs"] for row in stage_costs(result)}
    assert stages == {"stem": stem, "stage1": stage1, "stage2": stage2, "stage3": stage3,
                      "head": fc}
    # Convention (b): BN 1/element, ReLU 1/element, add 1/element, avgpool 1/input element.
    bn = 16 * 32 * 32 * 3 + 32 * 16 * 16 * 2 + 64 * 8 * 8 * 2   # stem+stage1 BNs, then s2, s3
    relu = bn                                                    # every BN is followed by a ReLU
    add = 16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8
    avgpool = 64 * 8 * 8
    assert result.summary["macs_with_elementwise"] - result.summary["macs"] == \
        bn + relu + add + avgpool


def test_backward_flops_measured_not_assumed():
    # Each conv's backward = grad-input + grad-weight = 2x its forward, except the stem conv,
    # whose input needs no gradient; the fc's backward is two matmuls of its forward size.
    result = count_costs("resnet8")
    stem_flops = next(r["flops"] for r in result.modules if r["module"] == "conv1")
    assert result.summary["backward_flops"] == 2 * result.summary["flops"] - stem_flops
    assert 1.9 < result.summary["backward_to_forward"] < 2.0


def test_a_grouped_convs_weight_gradient_is_counted_at_its_true_size():
    """A 3x3 conv, 8 -> 8 channels in 4 groups, on 1x8x5x5: each of its 8*2*9 weights meets
    each of the 25 output positions once, 3,600 MACs, as in forward; the input gradient is the
    same size. torch's own formula says 4x for the weight gradient (it reads Cin as 8, not 2)."""
    from resnet_probe.measure.costs import count_module_costs

    conv = nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False)
    x = torch.zeros(1, 8, 5, 5, requires_grad=True)
    result = count_module_costs(nn.Sequential(conv), x, "grouped")
    assert result.summary["macs"] == 8 * 2 * 9 * 25 == 3600
    assert result.summary["backward_flops"] == 2 * (2 * 3600)  # input + weight gradients
    with FlopCounterMode(display=False) as torch_count:
        conv(x).sum().backward()
    assert torch_count.get_flop_counts()["Global"][aten.convolution_backward] == \
        2 * 3600 + 4 * 2 * 3600


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "plain56", "resnet20[shortcut_option=B]"])
def test_per_layer_sums_equal_totals(name):
    result = count_costs(name)
    for column in ("params", "macs", "flops", "macs_with_elementwise", "backward_flops",
                   "macs_fvcore_default"):
        assert sum(row[column] for row in result.modules) == result.summary[column]
    assert sum(row["macs"] for row in stage_costs(result)) == result.summary["macs"]
    model = build_on_meta(name)
    assert result.summary["params"] == sum(p.numel() for p in model.parameters())


def test_operator_rows_sum_to_totals():
    result = count_costs("resnet34")
    forward = [r for r in result.operators if r["direction"] == "forward"]
    assert sum(r["macs"] for r in forward if r["kind"] == "conv/linear") == result.summary["macs"]
    backward = [r for r in result.operators if r["direction"] == "backward"]
    assert sum(r["flops"] for r in backward if r["kind"] == "conv/linear") == \
        result.summary["backward_flops"]


def test_batch_and_input_size_scale_counts():
    base = count_costs("resnet18").summary["macs"]
    assert count_costs("resnet18", batch_size=4).summary["macs"] == 4 * base
    bigger = count_costs("resnet18", input_size=448).summary["macs"]
    # conv MACs scale with pixels (x4); the fc does not.
    assert bigger == 4 * (base - 512_000) + 512_000


class _Lgamma(nn.Module):
    def forward(self, x):
        return torch.lgamma(x)


def test_unknown_operator_marks_count_partial():
    model = build_on_meta("resnet8")
    model.layer1[0].relu = _Lgamma()  # no formula for lgamma
    result = count_model_costs(model, name="resnet8-lgamma")
    assert result.summary["partial"] is True
    assert "aten.lgamma" in result.summary["uncounted_operators"]
    assert not count_costs("resnet8").summary["partial"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="batch_size=0"):
        count_costs("resnet18", batch_size=0)
    with pytest.raises(ValueError, match="smaller than the network's total stride"):
        count_costs("resnet18", input_size=16)
    with pytest.raises(ValueError, match="unknown engine 'ptflops'"):
        count_costs("resnet18", engine="ptflops")


def test_bottleneck_block_costs_reproduce_fig5(published):
    rows = block_cost_rows(64, 56)
    totals = {t["design"]: t for t in block_cost_totals(rows)}
    ref = published["block_cost_56x56"]
    assert totals["basic 64-d"]["weights"] == ref["basic_64_to_64"]["weights"] == 73_728
    assert round(totals["basic 64-d"]["macs"] / 1e6, 1) == ref["basic_64_to_64"]["mmacs"]
    assert totals["bottleneck 256-d"]["weights"] == ref["bottleneck_256_64_256"]["weights"]
    assert round(totals["bottleneck 256-d"]["macs"] / 1e6, 1) == \
        ref["bottleneck_256_64_256"]["mmacs"]
    assert totals["basic 256-d"]["weights"] == ref["basic_at_256"]["weights"]
    assert round(totals["basic 256-d"]["macs"] / 1e6) == ref["basic_at_256"]["mmacs"]
    assert round(totals["basic 256-d"]["macs_vs_bottleneck"], 1) == 16.9
    for row in rows:  # measured MACs equal the k²·Cin/g·Cout·H·W the formula column shows
        k = int(row["kernel"][0])
        assert row["macs"] == (k * k * row["in_channels"] // row["groups"] * row["out_channels"]
                               * 56 * 56)


def test_cli_flops_json_keys(invoke, published):
    result = invoke("flops", "resnet50", "plain34", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {"model", "params", "macs", "flops"} <= set(rows[0])
    assert rows[0]["macs"] == 4_089_184_256 and rows[0]["params"] == 25_557_032


def test_cli_flops_by_every_granularity(invoke):
    for by in ("module", "block", "stage", "operator"):
        result = invoke("flops", "resnet20", "--by", by, "--format", "csv")
        assert result.exit_code == 0, result.output
    stage = invoke("flops", "resnet8", "--by", "stage", "--format", "json")
    assert sum(r["macs"] for r in json.loads(stage.stdout)) == 12_239_488
    block = invoke("flops", "resnet8", "--by", "block", "--format", "json")
    assert sum(r["macs"] for r in json.loads(block.stdout)) == 12_239_488


def test_cli_resolution_sweep(invoke):
    result = invoke("flops", "resnet18", "--sweep", "112,224", "--format", "json")
    rows = json.loads(result.stdout)
    assert [r["input_size"] for r in rows] == [112, 224]
    assert rows[1]["macs"] == 1_814_073_344


def test_cli_table_names_conventions(invoke):
    """The default table has a row per convention, each count in readable units."""
    result = invoke("flops", "resnet50")
    facts = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[2:]}
    assert facts["params"] == ["25,557,032"]
    assert facts["macs"] == ["4.089", "G"] and facts["macs_v1"] == ["3.858", "G"]
    assert facts["macs_fvcore_default"] == ["4.112", "G"] and facts["flops"] == ["8.178", "G"]
    assert "backward_flops" in facts and "partial" not in facts  # said only when one is


TRANSFORMER = str(Path(__file__).parent / "user_models" / "tiny_transformer.py") + ":build"
TRANSFORMER_INPUTS = ("--input", "input_ids=2x16:int64[0,1000)",
                      "--input", "attention_mask=2x16:bool")
UNET = str(Path(__file__).parent / "user_models" / "unet.py") + ":build"


def test_the_default_flops_table_fits_in_100_columns(invoke):
    """Conventions as rows, models as columns, wrapped into blocks: no line passes 100
    characters, however many models; every model is still there."""
    names = ["resnet50", "plain50", "resnet18", "resnet8", "plain8", "resnet110", UNET]
    result = invoke("flops", *names)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    headers = [line for line in lines if line.startswith("model ")]
    assert len(headers) >= 2  # wrapped
    assert [n for line in headers for n in line.split()[1:]] == names


def test_the_table_shows_only_conventions_that_apply(invoke):
    """macs_v1 is the zoo's stride placement: no row for a foreign model, no cell beside a
    zoo net; a small count reads in M, where G would print 0.003409."""
    unet = invoke("flops", UNET).stdout
    assert "macs_v1" not in unet
    mixed = invoke("flops", "resnet50", UNET).stdout
    v1 = next(line for line in mixed.splitlines() if line.startswith("macs_v1"))
    assert v1.split()[1:] == ["3.858", "G", "—"]
    transformer = invoke("flops", TRANSFORMER, *TRANSFORMER_INPUTS)
    assert transformer.exit_code == 0, transformer.output
    macs = next(line for line in transformer.stdout.splitlines() if line.startswith("macs "))
    exact = json.loads(invoke("flops", TRANSFORMER, *TRANSFORMER_INPUTS, "--format",
                              "json").stdout)[0]
    assert isinstance(exact["macs"], int) and 1e5 < exact["macs"] < 1e6  # JSON: exact
    # the table: readable, in K, not 0.000852 G (the mask's draw moves the last digits)
    assert macs.split()[1:] == [f"{exact['macs'] / 1e3:.4g}", "K"]


@pytest.mark.parametrize("args, message", [
    (["flops", "resnet18", "--input-size", "0"], "--input-size"),
    (["flops", "resnet18", "--input-size", "16"], "smaller than the network's total stride"),
    (["flops", "resnet18", "--by", "layerz"], "--by"),
    (["flops", "resnet18", "--engine", "ptflops"], "--engine"),
    (["flops", "resnet18", "--sweep", "a,b"], "comma-separated integers"),
    (["flops"], "name at least one MODEL"),
    (["bottleneck", "--width", "0"], "--width"),
])
def test_cli_flops_bad_inputs(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2  # every one is a bad command line
    assert message in result.stderr and "Traceback" not in result.output


def test_cli_bottleneck(invoke):
    result = invoke("bottleneck", "--width", "64", "--size", "56")
    assert result.exit_code == 0
    assert "3²·64·64·56·56" in result.stdout and "16.94" in result.stdout


def test_cli_convention_choice(invoke):
    result = invoke("flops", "resnet50", "--convention", "macs_v1", "--format", "json")
    row = __import__("json").loads(result.stdout)[0]
    assert row["macs_v1"] == 3_857_973_248 and "flops" not in row
    bad = invoke("flops", "resnet50", "--convention", "gflops")
    assert bad.exit_code == 2 and "'gflops'" in bad.stderr and "macs_v1" in bad.stderr


def test_sweep_headers_name_each_convention(invoke):
    """Each scaled column is titled by its convention, not four columns all titled G."""
    header = invoke("flops", "resnet8", "--sweep", "32,64").stdout.splitlines()[0].split()
    for title in ("macs", "macs_v1", "macs_fvcore_default", "macs_with_elementwise", "flops",
                  "backward_flops"):
        assert title in header
    # Each column in the units its size needs: resnet8's 12-49 M MACs in M, not 0.012 G.
    assert header.count("(M)") == 6 and "(G)" not in header


def test_breakdowns_show_exact_counts_to_check_by_hand(invoke):
    """Summaries scale MACs to G; per-conv, per-stage and per-module rows stay whole numbers."""
    assert "231,211,008" in invoke("bottleneck").stdout  # 2 x 3²·64·64·56·56
    stages = invoke("flops", "resnet34", "--by", "stage").stdout
    assert "118,013,952" in stages and "(G)" not in stages  # the stem: 7²·3·64·112²


# The 1000+-layer nets repeat resnet110's and preact_resnet164's blocks; dispatching them takes
# 6 s each, and the baseline check pins their counts.
@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).depth < 1000])
def test_shape_pass_counts_what_flop_counter_mode_counts(name):
    """The fast path evaluates torch's formulas on shapes; FlopCounterMode dispatching every
    operator of the whole net is the independent count. Forward counts agree per module,
    backward per operator, and every conv's backward is its input gradient plus its weight
    gradient, each the size of its forward (the stem's input needs no gradient)."""
    from resnet_probe.measure.costs import uncounted_calls
    from resnet_probe.measure.formulas import DATA_MOVEMENT
    from resnet_probe.measure.shape_pass import count_shapes

    spec = get_spec(name)
    model = build_on_meta(spec)
    shape = (1, spec.in_channels, spec.default_input_size, spec.default_input_size)
    forward, backward, calls, *_ = count_shapes(model, shape)
    expected_forward, expected_backward, dispatched = flop_counter_mode_counts(
        model, torch.empty(shape, device="meta"))

    assert forward == nonzero(expected_forward)
    assert backward[""] == nonzero(expected_backward)[""]
    # Nothing uncounted either way, and one counted call per counted operator dispatched.
    assert uncounted_calls(calls) == uncounted_calls(dispatched) == {}
    assert calls.total() == sum(n for op, n in dispatched.items() if op not in DATA_MOVEMENT)
    stem_convs = {"conv1", "conv1.0"}
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            once = forward[module_name]["aten.convolution"]
            expected = once * (1 if module_name in stem_convs else 2)
            assert backward[module_name] == {"aten.convolution_backward": expected}


def test_a_forward_the_shape_pass_cannot_follow_is_counted_by_flop_counter_mode():
    """lgamma has no formula: the count falls back to dispatching and names what it missed."""
    model = build_on_meta(get_spec("resnet8"))
    model.relu = _Lgamma()
    result = count_model_costs(model)
    assert result.summary["macs"] == count_costs("resnet8").summary["macs"]
    assert result.uncounted == {"aten.lgamma": 1} and result.summary["partial"]


def test_v1_macs_from_recorded_shapes_equal_counting_the_v1_net():
    """macs_v1 is arithmetic on the v1.5 count; the independent fact is the v1 net itself."""
    from resnet_probe.zoo.spec import StridePlacement

    bottlenecks = [n for n in list_models() if get_spec(n).block.value == "bottleneck"
                   and get_spec(n).depth < 1000]
    assert len(bottlenecks) > 10
    for name in bottlenecks:
        v1 = get_spec(name).replace(stride_placement=StridePlacement.V1)
        assert count_costs(name).summary["macs_v1"] == count_costs(v1).summary["macs"], name


def test_a_modules_backward_goes_to_the_module_whose_forward_made_it():
    """FlopCounterMode's module tracker would charge a shortcut conv its block's whole
    branch. The shape pass and the dispatch count (by autograd node) both give each module
    its own backward: a built module with an operator the pass cannot follow (lgamma) is
    counted by dispatch, and its rows equal the zoo's."""
    from resnet_probe.measure.costs import count_module_costs

    zoo = count_costs("resnet18", input_size=64)
    by_name = {row["module"]: row["backward_flops"] for row in zoo.modules}
    module = count_module_costs(build_model("resnet18"), torch.zeros(1, 3, 64, 64), "module")
    assert module.summary["count_method"] == "shape pass"
    assert {row["module"]: row["backward_flops"] for row in module.modules} == by_name
    downsample = next(r for r in zoo.modules if r["module"] == "layer2.0.downsample.0")
    assert downsample["backward_flops"] == 2 * downsample["flops"]

    model = build_model("resnet18")
    model.maxpool = nn.Sequential(model.maxpool, _Lgamma())
    dispatched = count_module_costs(model, torch.zeros(1, 3, 64, 64), "with lgamma")
    assert dispatched.summary["count_method"] == "meta dispatch"
    rows = {row["module"]: row["backward_flops"] for row in dispatched.modules}
    assert all(rows[name] == flops for name, flops in by_name.items() if name in rows)
    assert dispatched.summary["backward_flops"] == zoo.summary["backward_flops"]


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).depth < 1000])
def test_dispatch_counts_what_flop_counter_mode_counts(name):
    """The dispatch path (for forwards the shape pass cannot follow) against the reference,
    per module forward and in total backward, on every zoo net: the meta stand-ins of a
    built module's tensors count what the real module does."""
    from resnet_probe.measure.counting import count_pass, meta_tensors

    spec = get_spec(name)
    model = build_model(spec)
    x = torch.zeros(1, spec.in_channels, spec.default_input_size, spec.default_input_size)
    counts = count_pass(model, (x.to("meta"),), memory=False, tensors=meta_tensors(model))
    forward, backward, _ = flop_counter_mode_counts(model, x)
    assert nonzero(counts.forward) == nonzero(forward)
    assert nonzero(counts.backward)[""] == nonzero(backward)[""]


@pytest.mark.parametrize("name, shape", [
    ("resnet50d", (3, 3, 97, 97)),  # odd sizes: ceil-mode pooling, strided 1x1 rounding
    ("resnet18", (2, 3, 225, 190)),  # non-square
    ("cifar[layers=2-2-2,in_channels=1,shortcut_option=A]", (1, 1, 29, 29)),
    ("preact_resnet164", (2, 3, 33, 33)),
])
def test_shape_pass_agrees_off_the_standard_input(name, shape):
    from resnet_probe.measure.shape_pass import count_shapes

    model = build_on_meta(name)
    counts = count_shapes(model, shape)
    forward, backward, _ = flop_counter_mode_counts(model, torch.empty(shape, device="meta"))
    assert counts.forward == {m: {op: v for op, v in ops.items() if v}
                              for m, ops in forward.items() if any(ops.values())}
    assert counts.backward[""] == {op: v for op, v in backward[""].items() if v}


class _SqueezeExcite(torch.nn.Module):
    """A stem conv, an SE block (He et al.'s successors' gate), and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.fc1 = torch.nn.Conv2d(8, 4, 1)
        self.fc2 = torch.nn.Conv2d(4, 8, 1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        x = x * gate
        return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_an_se_gate_is_counted_not_left_partial():
    costs = count_costs(_SqueezeExcite(), input_size=8)
    # (a): stem 3*9*8 per position * 64 positions; fc1 8*4; fc2 4*8; head 8*10.
    assert costs.summary["macs"] == 3 * 9 * 8 * 64 + 8 * 4 + 4 * 8 + 8 * 10 == 13_968
    # (b) adds: the squeeze's mean 512 inputs, ReLU 4, sigmoid 8, the gating multiply 512
    # outputs, and the head's average pool 512 inputs.
    assert costs.summary["macs_with_elementwise"] == 13_968 + 512 + 4 + 8 + 512 + 512
    assert not costs.summary["partial"] and costs.summary["uncounted_operators"] == ""


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_size=0), "input_size=0"),  # once silently the default size
    (dict(input_size=-3), "input_size=-3"),
    (dict(in_channels=0), "in_channels=0"),
])
def test_a_size_that_is_not_positive_is_refused_not_replaced(kwargs, message):
    from resnet_probe.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match=message):
        count_costs("resnet8", **kwargs)


def test_an_se_gates_backward_goes_to_each_conv():
    """The shape pass follows the gate (mean, sigmoid, broadcast multiply), so a model with SE
    blocks keeps its per-module backward. Conv/linear backward, by hand: the stem computes no
    input gradient (2 * 3*9*8*64 for its weight); fc1 and fc2 2 * 32 each for input and
    weight; the head 2 * 80 each."""
    costs = count_costs(_SqueezeExcite(), input_size=8)
    backward = {row["module"]: row["backward_flops"] for row in costs.modules}
    assert backward == {"(model)": 0, "stem": 27_648, "fc1": 128, "fc2": 128, "head": 320}
    assert costs.summary["backward_flops"] == 27_648 + 128 + 128 + 320


def test_memory_columns_by_hand():
    """Linear(10,20) -> ReLU -> Linear(20,5) at batch 4, float32: the first linear saves its
    input (4x10), the ReLU its output (4x20), which the second linear reads again (one storage,
    counted once); weights are parameters, not activations. Views add no tensor."""
    from resnet_probe.measure.memory import memory_rows

    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    rows = {row["module"]: row for row in memory_rows(model, (torch.zeros(4, 10),))}
    params = (10 * 20 + 20 + 20 * 5 + 5) * 4
    assert rows["0"]["activation_bytes"] == 4 * 10 * 4
    assert rows["1"]["activation_bytes"] == 4 * 20 * 4
    assert "2" not in rows
    total = rows["(model)"]
    assert (total["param_bytes"], total["grad_bytes"], total["optimizer_bytes"]) == \
        (params, params, params)
    assert total["activation_bytes"] == (4 * 10 + 4 * 20) * 4
    assert total["largest_output_bytes"] == 4 * 20 * 4  # not the 10x20 view weight.t()
    # weights, their gradients and momentum, the saved tensors, the largest output
    assert total["train_peak_bytes"] == 3 * params + total["activation_bytes"] + 4 * 20 * 4


def test_memory_of_a_batch_of_one_that_cannot_train_is_taken_at_batch_two():
    """resnet14 at 32 px ends at 1x1: batch norm refuses a training step at batch 1."""
    one = count_costs("resnet14", input_size=32, memory=True)
    two = count_costs("resnet14", input_size=32, batch_size=2, memory=True)
    assert one.summary["memory_batch_size"] == 2 and two.summary["memory_batch_size"] == 2
    assert "memory columns at batch 2" in one.summary["count_notes"]
    assert one.summary["activation_bytes"] == two.summary["activation_bytes"]
    assert one.summary["macs"] * 2 == two.summary["macs"]  # the counts stay at batch 1


def _really_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """The bytes autograd saves on a real CPU training-mode forward: each storage once, the
    model's own parameters and buffers left out (they are not activations)."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in own:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


@pytest.mark.parametrize("name", ["resnet8", "plain8", "resnet18"])
def test_estimated_activation_bytes_are_what_autograd_really_saves(name):
    from resnet_probe.measure.memory import memory_rows

    torch.manual_seed(0)
    model = build_model(name)
    x = torch.randn(2, model.spec.in_channels, 32, 32)
    estimate = memory_rows(build_on_meta(get_spec(name)), (x,))[-1]["activation_bytes"]
    assert estimate == _really_saved_bytes(model, x)


class _Attention(nn.Module):
    def forward(self, q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def test_attention_is_counted_as_its_two_matmuls():
    """q: 1x2x5x8, k: 1x2x7x8, v: 1x2x7x4. QK^T is 2·5·7·8 MACs and (softmax)·V 2·5·7·4: 840,
    in convention (a), whichever SDPA kernel this build runs on the CPU."""
    from resnet_probe.measure.costs import count_module_costs

    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 7, 8), torch.randn(1, 2, 7, 4)
    result = count_module_costs(_Attention(), (q, k, v), name="attention")
    assert result.summary["macs"] == 2 * 5 * 7 * 8 + 2 * 5 * 7 * 4
    assert result.summary["flops"] == 2 * result.summary["macs"]
    assert not result.uncounted


class _AttentionBlock(nn.Module):
    """nn.MultiheadAttention reads its out_proj's weights itself (a functional call), and an
    auxiliary head that this forward never calls."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.aux = nn.Linear(32, 3)

    def forward(self, x):
        return x + self.attn(x, x, x, need_weights=False)[0]


def test_parameters_a_parent_reads_are_counted_inside_it_not_idle():
    """out_proj never runs as a module, yet its 32*32+32 = 1,056 params do work inside
    MultiheadAttention: said so, and only aux's 32*3+3 = 99 params did not run."""
    from resnet_probe import FlopAnalysis

    result = FlopAnalysis(_AttentionBlock(), torch.zeros(1, 8, 32)).result
    assert result.notes[0].startswith("1,056 params of attn.out_proj are counted inside "
                                      "MultiheadAttention (attn)")
    assert "did not run" not in result.notes[0]
    assert result.notes[1].startswith("99 params are in modules that did not run in this "
                                      "forward (aux)")
    attention = next(r for r in result.modules if r["module"] == "attn")
    # in_proj 8*32*96 + scores 4*8*8*8 + weighted values 4*8*8*8 + out_proj 8*32*32
    assert attention["macs"] == 8 * 32 * 96 + 2 * 4 * 8 * 8 * 8 + 8 * 32 * 32


class _NoStructure(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("view", ["by_stage", "by_block"])
def test_a_view_that_finds_nothing_says_so_and_offers_the_module_view(view):
    from resnet_probe import FlopAnalysis
    from resnet_probe.views import EmptyViewWarning

    analysis = FlopAnalysis(_NoStructure(), torch.zeros(1, 8))
    with pytest.warns(EmptyViewWarning, match=r"no (stage|block)s found in _NoStructure.*"
                                              r"by_module\(\)"):
        assert getattr(analysis, view)().empty
    assert len(analysis.by_module()) == 3  # the view that works


def test_flops_by_stage_on_a_net_with_no_stages_says_so(invoke, tmp_path):
    model = tmp_path / "mlp.py"
    model.write_text("from torch import nn\n\n\nclass MLP(nn.Module):\n"
                     "    def __init__(self):\n        super().__init__()\n"
                     "        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU())\n\n"
                     "    def forward(self, x):\n        return self.body(x)\n\n\n"
                     "def build():\n    return MLP()\n")
    result = invoke("flops", f"{model}:build", "--input", "x=1x8", "--by", "stage")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "(no rows)"
    assert f"note: no stages found in {model}:build" in result.stderr
    assert "--by module" in result.stderr
    staged = invoke("flops", "resnet8", "--by", "stage")
    assert "no stages found" not in staged.stderr  # a net with stages: no note


def test_console_flops_table(golden):
    """The default flops table, from hand-made summaries: resnet50's published counts, a
    foreign model (no macs_v1 cell), a partial count and a failed row."""
    import pandas as pd

    from resnet_probe.report.console import conventions_table

    rows = pd.DataFrame([
        {"model": "resnet50", "inputs": "1x3x224x224", "params": 25_557_032,
         "macs": 4_089_184_256, "macs_v1": 3_857_973_248, "macs_fvcore_default": 4_111_512_576,
         "macs_with_elementwise": 4_117_132_288, "flops": 8_178_368_512,
         "backward_flops": 16_120_709_120, "partial": False, "stride_placement": "3x3"},
        {"model": "unet.py:build", "inputs": "1x3x64x64", "params": 122_546,
         "macs": 81_084_416, "macs_v1": 81_084_416, "macs_fvcore_default": 81_736_704,
         "macs_with_elementwise": 81_956_288, "flops": 162_168_832,
         "backward_flops": 321_335_296, "partial": True, "stride_placement": None},
        {"model": "broken.py:build", "error": "no plain twin of Net: the join add in the root"},
    ])
    conventions = ["macs", "macs_v1", "macs_fvcore_default", "macs_with_elementwise", "flops",
                   "backward_flops"]
    text = conventions_table(rows, conventions)
    assert max(map(len, text.splitlines())) <= 100
    golden("flops_console", text + "\n")
