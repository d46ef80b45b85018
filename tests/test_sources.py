"""Any model: user code through FILE.py:factory, nn.Modules in the API, plain twins by graph
surgery, discovered structure, and what is not counted (torchvision and timm: test_torchvision)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

import resnet_probe as rp
from resnet_probe.measure.costs import count_costs
from resnet_probe.sources import ModelSource, SourceError, SourceKind, resolve
from resnet_probe.sources.surgery import SurgeryError, discover_structure, plain_twin
from resnet_probe.zoo import build_model

USER_MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(out)))


    class Net(nn.Module):
        def __init__(self, num_classes=10, in_channels=1):
            super().__init__()
            self.stem = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
            self.blocks = nn.Sequential(Block(8), Block(8))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, num_classes)

        def forward(self, x):
            x = self.blocks(torch.relu(self.stem(x)))
            return self.fc(torch.flatten(self.pool(x), 1))


    def build(num_classes=10, in_channels=1):
        return Net(num_classes, in_channels)


    def not_a_model():
        return 3
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(USER_MODEL)
    return path


# Hand counts for the user model at 1x28x28: stem 1->8 3x3, four 8->8 3x3 convs, fc 8->10.
STEM_MACS = 9 * 1 * 8 * 28 * 28
BLOCK_CONV_MACS = 9 * 8 * 8 * 28 * 28
USER_PARAMS = 9 * 8 + 4 * (9 * 8 * 8 + 2 * 8) + 8 * 10 + 10


def test_a_user_file_is_counted_exactly(invoke, user_file):
    result = invoke("flops", f"{user_file}:build", "--in-channels", "1", "--input-size", "28",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["params"] == USER_PARAMS
    assert row["macs"] == STEM_MACS + 4 * BLOCK_CONV_MACS + 8 * 10
    assert row["partial"] is False


def test_a_user_files_stages_and_blocks_are_discovered(invoke, user_file):
    result = invoke("flops", f"{user_file}:build", "--in-channels", "1", "--input-size", "28",
                    "--by", "block", "--format", "json")
    blocks = {row["block"]: row["macs"] for row in json.loads(result.stdout)}
    assert blocks == {"blocks.0": 2 * BLOCK_CONV_MACS, "blocks.1": 2 * BLOCK_CONV_MACS,
                      "stem": STEM_MACS, "head": 8 * 10, "model": 0}


def test_the_plain_twin_of_a_user_model_drops_only_the_additions(user_file):
    source = resolve(f"plain:{user_file}:build", in_channels=1, input_size=28)
    torch.manual_seed(0)
    twin = source.build()
    original = resolve(f"{user_file}:build", in_channels=1, input_size=28).build()
    original.load_state_dict(twin.state_dict())  # identity shortcuts: the same parameters
    x = torch.randn(3, 1, 28, 28)
    twin.eval(), original.eval()
    with torch.no_grad():
        h = torch.relu(original.stem(x))
        for block in original.blocks:  # the plain block, by hand: relu(F(x)), no x +
            h = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h))))))
        expected = original.fc(torch.flatten(original.pool(h), 1))
        assert torch.allclose(twin(x), expected, atol=1e-6)
        assert not torch.allclose(original(x), expected, atol=1e-3)


def test_plain_twin_of_the_zoos_resnet50_is_its_plain50():
    torch.manual_seed(0)
    residual = build_model("resnet50").eval()
    x = torch.randn(2, 3, 64, 64)
    twin = plain_twin(residual, x).eval()
    plain = build_model("plain50").eval()
    state = {k: v for k, v in residual.state_dict().items() if ".downsample." not in k}
    plain.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in twin.parameters()) == 22_780_456
    with torch.no_grad():
        assert torch.equal(twin(x), plain(x))
    assert count_costs("plain:resnet50").summary["macs"] == count_costs("plain50").summary["macs"]


def test_discovered_structure_matches_the_zoos_own():
    model = build_model("resnet50").eval()
    found = discover_structure(model, torch.zeros(1, 3, 64, 64))
    known = model.layer_info
    compared = [name for name in found if name in known]
    assert len(compared) >= 140
    for name in compared:
        ours, theirs = found[name], known[name]
        assert (ours.stage, ours.role, ours.block_name, ours.depth) == (
            theirs.stage, theirs.role, theirs.block_name, theirs.depth), name


def test_the_fvcore_engine_counts_the_module_it_is_given():
    model = build_model("resnet8")
    model.layer1[0].conv1 = nn.Conv2d(16, 16, 5, padding=2, bias=False)
    wider = 16 * 16 * 32 * 32 * (25 - 9)  # the 5x5 conv's extra MACs at 32x32
    baseline = count_costs("resnet8").summary["macs"]
    for engine in ("torch", "fvcore"):
        assert count_costs(model, engine=engine).summary["macs"] == baseline + wider, engine


class _Lgamma(nn.Module):  # an operator with no formula
    def forward(self, x):
        return torch.lgamma(x)


def test_uncounted_operators_are_named_with_their_calls():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _Lgamma(), nn.Conv2d(4, 4, 3), _Lgamma(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    analysis = rp.FlopAnalysis(model, torch.zeros(1, 3, 16, 16))
    assert analysis.partial
    assert analysis.uncounted() == {"aten.lgamma": 2}
    assert "aten.lgamma x2" in analysis.summary()["uncounted_operators"]
    assert analysis.total("macs") == 27 * 4 * 14 * 14 + 36 * 4 * 12 * 12 + 4 * 2


def test_flop_analysis_views_add_up_on_a_module():
    analysis = rp.FlopAnalysis(build_model("resnet18"), torch.zeros(1, 3, 224, 224))
    assert analysis.total() == 1_814_073_344  # torchvision documents 1.81 GFLOPS
    assert analysis.by_stage()["macs"].sum() == analysis.total()
    assert analysis.by_module()["macs"].sum() == analysis.total()
    assert set(analysis.by_operator()["operator"]) >= {"aten.convolution", "aten.addmm"}
    assert analysis.uncounted() == {}


def test_api_functions_take_modules():
    model = build_model("resnet8")
    assert rp.flops(model)["macs"].item() == count_costs("resnet8").summary["macs"]
    latency = rp.latency([model], repeats=2, warmup=1, sweep_batch_sizes=(), input_size=32)
    assert latency["model"].tolist() == ["resnet8"]
    gradients = rp.GradientAnalysis(model, batch_size=4, seeds=(0,))
    assert gradients.by_block()["block"].tolist()[0] == "layer1.0"


def test_weights_load_strictly_and_name_what_does_not_fit(invoke, tmp_path, user_file):
    model = resolve(f"{user_file}:build", in_channels=1, input_size=28).build()
    torch.nn.init.constant_(model.fc.weight, 0.5)
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    loaded = resolve(f"{user_file}:build", 1, 28, weights=good).build()
    assert torch.equal(loaded.fc.weight, torch.full((10, 8), 0.5))
    bad = tmp_path / "bad.pt"
    torch.save({"fc.weight": torch.zeros(10, 8), "extra": torch.zeros(1)}, bad)
    result = invoke("show", f"{user_file}:build", "--in-channels", "1", "--input-size", "28",
                    "--weights", str(bad))
    assert result.exit_code == 2
    assert "unexpected extra" in result.stderr and "missing stem.weight" in result.stderr


@pytest.mark.parametrize("model, message", [
    ("{file}:nothere", "has no function 'nothere'; it defines Block, Net, build"),
    ("{file}:not_a_model", "returned int, not an nn.Module"),
    ("{dir}/missing.py:build", "no such file"),
    ("no_such_package_xyz.models:build", "importing 'no_such_package_xyz.models' failed"),
    ("resnet51", "or give torchvision:NAME, timm:NAME, plain:MODEL"),
])
def test_bad_sources_exit_2_with_the_reason(invoke, user_file, model, message):
    text = model.format(file=user_file, dir=user_file.parent)
    result = invoke("flops", text, "--in-channels", "1", "--input-size", "28")
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_model_fed_the_wrong_input_names_the_flags(invoke, user_file):
    result = invoke("flops", f"{user_file}:build")  # 3x224x224 into a 1-channel stem
    assert result.exit_code == 2
    assert "--input-size and --in-channels" in result.stderr


def test_plain_of_a_plain_model_and_of_untraceable_code_exit_2(invoke, tmp_path):
    plain = tmp_path / "plain_model.py"
    plain.write_text("from torch import nn\n"
                     "def build():\n"
                     "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())\n")
    result = invoke("flops", f"plain:{plain}:build", "--input-size", "16")
    assert result.exit_code == 2 and "has no residual addition" in result.stderr
    branching = tmp_path / "branching.py"
    branching.write_text(textwrap.dedent('''
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 3, padding=1)

            def forward(self, x):
                if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                    return x + self.conv(x)
                return x

        def build():
            return Net()
    '''))
    result = invoke("flops", f"plain:{branching}:build", "--input-size", "16")
    assert result.exit_code == 2 and "torch.fx cannot trace Net" in result.stderr


def test_surgery_errors_are_invalid_requests():
    with pytest.raises(SurgeryError, match="no residual addition"):
        plain_twin(nn.Sequential(nn.Conv2d(3, 3, 1)))


def test_torchvision_names_say_what_to_install_when_it_is_missing(invoke):
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - the main environment: it does not import
        result = invoke("flops", "torchvision:resnet50")
        assert result.exit_code == 2
        assert "pip install 'resnet-probe[models]'" in result.stderr
    else:
        with pytest.raises(SourceError, match="no classification model"):
            resolve("torchvision:resnet51")


@pytest.mark.slow
def test_compare_takes_modules_and_leaves_them_untouched(tmp_path):
    from resnet_probe.analysis import AnalysisOptions
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.measure.latency import LatencyConfig
    from resnet_probe.train.loop import TrainConfig

    residual, plain = build_model("resnet8"), build_model("plain8")
    before = {k: v.clone() for k, v in residual.state_dict().items()}
    result = rp.compare(
        [residual, plain], out=tmp_path, input_size=32,
        latency=LatencyConfig(repeats=2, warmup=1, sweep_batch_sizes=(1,), input_size=32),
        gradients=GradientConfig(batch_size=4, seeds=(0,), shatter_points=8),
        train=TrainConfig(steps=4, batch_size=16, eval_every=2, grad_norm_every=2,
                          checkpoint_every=2, warmup_steps=1),
        train_seeds=(0,),
        why=AnalysisOptions(lesion_samples=1, landscape_points=3, landscape_limit=16,
                            landscape_directions=1, hessian_images=4, hessian_iterations=2,
                            path_images=2, path_samples=1))
    assert result.models == ("resnet8", "plain8")
    assert set(result.training.degradation.final["model"]) == {"resnet8", "plain8"}
    assert set(result.training.why.tables.lesion_blocks["model"]) == {"resnet8", "plain8"}
    assert (tmp_path / "compare-resnet8-vs-plain8.html").exists()
    assert all(torch.equal(before[k], v) for k, v in residual.state_dict().items())
    assert resolve("resnet8").is_zoo  # the module's label shadowed the name only inside


def test_gradients_of_a_plain_twin_see_its_blocks():
    import math

    analysis = rp.GradientAnalysis("plain:resnet8", batch_size=4, seeds=(0,))
    blocks = analysis.by_block()
    assert blocks["block"].tolist() == ["layer1.0", "layer2.0", "layer3.0"]
    assert blocks["act_grad_norm"].notna().all()
    assert math.isfinite(analysis.by_model()["grad_ratio_first_last"].item())


def test_lesions_on_the_graph_equal_the_zoos_own_for_every_block():
    from resnet_probe.analysis.lesion import block_table, lesioned
    from resnet_probe.sources.surgery import lesioned_graph

    torch.manual_seed(0)
    model = build_model("resnet20").eval()
    x = torch.randn(3, 3, 32, 32)
    for row in block_table(model):  # option A: zero-pad shortcuts at the downsampling blocks
        with torch.no_grad():
            on_graph = lesioned_graph(model, [row["block"]])(x)
            with lesioned(model, [row["block"]]) as deleted:  # the zoo's: forward patched
                assert torch.equal(on_graph, deleted(x)), row


def test_a_plain_twins_lesions_and_responses_match_the_zoos_plain_net():
    from resnet_probe.analysis.lesion import block_table, lesioned
    from resnet_probe.analysis.responses import layer_responses

    torch.manual_seed(0)
    twin = resolve("plain:resnet20").build().eval()
    plain = build_model("plain20").eval()
    plain.load_state_dict(twin.state_dict(), strict=True)
    refusals = lambda net: [(r["block"], r["not_deletable_because"] is None)  # noqa: E731
                            for r in block_table(net)]
    assert refusals(twin) == refusals(plain)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), lesioned(twin, ["layer2.1"]) as a, lesioned(plain, ["layer2.1"]) as b:
        assert torch.equal(a(x), b(x))
    ours = [(r["layer"], r["response_std"]) for r in layer_responses(twin, x)]
    theirs = [(r["layer"], r["response_std"]) for r in layer_responses(plain, x)]
    assert ours == theirs


@pytest.mark.slow
def test_compare_a_user_model_with_its_plain_twin_on_one_channel(invoke, user_file, tmp_path):
    result = invoke("compare", f"{user_file}:build", f"plain:{user_file}:build",
                    "--in-channels", "1", "--input-size", "28", "--no-latency",
                    "--train-steps", "30", "--seeds", "0", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "report written (training in progress" in result.stderr  # the early report
    data = next(tmp_path.glob("compare-*-data"))
    assert result.stdout.splitlines()[0] == f"report: {data.parent / data.name[:-5]}.html"
    summary = json.loads((data / "summary.json").read_text())
    assert [row["params"] for row in summary] == [USER_PARAMS, USER_PARAMS]
    lesions = json.loads((data / "lesion_blocks.json").read_text())
    assert {row["block"] for row in lesions} == {"blocks.0", "blocks.1"}


def test_structure_discovery_leaves_batch_norm_statistics_alone():
    model = build_model("resnet8")  # train mode, as built
    before = {k: v.clone() for k, v in model.state_dict().items()}
    discover_structure(model, torch.randn(4, 3, 32, 32))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_foreign_models_traits_are_found_once_per_source(user_file, monkeypatch):
    """A MODEL is resolved once; its traits (depth, shortcuts) need one build, kept on the
    resolved source."""
    builds = []
    real_build = ModelSource.build
    monkeypatch.setattr(ModelSource, "build",
                        lambda *args, **kwargs: builds.append(1) or real_build(*args, **kwargs))
    source = resolve(f"{user_file}:build", 1, 28)
    assert source.traits() == source.traits() == (6, True)
    assert source.traits().depth == 6 and source.traits().shortcut is True
    assert len(builds) == 1


def test_a_user_models_backward_goes_to_each_conv(user_file):
    """Each conv's backward is its input and weight gradients, each the size of its forward;
    the stem's input needs no gradient."""
    result = count_costs(f"{user_file}:build", input_size=28, in_channels=1)
    convs = {row["module"]: row for row in result.modules if row["type"] == "Conv2d"}
    assert convs["stem"]["backward_flops"] == 2 * STEM_MACS
    assert [convs[name]["backward_flops"] for name in convs if name != "stem"] == \
        [4 * BLOCK_CONV_MACS] * 4


def test_a_graph_surgery_twin_gets_its_backward_per_module():
    """plain:resnet50 is an fx graph (its block-output markers call view_as): the shape pass
    follows it, reproduces FlopCounterMode's count, and gives every row plain50's backward."""
    twin = count_costs("plain:resnet50")
    zoo = {row["module"]: row["backward_flops"] for row in count_costs("plain50").modules}
    rows = {row["module"]: row["backward_flops"] for row in twin.modules
            if row["type"] == "Conv2d"}
    assert rows and all(value is not None for value in rows.values())
    assert rows == {name: zoo[name] for name in rows}
    assert twin.summary["backward_flops"] == count_costs("plain50").summary["backward_flops"]


def test_user_code_that_exits_or_raises_is_named_without_a_traceback(invoke, tmp_path):
    (tmp_path / "exits.py").write_text("def build():\n    import sys\n    sys.exit(3)\n")
    (tmp_path / "raises.py").write_text(
        "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n"
        "        raise KeyError('x')\ndef build():\n    return M()\n")
    exits = invoke("flops", f"{tmp_path}/exits.py:build")
    assert exits.exit_code == 2 and "Traceback" not in exits.stderr
    assert "its code called sys.exit(3) while building the model" in exits.stderr
    raises = invoke("flops", f"{tmp_path}/raises.py:build")
    assert raises.exit_code == 2 and "Traceback" not in raises.stderr
    assert "fails on a 1x3x224x224 input during counting its operators (KeyError: 'x')" \
        in raises.stderr


@pytest.mark.parametrize("model, kind", [
    ("resnet8", SourceKind.ZOO),
    ("cifar[layers=1-1-1]", SourceKind.ZOO),
    ("plain:resnet8", SourceKind.PLAIN),
    ("{file}:build", SourceKind.FACTORY),
])
def test_every_model_form_resolves_to_its_kind(user_file, model, kind):
    assert resolve(model.format(file=user_file), 1, 28).kind is kind


def test_a_module_given_to_the_api_is_of_kind_module():
    assert resolve(nn.Linear(2, 2)).kind is SourceKind.MODULE


def test_a_kind_is_written_to_records_and_tables_as_the_text_it_always_was(user_file):
    """A StrEnum: json and the count summary's family/design columns hold the plain text."""
    assert json.dumps([SourceKind.ZOO, SourceKind.PLAIN]) == '["zoo", "plain"]'
    summary = count_costs(f"{user_file}:build", in_channels=1, input_size=28,
                          structure=False).summary
    assert type(summary["family"]) is str and summary["family"] == "factory"
    assert type(summary["design"]) is str and summary["design"] == "factory"


def test_a_kind_given_as_its_text_is_taken_as_the_member():
    assert ModelSource("net", "module", module=nn.Linear(1, 1)).kind is SourceKind.MODULE


def test_a_model_source_of_an_unknown_kind_is_refused_naming_the_kinds():
    with pytest.raises(SourceError, match="unknown source kind 'zooo'; the kinds are zoo, "
                                          "torchvision, timm, factory, module, plain"):
        ModelSource("resnet8", "zooo")  # type: ignore[arg-type]
