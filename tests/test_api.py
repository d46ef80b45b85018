"""The Python API as a notebook user meets it: every result shows its real numbers (repr and
HTML), escapes what it names, draws the report's figure, and every setting is a typed keyword
parameter whose default is the config's own."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from torch import fx

import resnet_probe as rp
from resnet_probe.sources import resolve

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
# torchvision's published resnet18: 11,689,512 params, 1.814 GMACs at 224x224
RESNET18_PARAMS = "11,689,512"
RESNET18_MACS = "1,814,073,344"


@pytest.fixture(scope="module")
def resnet18_counts() -> rp.FlopAnalysis:
    return rp.FlopAnalysis(rp.build_model("resnet18"), torch.zeros(1, 3, 224, 224))


@pytest.fixture(scope="module")
def timed() -> rp.LatencyAnalysis:
    return rp.LatencyAnalysis(["resnet8", "plain8"], repeats=3, warmup=1, backward=False)


@pytest.fixture(scope="module")
def gradients() -> rp.GradientAnalysis:
    return rp.GradientAnalysis(["resnet8", "plain8"], batch_size=4, seeds=(0, 1))


def _legend_names(fig: go.Figure) -> list[str]:
    """One entry per model: the traces a legend lists (bands and facets repeat a model)."""
    return list(dict.fromkeys(t.name for t in fig.data if t.showlegend is not False))


# --- repr and HTML hold the real numbers ---------------------------------------------------

def test_a_flop_analysis_repr_shows_resnet18s_published_count(resnet18_counts):
    text = repr(resnet18_counts)
    assert text.startswith("FlopAnalysis of resnet18: 1x3x224x224")  # not <... at 0x...>
    assert RESNET18_PARAMS in text and RESNET18_MACS in text
    assert "(c) FLOPs = 2 x (a)" in text and "3,628,146,688" in text  # 2 x 1,814,073,344


def test_a_flop_analysis_html_is_a_table_of_labelled_numbers(resnet18_counts):
    html = resnet18_counts._repr_html_()
    assert "<table" in html
    assert f'<td class="text">parameters</td><td class="num">{RESNET18_PARAMS}</td>' in html
    assert "macs_fvcore_default" not in html  # readable labels, not column names
    assert "fvcore default" in html


def test_latency_repr_and_html_show_each_models_median(timed):
    medians = {row["model"]: row["forward_ms"] for row in timed.result.models}
    from resnet_probe.report.html import format_value

    for shown in (repr(timed), timed._repr_html_()):
        for model, median in medians.items():
            assert model in shown and format_value(median) in shown
        assert "forward ms (median), 95% interval" in shown
        assert "forward_ms" not in shown


def test_gradient_repr_and_html_show_each_ratio(gradients):
    from resnet_probe.report.html import format_value

    rows = gradients.by_model().set_index("model")
    for shown in (repr(gradients), gradients._repr_html_()):
        for model in ("resnet8", "plain8"):
            assert format_value(rows.loc[model, "grad_ratio_first_last"]) in shown
        assert "grad-norm ratio first/last block" in shown
        assert "grad_ratio_first_last" not in shown


def test_a_twin_shows_what_was_removed_and_is_still_a_module():
    model = rp.build_model("resnet18")
    twin = rp.plain_twin(model, torch.zeros(1, 3, 224, 224))
    assert isinstance(twin, rp.PlainTwin) and isinstance(twin, fx.GraphModule)
    # resnet18's three projection shortcuts: 3 x (1x1 conv + BN) = 173,824 params
    # (128*64 + 2*128) + (256*128 + 2*256) + (512*256 + 2*512)
    assert 128 * 64 + 2 * 128 + 256 * 128 + 2 * 256 + 512 * 256 + 2 * 512 == 173_824
    for shown in (repr(twin), twin._repr_html_()):
        assert "8 residual additions removed" in shown
        assert RESNET18_PARAMS in shown and "11,515,688" in shown
        assert "173,824 params were in projection shortcuts" in shown
    assert "(conv1): Conv2d(3, 64" in repr(twin)  # the module tree still follows
    assert twin(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_compare_shows_the_verdict_and_the_summary(tiny_compare):
    from resnet_probe.report.html import esc
    from resnet_probe.report.words import verdict_line

    result, _ = tiny_compare
    assert isinstance(result, rp.CompareResult) and isinstance(result, rp.Comparison)
    line = verdict_line(result.summary.verdict)
    params = result.summary.headline.set_index("model")["params"]
    html, text = result._repr_html_(), repr(result)
    assert esc(line) in html and line in text
    # counts in one unit per column (K, M or G), as the console shows them
    prefix = re.search(r"params \((K|M|G)\)", text).group(1)
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}[prefix]
    for model in ("resnet8", "plain8", "resnet14"):
        shown = f"{params[model] / scale:.4g}"
        assert shown in html and shown in text
    assert "<table" in html and "final training error" in html


def test_a_comparison_is_written_as_any_compare_result(tmp_path):
    from resnet_probe import report

    result = rp.compare(["resnet8", "plain8"], out=None, latency=None, gradients=None,
                        train=None)
    page = report.write(result, tmp_path)
    assert "resnet8" in page.read_text()
    assert "latency skipped" in repr(result)


# --- every string escaped ------------------------------------------------------------------

def test_a_hostile_model_name_is_text_in_a_flop_analysis():
    html = rp.FlopAnalysis(rp.build_model("resnet8"), name=HOSTILE)._repr_html_()
    assert ESCAPED in html and "<script>" not in html


def test_a_hostile_model_name_is_text_in_a_latency_analysis():
    source = resolve(rp.build_model("resnet8"), name=HOSTILE)
    html = rp.LatencyAnalysis([source], repeats=2, warmup=0, backward=False)._repr_html_()
    assert ESCAPED in html and "<script>" not in html


def test_a_hostile_model_name_is_text_in_a_gradient_analysis():
    source = resolve(rp.build_model("resnet8"), name=HOSTILE)
    html = rp.GradientAnalysis([source], batch_size=4, seeds=(0,))._repr_html_()
    assert ESCAPED in html and "<script>" not in html


def test_a_hostile_model_name_is_text_in_a_twin():
    html = rp.plain_twin(rp.build_model("resnet8"), name=HOSTILE)._repr_html_()
    assert ESCAPED in html and "<script>" not in html


def test_a_hostile_model_name_is_text_in_a_comparison():
    source = resolve(rp.build_model("resnet8"), name=HOSTILE)
    result = rp.compare([source, "plain8"], out=None, latency=None, gradients=None,
                        train=None)
    html = result._repr_html_()
    assert ESCAPED in html and "<script>" not in html


# --- .figure() is the report's figure, one trace per model ----------------------------------

def test_a_flop_analysis_figure_has_its_model(resnet18_counts):
    fig = resnet18_counts.figure()
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["resnet18"]
    assert sorted(fig.data[0].y) == sorted(
        v / 1e9 for v in (1_814_073_344, 1_814_073_344, 3_628_146_688)
        + tuple(resnet18_counts.summary()[c] for c in (
            "macs_fvcore_default", "macs_with_elementwise", "backward_flops")))


def test_a_latency_figure_has_one_trace_per_model(timed):
    fig = timed.figure()
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["resnet8", "plain8"]  # forward only: one facet


def test_a_gradient_figure_has_one_line_per_model(gradients):
    fig = gradients.figure()
    assert isinstance(fig, go.Figure)
    assert sorted(_legend_names(fig)) == ["plain8", "resnet8"]


def test_a_comparison_figure_is_the_training_curves(tiny_compare):
    result, _ = tiny_compare
    fig = result.figure()
    assert isinstance(fig, go.Figure)
    assert "training error" in fig.layout.yaxis.title.text
    assert set(_legend_names(fig)) >= {"resnet8", "plain8", "resnet14"}


# --- by= and typed settings --------------------------------------------------------------

@pytest.mark.parametrize("function, accepted", [
    ("flops", "model, module, block, stage, operator"),
    ("latency", "model, difference, layer, block, stage, sample, sweep"),
    ("gradients", "model, block, stage, layer, shattering"),
])
def test_a_bad_by_names_itself_and_the_accepted_views_before_measuring(function, accepted,
                                                                        monkeypatch):
    import resnet_probe.measure.costs
    import resnet_probe.measure.gradients
    import resnet_probe.measure.latency

    def never(*args, **kwargs):
        raise AssertionError("measured before checking by=")

    for module, name in ((resnet_probe.measure.costs, "count_costs"),
                         (resnet_probe.measure.latency, "measure_latency"),
                         (resnet_probe.measure.gradients, "measure_gradients")):
        monkeypatch.setattr(module, name, never)
    with pytest.raises(ValueError, match=rf"unknown by='layers'; choose one of: {accepted}$"):
        getattr(rp, function)("resnet8", by="layers")


def test_by_is_typed_as_the_views_it_accepts():
    from typing import get_args

    from resnet_probe import views

    assert inspect.signature(rp.flops).parameters["by"].annotation == "CostView"
    assert get_args(views.CostView) == views.COST_VIEWS
    assert get_args(views.LatencyView) == views.LATENCY_VIEWS
    assert get_args(views.GradientView) == views.GRADIENT_VIEWS


PUBLIC_ENTRIES = ["flops", "latency", "gradients", "compare", "plain_twin", "FlopAnalysis",
                  "LatencyAnalysis", "GradientAnalysis"]


@pytest.mark.parametrize("name", PUBLIC_ENTRIES)
def test_no_public_entry_hides_its_settings_in_kwargs(name):
    parameters = inspect.signature(getattr(rp, name)).parameters.values()
    assert not [p.name for p in parameters if p.kind is inspect.Parameter.VAR_KEYWORD]


def _defaults(config_type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(config_type)}


def _keywords(function, skip: set[str]) -> dict:
    return {p.name: p.default for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in skip}


@pytest.mark.parametrize("function", [rp.latency, rp.LatencyAnalysis])
def test_latency_settings_are_latency_configs_fields_with_its_defaults(function):
    assert _keywords(function, {"inputs"}) == _defaults(rp.LatencyConfig)


def test_gradient_settings_are_gradient_configs_fields_with_its_defaults():
    assert _keywords(rp.gradients, {"inputs"}) == _defaults(rp.GradientConfig)
    # the analysis object leaves the costly shattering grid off unless asked
    assert _keywords(rp.GradientAnalysis, {"inputs"}) == {**_defaults(rp.GradientConfig),
                                                      "shatter_points": 0}


def test_compare_settings_are_compare_options_fields_with_its_defaults():
    keywords = _keywords(rp.compare, {"options", "progress", "command_line", "in_channels",
                                      "inputs"})
    assert keywords == _defaults(rp.CompareOptions)


def test_compare_applies_a_changed_keyword_on_top_of_options():
    options = rp.CompareOptions(latency=None, gradients=None, train=None, why=None)
    result = rp.compare(["resnet8", "plain8"], out=None, options=options, input_size=16)
    assert result.costs.summary["input_size"].tolist() == [16, 16]
    assert "latency skipped" in repr(result)


def test_the_result_and_config_types_are_exported():
    from resnet_probe.jobs.parts import CompareResult
    from resnet_probe.measure.latency import LatencyConfig

    assert rp.CompareResult is CompareResult and rp.LatencyConfig is LatencyConfig
    for name in ("CompareOptions", "GradientConfig", "TrainConfig", "AnalysisOptions",
                 "Comparison", "PlainTwin"):
        assert name in rp.__all__ and isinstance(getattr(rp, name), type)


def test_old_calls_still_work():
    rows = rp.flops(["resnet8"], 32, 1, "stage")
    assert isinstance(rows, pd.DataFrame) and rows["macs"].sum() == 12_239_488


def test_a_copied_twin_keeps_what_it_shows():
    import copy

    twin = rp.plain_twin(rp.build_model("resnet8"), torch.zeros(1, 3, 32, 32))
    copied = copy.deepcopy(twin)
    assert isinstance(copied, rp.PlainTwin)
    assert copied.residual_blocks == twin.residual_blocks == ["layer1.0", "layer2.0",
                                                               "layer3.0"]
    assert repr(copied).splitlines()[:4] == repr(twin).splitlines()[:4]
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(copied.eval()(x), twin.eval()(x))
