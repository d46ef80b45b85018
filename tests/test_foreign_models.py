"""Foreign models counted and twinned exactly (the second CI environment: torch 2.14.1,
torchvision 0.29.1, timm).

- Every torchvision classification model against torchvision's own published ``num_params``
  and ``_ops`` (its weights' metadata, read offline), counted the fast way (meta device, no
  storage), and against torch's FlopCounterMode run over the same model.
- Plain twins of residual nets from both libraries: only block shortcuts removed, parameters
  and MACs lower by exactly the projections', eval mode deterministic and per image.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from reference_counts import flop_counter_mode_counts, nonzero

from resnet_probe.measure.costs import count_costs
from resnet_probe.sources import resolve

pytestmark = pytest.mark.torchvision


def _published(torchvision, name: str) -> tuple[str, int, dict]:
    """The MODEL text and input size at which torchvision's default weights were measured,
    and their metadata. Two need builder arguments to be the net the metadata describes:
    googlenet's weights are loaded without the auxiliary heads torchvision builds by default
    (aux_logits=False); vit_h_14's SWAG weights take 518-pixel images (image_size=518)."""
    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms.keywords.get("crop_size", 224)
    arguments = []
    if name.startswith("vit_") and crop != 224:
        arguments.append(f"image_size={crop}")
    if name == "googlenet":
        arguments.append("aux_logits=False")
    text = f"torchvision:{name}" + (f"[{','.join(arguments)}]" if arguments else "")
    return text, crop, weights.meta


def test_every_torchvision_classifier_matches_its_published_counts(torchvision):
    """num_params exactly, and convention (a) equal to ``_ops`` (GMACs, 3 decimals), for all
    of them; every parameter sits in a row; no operator is left uncounted."""
    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) >= 80
    wrong = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet and inception warn about their init
        for name in names:
            text, crop, meta = _published(torchvision, name)
            result = count_costs(text, input_size=crop, structure=False)
            gmacs = round(result.summary["macs"] / 1e9, 3)
            rows = sum(row["params"] for row in result.modules)
            if (result.summary["params"], rows, gmacs) != (meta["num_params"],) * 2 + \
                    (meta["_ops"],) or result.uncounted:
                wrong.append((name, result.summary["params"], rows, meta["num_params"],
                              gmacs, meta["_ops"], result.uncounted))
    assert not wrong, wrong


def test_googlenets_auxiliary_heads_are_named_when_they_do_not_run(torchvision):
    result = count_costs("torchvision:googlenet", structure=False)
    assert result.summary["params"] == 13_004_888  # torchvision's default build, aux heads on
    assert any("6,379,984 params" in note and "aux1, aux2" in note for note in result.notes)


def _model_for_reference(text: str, size: int):
    """The same model on the meta device where its constructor allows (no storage), else on
    the CPU at a smaller input; and that input size."""
    source = resolve(text)
    try:
        return source.build(structure=False, device="meta"), size, "meta"
    except Exception:  # noqa: BLE001 - e.g. regnet's init reads a tensor's value
        return source.build(structure=False), min(size, 64), "cpu"


def test_counts_equal_flop_counter_mode_on_every_torchvision_classifier(torchvision):
    """The fast paths (shape pass, meta dispatch) against torch's own counter over the same
    model: conv/linear/attention MACs forward and backward, and convention (b) where no
    attention kernel ran (FlopCounterMode sees the fused kernel, resnet-probe its math)."""
    names = torchvision.models.list_models(module=torchvision.models)
    wrong = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            text, crop, _ = _published(torchvision, name)
            if name == "regnet_y_128gf":
                continue  # 128 GMACs on the CPU per pass; regnet_y_32gf is the same design
            model, size, device = _model_for_reference(text, crop)
            x = torch.zeros(1, 3, size, size, device=device)
            forward, backward, calls = flop_counter_mode_counts(model, x)
            ours = count_costs(text, input_size=size, structure=False)
            matmul = {k: v for k, v in forward.get("", {}).items()
                      if k in ("aten.convolution", "aten.addmm", "aten.mm", "aten.bmm")}
            expected_macs = sum(v for k, v in forward.get("", {}).items()
                                if k.startswith("aten._scaled_dot_product") or k in matmul
                                ) // 2
            expected_backward = sum(
                v for k, v in backward.get("", {}).items()
                if k in ("aten.convolution_backward", "aten.mm", "aten.bmm", "aten.addmm")
                or k.startswith("aten._scaled_dot_product")) or None
            attention = any("scaled_dot_product" in op for op in calls)
            if ours.summary["macs"] != expected_macs or \
                    ours.summary["backward_flops"] != expected_backward:
                wrong.append((name, "macs", ours.summary["macs"], expected_macs,
                              ours.summary["backward_flops"], expected_backward))
            elif not attention:
                rows = {row["module"]: row for row in ours.modules}
                total_b = ours.summary["macs_with_elementwise"]
                expected_b = expected_macs + sum(
                    v for k, v in nonzero(forward).get("", {}).items()
                    if k not in matmul and not k.startswith("aten._scaled"))
                if total_b != expected_b or not rows:
                    wrong.append((name, "macs_with_elementwise", total_b, expected_b))
    assert not wrong, wrong


# Residual nets of both libraries, the designs the twin must handle: projections and
# pooled projections, grouped and SE blocks, pre-activation, Res2Net's adds between splits,
# RepVGG's parallel 1x1 branches, HRNet's fuse adds, DLA's trees, attention blocks,
# functional dropout in a head (ghostnet), NF blocks that timm marks as not traceable, and
# PoolFormer's nn.Identity(x) + f(x) joins around a branch without a weighted layer.
TWINNED = [
    "torchvision:resnet18", "torchvision:resnet50", "torchvision:resnext50_32x4d",
    "torchvision:wide_resnet50_2", "torchvision:regnet_x_400mf", "torchvision:regnet_y_400mf",
    "torchvision:mobilenet_v2", "torchvision:efficientnet_b0", "torchvision:convnext_tiny",
    "torchvision:swin_t", "torchvision:vit_b_16",
    "timm:resnet26t", "timm:resnet50d", "timm:seresnext26d_32x4d", "timm:res2net50_26w_4s",
    "timm:regnetx_002", "timm:regnety_002", "timm:gernet_s", "timm:repvgg_a0",
    "timm:resnetv2_50", "timm:ghostnet_100", "timm:convnext_nano", "timm:dla34",
    "timm:hrnet_w18_small", "timm:botnet26t_256", "timm:efficientnet_b0", "timm:cspresnet50",
    "timm:vit_tiny_patch16_224", "timm:nf_resnet26", "timm:poolformer_s12",
]


@pytest.mark.parametrize("name", TWINNED)
def test_a_plain_twin_removes_exactly_the_shortcuts(timm, name):
    """params(twin) = params(original) - the projections'; MACs likewise (the adds are
    elementwise, not in convention (a)); no removed module is still called; eval forwards
    are bit-identical and each image's output does not depend on its batch-mates; every
    parameter of the twin sits in a row."""
    from resnet_probe.sources.surgery import residual_adds, trace_with_blocks

    original = resolve(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dead-twin warnings: checked elsewhere
        model = original.build(structure=False).eval()
        twin = resolve(f"plain:{name}").build(structure=False).eval()
    adds, _ = residual_adds(trace_with_blocks(model))
    assert adds
    removed = {m for add in adds for m in add.shortcut_modules}
    removed_params = sum(p.numel() for m in removed
                         for p in model.get_submodule(m).parameters())
    counted = count_costs(name, structure=False)
    twin_counted = count_costs(f"plain:{name}", structure=False)
    assert twin_counted.summary["params"] == counted.summary["params"] - removed_params
    assert sum(p.numel() for p in twin.parameters()) == twin_counted.summary["params"]
    assert sum(row["params"] for row in twin_counted.modules) == twin_counted.summary["params"]
    removed_macs = sum(row["macs"] for row in counted.modules
                       if any(row["module"] == m or row["module"].startswith(f"{m}.")
                              for m in removed))
    assert twin_counted.summary["macs"] == counted.summary["macs"] - removed_macs
    called = {node.target for node in twin.graph.nodes if node.op == "call_module"}
    assert not {c for c in called for m in removed if c == m or c.startswith(f"{m}.")}
    size = original.default_input_size
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, again, alone = twin(x), twin(x), twin(x[:1])
    assert torch.equal(first, again)
    scale = float(first.abs().max()) + 1e-12
    assert torch.allclose(first[:1], alone, rtol=1e-3, atol=1e-4 * scale)


def test_a_twins_functional_dropout_follows_train_and_eval(timm):
    """ghostnet's head calls F.dropout(training=self.training): traced, that flag would be
    frozen; the twin reads its own mode at run time."""
    twin = resolve("plain:timm:ghostnet_100").build(structure=False)
    x = torch.randn(2, 3, 64, 64)
    twin.train()
    assert not torch.equal(twin(x), twin(x))
    twin.eval()
    with torch.no_grad():
        assert torch.equal(twin(x), twin(x))


def test_adds_inside_a_branch_are_kept_with_the_rule(timm):
    """Res2Net's hierarchical adds share the block's first conv with their other operand:
    not a shortcut. HRNet's fuse adds join resolutions."""
    from resnet_probe.sources.surgery import residual_adds, trace_with_blocks

    res2net = resolve("timm:res2net50_26w_4s").build(structure=False).eval()
    adds, kept = residual_adds(trace_with_blocks(res2net))
    assert len(adds) == 3 + 4 + 6 + 3  # one shortcut per block
    assert len(kept) == 24 and all("inside the branch" in k.reason for k in kept)


@pytest.mark.parametrize("model", ["torchvision:resnet18", "timm:resnet50d",
                                   "plain:torchvision:resnet18"])
def test_library_models_round_trip_through_a_baseline(invoke, tmp_path, model, torchvision,
                                                      timm):
    """Update, check (exit 0); a recorded value moved, as a changed model would move it:
    check exits 1 naming the group and the change; update again (replaced), check (exit 0).
    The entry records the library versions it was measured with."""
    import json

    path = tmp_path / "costs.json"
    assert invoke("flops", "--update-baseline", str(path), model, "--input-size", "64",
                  "--metrics", "params,macs,activation_bytes").exit_code == 0
    assert invoke("flops", "--check", str(path)).exit_code == 0
    baseline = json.loads(path.read_text())
    entry = baseline["entries"][model]
    library = "timm" if "timm:" in model else "torchvision"
    assert library in entry["versions"] and entry["input_size"] == 64
    group = next(iter(entry["groups"]))
    entry["groups"][group]["macs"] -= 1000
    path.write_text(json.dumps(baseline))
    drifted = invoke("flops", "--check", str(path))
    assert drifted.exit_code == 1
    assert group in drifted.stdout and "macs" in drifted.stdout
    assert "1 replaced" in invoke("flops", "--update-baseline", str(path), model,
                                  "--input-size", "64",
                                  "--metrics", "params,macs,activation_bytes").stdout
    assert invoke("flops", "--check", str(path)).exit_code == 0


def test_nf_blocks_that_timm_will_not_trace_are_twinned(timm):
    """timm registers NormFreeBlock as not traceable (for an in-place multiply an fx pass
    would drop); it owns the residual add, so it is traced through: nf_resnet26's 2+2+2+2
    blocks each lose their shortcut, and no residual add is left."""
    from timm.layers import is_notrace_module

    from resnet_probe.sources.surgery import residual_adds, trace_with_blocks

    model = resolve("timm:nf_resnet26").build(structure=False).eval()
    assert is_notrace_module(type(model.stages[0][0]))
    adds, kept = residual_adds(trace_with_blocks(model))
    assert len(adds) == 8 and not kept
    twin = resolve("plain:timm:nf_resnet26").build(structure=False)
    assert len(twin.twin_report.removed) == 8 and not twin.twin_report.partial
    assert residual_adds(twin)[0] == []


def test_poolformers_identity_joins_are_all_removed(timm):
    """PoolFormer's token-mixer branch (norm, pooling, layer scale) has no weighted layer;
    its join nn.Identity(x) + f(x) is a shortcut all the same: all 24 go, none is kept."""
    from resnet_probe.sources.surgery import residual_adds
    from resnet_probe.sources.surgery.adds import is_add

    twin = resolve("plain:timm:poolformer_s12").build(structure=False)
    report = twin.twin_report
    assert len(report.removed) == 2 * (2 + 2 + 6 + 2) and not report.kept_adds
    assert residual_adds(twin) == ([], [])
    assert not [n.name for n in twin.graph.nodes if is_add(n)]


def test_a_model_without_a_twin_fails_its_own_row_in_flops(invoke, timm):
    """densenet121 concatenates and never adds: its twin is refused in its own row, and the
    model itself is still counted (torchvision's published 7,978,856 parameters)."""
    import json

    result = invoke("flops", "plain:timm:densenet121", "timm:densenet121", "--input-size",
                    "64", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["timm:densenet121"]["params"] == 7_978_856
    assert "has no residual addition" in rows["plain:timm:densenet121"]["error"]
    assert "error: plain:timm:densenet121:" in result.stderr
