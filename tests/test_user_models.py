"""Users' own models, each written in its own style (tests/user_models/*.py, loaded as
FILE.py:build), through the plain twin: the twin is right or refuses.

For each model, counted by hand: the parameters and MACs of the projections the twin must
drop, and the elementwise work of the joins (one unit per output element of each add, and of
each projection's BN). Sizes: every image model takes 1x3x32x32 here.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import resnet_probe as rp
from resnet_probe.measure.costs import count_costs
from resnet_probe.sources import InputSpec, resolve
from resnet_probe.sources.surgery import SurgeryError, plain_twin, residual_adds

USER_MODELS = Path(__file__).parent / "user_models"
TOKENS = ("input_ids=2x16:int64[0,1000)", "attention_mask=2x16:bool")


@dataclass(frozen=True)
class Case:
    name: str
    projection_params: int
    projection_macs: int  # convention (a): the projections' conv MACs
    elementwise: int  # convention (b) on top: the projections' BN and the adds, 1 per element
    inputs: tuple[str, ...] = ()  # --input, for a forward that does not take one image

    @property
    def text(self) -> str:
        return f"{USER_MODELS / self.name}.py:build"

    def source(self, plain: str = ""):
        spec = InputSpec.parse(list(self.inputs)) if self.inputs else None
        return resolve(f"{plain}{self.text}", input_size=None if spec else 32, inputs=spec)

    def flags(self) -> list[str]:
        return [f for text in self.inputs for f in ("--input", text)] if self.inputs \
            else ["--input-size", "32"]


CASES = [
    # Blocks at 32x32 (16 ch), 16x16 (32 ch), 8x8 (64 ch); two nn.Sequential projections.
    Case("sequential_shortcut",
         projection_params=(16 * 32 + 2 * 32) + (32 * 64 + 2 * 64),  # 576 + 2,176 = 2,752
         projection_macs=16 * 32 * 16 * 16 + 32 * 64 * 8 * 8,  # 131,072 * 2 = 262,144
         # BN: 32*16*16 + 64*8*8 = 12,288; adds: 16*32*32 + 32*16*16 + 64*8*8 = 28,672
         elementwise=(32 * 16 * 16 + 64 * 8 * 8) + (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)),
    # One functional projection: a bare 32x16x1x1 parameter, F.conv2d at stride 2.
    Case("functional_projection",
         projection_params=32 * 16,  # 512
         projection_macs=16 * 32 * 16 * 16,  # 131,072
         elementwise=16 * 32 * 32 + 32 * 16 * 16),  # adds only: 16,384 + 8,192 = 24,576
    # torch.add; the projection two sibling modules (1x1 conv 16 -> 32, BN 32).
    Case("torch_add",
         projection_params=16 * 32 + 2 * 32,  # 576
         projection_macs=16 * 32 * 16 * 16,  # 131,072
         elementwise=32 * 16 * 16 + (16 * 32 * 32 + 32 * 16 * 16 + 32 * 16 * 16)),  # 40,960
    # out += identity, torchvision's downsample: the same net as sequential_shortcut.
    Case("inplace_add",
         projection_params=(16 * 32 + 2 * 32) + (32 * 64 + 2 * 64),  # 2,752
         projection_macs=16 * 32 * 16 * 16 + 32 * 64 * 8 * 8,  # 262,144
         elementwise=(32 * 16 * 16 + 64 * 8 * 8) + (16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8)),
    # out.add_(lambda(x)): option A shortcuts subsample and zero-pad, no parameters.
    Case("add_underscore", projection_params=0, projection_macs=0,
         elementwise=16 * 32 * 32 + 32 * 16 * 16 + 32 * 16 * 16),  # adds: 32,768
    # Pre-activation: the projection a bare 1x1 conv on the shared BN-ReLU.
    Case("preact",
         projection_params=16 * 32,  # 512
         projection_macs=16 * 32 * 16 * 16,  # 131,072
         elementwise=16 * 32 * 32 + 32 * 16 * 16),  # adds: 24,576
    # SE blocks: the gate multiplies the branch; the projection conv + BN.
    Case("se_block",
         projection_params=16 * 32 + 2 * 32,  # 576
         projection_macs=16 * 32 * 16 * 16,  # 131,072
         elementwise=32 * 16 * 16 + (32 * 16 * 16 + 32 * 16 * 16)),  # BN 8,192 + adds 16,384
    # Two adds per block (attention, MLP) on 16 tokens of width 32, two blocks; no projection.
    Case("two_adds", projection_params=0, projection_macs=0,
         elementwise=4 * 16 * 32),  # 2,048
    # Token ids and a mask (batch 2, 16 tokens, width 32), two blocks of two adds.
    Case("tiny_transformer", projection_params=0, projection_macs=0,
         elementwise=4 * 2 * 16 * 32, inputs=TOKENS),  # 4,096
    # U-Net: 1x1 projections wherever a block changes the channels (no bias, no BN).
    Case("unet",
         # enc1 3->16, enc2 16->32, middle 32->64, dec2 64->32, dec1 32->16: 5,168
         projection_params=3 * 16 + 16 * 32 + 32 * 64 + 64 * 32 + 32 * 16,
         # at 32x32, 16x16, 8x8, 16x16, 32x32: 49,152 + 131,072 * 2 + 524,288 * 2 = 1,359,872
         projection_macs=(3 * 16 * 32 * 32 + 16 * 32 * 16 * 16 + 32 * 64 * 8 * 8
                          + 64 * 32 * 16 * 16 + 32 * 16 * 32 * 32),
         # adds: 16,384 + 8,192 + 4,096 + 8,192 + 16,384 = 53,248
         elementwise=16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8 + 32 * 16 * 16 + 16 * 32 * 32),
]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _example(case: Case):
    """Two different inputs, as the forward takes them."""
    generator = torch.Generator().manual_seed(0)
    if case.inputs:
        ids = torch.randint(0, 1000, (2, 16), generator=generator)
        mask = torch.ones(2, 16, dtype=torch.bool)
        mask[1, 10:] = False  # the second sequence is padded
        return (), {"input_ids": ids, "attention_mask": mask}
    return (torch.randn(2, 3, 32, 32, generator=generator),), {}


@pytest.fixture(scope="module")
def built():
    """(original, twin) per case, built once with structure (the twin's forward checked)."""
    made = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dead twin would warn: none of these is
        for case in CASES:
            torch.manual_seed(0)
            made[case.name] = (case.source().build(structure=False).eval(),
                               case.source("plain:").build().eval())
    return made


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_twin_drops_exactly_the_projections_parameters(built, case):
    original, twin = built[case.name]
    assert _params(original) - _params(twin) == case.projection_params
    assert twin.twin_report.removed_parameters == case.projection_params
    assert not twin.twin_report.partial


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_residual_add_remains_in_the_twins_graph(built, case):
    """The rule finds no residual add in the twin, and the only adds left are the ones the
    original's analysis kept as not shortcuts (a position embedding)."""
    original, twin = built[case.name]
    from resnet_probe.sources.surgery import trace_with_blocks
    from resnet_probe.sources.surgery.adds import is_add

    adds, kept = residual_adds(trace_with_blocks(original))
    assert adds and not any(k.residual for k in kept)
    left, _ = residual_adds(twin)
    assert left == []
    remaining = [n.name for n in twin.graph.nodes if is_add(n)]
    assert len(remaining) == len(kept)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_repeated_eval_forwards_of_the_twin_are_identical(built, case):
    _, twin = built[case.name]
    args, kwargs = _example(case)
    with torch.no_grad():
        first, again = twin(*args, **kwargs), twin(*args, **kwargs)
    assert torch.equal(first, again)
    assert torch.isfinite(first).all()
    assert not torch.allclose(first[0], first[1])  # a live twin: its input matters


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_twins_costs_drop_by_the_projections_and_the_adds(case):
    counted = count_costs(case.source(), structure=False).summary
    twin = count_costs(case.source("plain:"), structure=False).summary
    assert counted["params"] - twin["params"] == case.projection_params
    assert counted["macs"] - twin["macs"] == case.projection_macs
    assert counted["macs_with_elementwise"] - twin["macs_with_elementwise"] == \
        case.projection_macs + case.elementwise


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_plain_twin_goes_through_flops_and_show(invoke, case):
    result = invoke("flops", f"plain:{case.text}", *case.flags(), "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == f"plain:{case.text}" and row["params"] > 0
    shown = invoke("show", f"plain:{case.text}", *case.flags(), "--depth", "1")
    assert shown.exit_code == 0, shown.output
    assert "plain twin of" in shown.stdout


def test_the_unet_twin_keeps_its_concatenations_and_says_so(built, invoke):
    _, twin = built["unet"]
    report = twin.twin_report
    assert [c.inputs for c in report.concatenations] == [("up2", "enc2"), ("up1", "enc1")]
    assert len(report.removed) == 5  # every block's shortcut, the long skips kept
    shown = invoke("show", f"plain:{USER_MODELS / 'unet'}.py:build", "--input-size", "32",
                   "--depth", "1")
    assert "keeps 2 concatenations" in shown.stdout
    assert "cat joins up2 and enc2" in shown.stdout


def test_a_sequential_shortcut_is_found_whatever_module_holds_it(built):
    """Issue 35's cifarnet: a leaf nn.Sequential projection counts its own conv, so the
    body (two convs) is the branch and the projection the shortcut."""
    _, twin = built["sequential_shortcut"]
    removed = {add.block: add.shortcut_modules for add in twin.twin_report.removed}
    assert removed == {"layers.0": ("layers.0.shortcut",),
                       "layers.1": ("layers.1.shortcut",),
                       "layers.2": ("layers.2.shortcut",)}
    modules = dict(twin.named_modules())
    assert "layers.1.shortcut" not in modules and "layers.2.shortcut" not in modules
    assert "layers.1.body" in modules


def test_a_functional_projections_parameter_is_removed(built):
    _, twin = built["functional_projection"]
    (add,) = [a for a in twin.twin_report.removed if a.block == "block2"]
    assert add.shortcut_parameters == ("block2.projection",)
    assert "block2.projection" not in dict(twin.named_parameters())


SHARED = f"{USER_MODELS / 'shared_shortcut'}.py:build"


def test_a_shortcut_shared_across_scales_is_refused_naming_the_join(invoke):
    result = invoke("flops", f"plain:{SHARED}", "--input-size", "32")
    assert result.exit_code == 2
    assert "no plain twin of SharedShortcutNet" in result.stderr
    assert "the join add in the root" in result.stderr
    assert "proj" in result.stderr and "block2" in result.stderr
    assert "plain[partial]:" in result.stderr  # the way out, named


def test_surgery_refuses_the_shared_shortcut_in_python():
    model = resolve(SHARED).build(structure=False)
    with pytest.raises(SurgeryError, match="also read by block2"):
        plain_twin(model, torch.zeros(1, 3, 32, 32))


def test_a_partial_twin_is_kept_and_labelled_partial(invoke):
    text = f"plain[partial]:{SHARED}"
    source = resolve(text, input_size=32)
    twin = source.build()
    report = twin.twin_report
    assert source.partial and report.partial and report.label == "partial plain twin"
    (problem,) = report.problems
    assert (problem.join, problem.block, problem.kept_add) == ("add", "", False)
    assert source.twin_report is report  # the tables read it from the source
    # The projection stays (block2 reads it): the add is gone, its 16*32 weights are not.
    original = resolve(SHARED).build(structure=False)
    assert _params(twin) == _params(original)
    result = invoke("flops", text, "--input-size", "32", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == text
    assert "partial plain twin of SharedShortcutNet" in result.stderr
    shown = invoke("show", text, "--input-size", "32", "--depth", "1")
    assert shown.exit_code == 0 and "partial plain twin" in shown.stdout


def test_unknown_plain_options_are_refused(invoke):
    result = invoke("flops", f"plain[fast]:{SHARED}")
    assert result.exit_code == 2
    assert "reinit and partial" in result.stderr


def test_plain_options_combine():
    source = resolve(f"plain[reinit,partial]:{SHARED}")
    assert source.reinit and source.partial


def test_one_model_that_cannot_be_twinned_fails_its_own_row(invoke):
    result = invoke("flops", f"plain:{SHARED}", SHARED, "--input-size", "32",
                    "--format", "json")
    assert result.exit_code == 0
    failed, counted = sorted(json.loads(result.stdout), key=lambda r: r["error"] is None)
    assert failed["model"] == f"plain:{SHARED}" and failed["params"] is None
    assert "no plain twin" in failed["error"]
    assert counted["model"] == SHARED and counted["params"] == 34_106
    assert isinstance(counted["params"], int)  # integers stay integers beside the blanks
    assert f"error: plain:{SHARED}: no plain twin" in result.stderr


def test_the_flops_table_names_a_failed_rows_error(invoke):
    result = invoke("flops", f"plain:{SHARED}", SHARED, "--input-size", "32")
    assert result.exit_code == 0
    # conventions are rows, models columns: the failed model's column holds its error
    lines = result.stdout.splitlines()
    assert any(f"plain:{SHARED}" in line for line in lines if line.startswith("model"))
    errors = " ".join(line for line in lines if line.startswith("error"))  # one per block
    assert "no plain twin of SharedShortcutNet" in errors


def test_flops_exits_with_the_error_when_every_row_failed(invoke):
    result = invoke("flops", f"plain:{SHARED}", f"plain:{SHARED}", "--input-size", "32")
    assert result.exit_code == 2
    assert "no plain twin" in result.stderr


def test_rp_flops_gives_a_failed_model_its_own_row():
    df = rp.flops([f"plain:{SHARED}", "resnet8"])
    rows = df.set_index("model")
    assert rows.loc["resnet8", "params"] == count_costs("resnet8").summary["params"]
    assert pd_isna(rows.loc["resnet8", "error"])
    assert "no plain twin" in rows.loc[f"plain:{SHARED}", "error"]
    with pytest.raises(SurgeryError, match="no plain twin"):
        rp.flops([f"plain:{SHARED}"])


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_a_model_with_no_residual_add_is_still_refused(tmp_path, invoke):
    path = tmp_path / "no_adds.py"
    path.write_text("from torch import nn\n\n\ndef build(num_classes=10):\n"
                    "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(),\n"
                    "                         nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
                    "                         nn.Linear(8, num_classes))\n")
    result = invoke("flops", f"plain:{path}:build", "--input-size", "32")
    assert result.exit_code == 2
    assert "has no residual addition" in result.stderr


PASSED_IN = '''
import torch
from torch import nn


class Join(nn.Module):
    """Adds a shortcut it is given to its own branch of three convs."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(*(nn.Conv2d(channels, channels, 3, padding=1)
                                    for _ in range(3)))

    def forward(self, x, skip):
        return torch.relu(self.body(x) + skip)


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.side = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.join = Join(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.fc(self.join(x, self.side(x)).mean((2, 3)))


def build(num_classes=10):
    return Net(num_classes)
'''


def test_a_join_whose_shortcut_is_passed_in_through_two_layers_is_refused(tmp_path, invoke):
    """The block adds a tensor computed outside it through two convs: not a projection, so
    the rule cannot say which side is the shortcut, and a twin would keep a residual-like
    join. Refused naming it; plain[partial]: keeps it, and says the twin still adds."""
    path = tmp_path / "passed_in.py"
    path.write_text(PASSED_IN)
    result = invoke("flops", f"plain:{path}:build", "--input-size", "32")
    assert result.exit_code == 2
    assert "the join add in join" in result.stderr
    assert "computed outside join" in result.stderr and "2 weighted layers" in result.stderr
    twin = resolve(f"plain[partial]:{path}:build", input_size=32).build()
    (problem,) = twin.twin_report.problems
    assert problem.kept_add and problem.block == "join"
    from resnet_probe.sources.surgery import has_shortcuts

    assert has_shortcuts(twin)  # a partial twin that still adds is not called plain


# --- inputs as the model takes them, through every command that runs it --------------------

TRANSFORMER = CASES[[c.name for c in CASES].index("tiny_transformer")]
UNET = CASES[[c.name for c in CASES].index("unet")]
PAIR = CASES[0]  # sequential_shortcut: a CIFAR ResNet of three blocks


def _json(text: str) -> list[dict]:
    return json.loads(text[text.index("["):])


def test_the_transformer_is_timed_on_its_ids_and_mask(invoke):
    result = invoke("latency", TRANSFORMER.text, *TRANSFORMER.flags(), "--threads", "1",
                    "--repeats", "2", "--warmup", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = _json(result.stdout)
    # the batch is the --input tensors' own (2), and the row names what was fed
    assert row["batch_size"] == 2 and row["input_size"] is None
    assert row["inputs"] == " ".join(TOKENS)
    assert row["forward_ms"] > 0 and row["backward_ms"] > 0


def test_the_transformers_gradients_are_probed_on_its_inputs(invoke):
    result = invoke("gradients", TRANSFORMER.text, *TRANSFORMER.flags(), "--seeds", "0",
                    "--batch-size", "4", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = _json(result.stdout)
    assert row["input"] == "--input" and row["loss"] == "cross-entropy"
    assert "input_ids=4x16:int64[0,1000) attention_mask=4x16:bool" in result.stderr
    assert row["grad_ratio_first_last"] > 0  # its two encoder layers, found on the tensors


def test_a_non_classifier_is_probed_with_the_surrogate_loss_it_names(invoke):
    result = invoke("gradients", UNET.text, "--input-size", "32", "--seeds", "0",
                    "--batch-size", "2", "--shatter-points", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = _json(result.stdout)
    assert row["loss"] == "surrogate" and row["grad_ratio_first_last"] > 0
    assert "fixed random projection of the output" in result.stderr


def test_gradient_analysis_takes_a_dict_of_inputs_and_says_when_the_loss_is_a_surrogate():
    from resnet_probe.measure.gradients import probe_loss

    unet = UNET.source().build()
    analysis = rp.GradientAnalysis(unet, torch.randn(2, 3, 32, 32), seeds=(0,))
    assert analysis.by_model()["loss"].item() == "surrogate"
    assert any("fixed random projection" in note for note in analysis.notes)
    # the surrogate is <P, f(x)> / N: for f(x) = ones, the sum of P over one example
    output = torch.ones(2, 3, 4)
    loss, kind = probe_loss(output, torch.zeros(2, dtype=torch.long), seed=7)
    expected = torch.randn(3, 4, generator=torch.Generator().manual_seed(7)).sum()
    assert kind == "surrogate" and torch.isclose(loss, expected)
    (_, kwargs) = _example(TRANSFORMER)
    model = TRANSFORMER.source().build()
    assert rp.GradientAnalysis(model, kwargs, seeds=(0,)).by_model()["loss"].item() == \
        "cross-entropy"


def test_latency_analysis_and_plain_twin_take_a_dict_of_inputs():
    from resnet_probe.sources.surgery import plain_twin

    (_, kwargs) = _example(TRANSFORMER)
    model = TRANSFORMER.source().build(structure=False).eval()
    row = rp.LatencyAnalysis(model, kwargs, repeats=2, warmup=0, threads=1).by_model()
    assert row["inputs"].item() == "input_ids=2x16:int64[0,1000) attention_mask=2x16:bool" \
        or row["inputs"].item().startswith("input_ids=2x16:int64[")
    twin = plain_twin(model, kwargs)
    assert not residual_adds(twin)[0] and twin(**kwargs).shape == (2, 2)


def test_the_transformer_goes_through_compare_on_its_inputs(invoke, tmp_path):
    result = invoke("compare", TRANSFORMER.text, f"plain:{TRANSFORMER.text}",
                    *TRANSFORMER.flags(), "--threads", "1", "--no-why", "--out",
                    str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    data = next(tmp_path.glob("*-data"))
    costs = json.loads((data / "costs_summary.json").read_text())
    timed = json.loads((data / "latency_models.json").read_text())
    fed = " ".join(TOKENS)
    assert [row["inputs"] for row in costs] == [fed, fed]  # counted on its tensors
    assert [row["inputs"] for row in timed] == [fed, fed]  # and timed on them
    assert {row["threads"] for row in timed} == {1}
    page = next(tmp_path.glob("compare-*.html")).read_text()
    assert "not trained: the training section classifies digit images" in page


def test_compare_on_a_user_pair_gives_a_twin_verdict_at_one_input_size(invoke, tmp_path):
    """The model and its plain twin: counted, timed, probed and trained at 32x32, the size
    training takes (not a foreign model's default 224), the why analyses run on the foreign
    nets, and the verdict is the twin's."""
    result = invoke("compare", PAIR.text, f"plain:{PAIR.text}", "--train-steps", "14",
                    "--threads", "1", "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    assert "twin verdict: " in result.stdout and "needs a plain and a residual" \
        not in result.stdout
    data = next(tmp_path.glob("*-data"))

    def table(name: str) -> list[dict]:
        return json.loads((data / f"{name}.json").read_text())

    assert {row["input_size"] for row in table("costs_summary")} == {32}
    assert {row["input_size"] for row in table("latency_models")} == {32}
    assert table("train_history")
    page = " ".join(re.sub(r"<[^>]+>", " ", next(tmp_path.glob("compare-*.html")).read_text())
                    .split())
    assert re.search(r"Data: [^.]*resized to 32x32", page)  # trained at 32x32
    assert "10 classes, 32x32 input" in page  # and probed at it
    assert "Does the plain twin train worse?" in page
    # resnet8-sized at 32x32: the counts are those of a 32x32 image (hand count, flops test)
    macs = {row["model"]: row["macs"] for row in table("costs_summary")}
    assert macs[PAIR.text] - macs[f"plain:{PAIR.text}"] == PAIR.projection_macs
    verdict = json.loads((data / "verdict.json").read_text())
    assert verdict["twin_verdict"]["model"] == PAIR.text
    assert verdict["twin_verdict"]["verdict"] in {"the twin trains worse",
                                                   "the twin trains better",
                                                   "no measurable difference", "inconclusive"}
    assert table("lesion_blocks")  # the why analyses ran on the user's nets


def test_the_cost_gate_counts_the_tensors_it_is_given_as_they_are(tmp_path):
    """A forward that needs sorted lengths (as pack_padded_sequence does) is counted on the
    tensors given, not on values redrawn from their range."""
    from resnet_probe.testing import assert_costs

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(4, 2)

        def forward(self, x, lengths):
            if not bool((lengths[:-1] >= lengths[1:]).all()):
                raise ValueError("lengths must be sorted, longest first")
            return self.head(x.sum(1))

    inputs = {"x": torch.zeros(3, 5, 4), "lengths": torch.tensor([5, 3, 1])}
    path = tmp_path / "costs.json"
    result = assert_costs(Packed(), inputs, baseline=path, name="packed", update=True)
    assert result.summary["macs"] == 3 * 4 * 2  # the head on 3 sequences: 24
    assert_costs(Packed(), inputs, baseline=path, name="packed")


def test_compare_refuses_input_tensors_beside_an_input_size(invoke, tmp_path):
    result = invoke("compare", TRANSFORMER.text, f"plain:{TRANSFORMER.text}",
                    *TRANSFORMER.flags(), "--input-size", "32", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "--input replaces --input-size and --in-channels" in result.output
    assert not list(tmp_path.iterdir())  # refused before anything ran
