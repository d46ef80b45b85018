"""The compare, degradation and zoo reports: written, complete, and honest about conventions."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from resnet_probe.comparison import SUMMARY_COLUMNS

SECTION_ORDER = ["1. Summary", "2. Architecture side by side", "3. Parameters and MACs",
                 "4. Per-layer latency", "5. Gradient norms by depth", "6. Degradation",
                 "7. Why bottleneck blocks are cheaper", "8. Environment"]


def page_text(path) -> str:
    return path.read_text()


def test_compare_report_has_every_section_in_order(tiny_compare):
    result, out = tiny_compare
    html = page_text(result.report_path)
    positions = [html.index(title) for title in SECTION_ORDER]
    assert positions == sorted(positions)
    assert result.report_path == out / "compare-resnet8-vs-plain8-vs-resnet14.html"


def test_compare_report_names_every_convention(tiny_compare):
    result, _ = tiny_compare
    html = page_text(result.report_path)
    for convention in ("(a) conv+linear MACs, stride on 3x3 (v1.5)",
                       "(a) conv+linear MACs, stride on 1x1 (v1)",
                       "fvcore default", "(b) (a) + BN, ReLU, residual add, pooling",
                       "(c) FLOPs = 2 x (a)", "(d) backward conv+linear FLOPs, measured"):
        assert convention in html


def test_compare_tables_saved_as_csv_and_json(tiny_compare):
    result, out = tiny_compare
    data = out / "compare-resnet8-vs-plain8-vs-resnet14-data"
    for name, df in result.tables.items():
        assert (data / f"{name}.csv").exists(), name
        rows = json.loads((data / f"{name}.json").read_text())
        assert len(rows) == len(df), name
    reloaded = pd.read_csv(data / "layer_costs.csv")
    assert reloaded["macs"].sum() == result.tables["summary"]["macs"].sum()


def test_summary_deltas_against_the_first_model(tiny_compare):
    result, _ = tiny_compare
    deltas = result.tables["deltas"].set_index("model")
    summary = result.tables["summary"].set_index("model")
    assert deltas.loc["resnet8", "macs_delta_pct"] == 0
    expected = (summary.loc["plain8", "params"] - summary.loc["resnet8", "params"]) / \
        summary.loc["resnet8", "params"] * 100
    assert deltas.loc["plain8", "params_delta_pct"] == pytest.approx(expected)
    assert set(SUMMARY_COLUMNS) <= set(result.tables["summary"].columns)


def test_report_is_offline_and_tables_are_html(tiny_compare):
    result, out = tiny_compare
    html = page_text(result.report_path)
    assert '<script src="plotly.min.js"></script>' in html
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert not re.search(r"<script[^>]+src=\"https?://", html)
    assert html.count('<table class="data">') >= 10


def test_latency_section_says_cpu_never_gpu(tiny_compare):
    result, _ = tiny_compare
    html = page_text(result.report_path)
    assert "Measured on this machine's <b>CPU" in html
    section = html.split('id="latency"')[1].split("</section>")[0]
    # Text only: plotly's base64-encoded arrays in <script> can spell "GPU" by chance.
    visible = re.sub(r"<script.*?</script>", "", section, flags=re.DOTALL)
    assert "GPU" not in visible


def test_gradient_explanation_cites_measured_numbers(tiny_compare):
    result, _ = tiny_compare
    html = page_text(result.report_path)
    ratio = result.tables["gradient_models"].set_index("model").loc["plain8",
                                                                    "grad_ratio_first_last"]
    assert "dy/dx = dF/dx + I" in html and "Yang et al. (2019)" in html
    assert "outside that setting" in html  # the 1.21 rate is cited with its conditions
    assert f"{ratio:.4g}" in html


def test_inline_plotly_flag(tmp_path):
    from resnet_probe import compare

    result = compare(["resnet8", "plain8"], out=tmp_path, inline_plotly=True, latency=None,
                     gradients=None, train=None)
    html = page_text(result.report_path)
    assert "plotly.min.js" not in html.split("</head>")[0] or "src=" not in html.split(
        "</head>")[0]
    assert len(html) > 1_000_000
    assert "Latency was not measured" in html and "No training was run" in html


def test_index_links_every_report(tiny_compare):
    result, out = tiny_compare
    index = page_text(out / "index.html")
    assert 'href="compare-resnet8-vs-plain8-vs-resnet14.html"' in index


def test_degradation_report(tiny_degradation):
    html = page_text(tiny_degradation / "degradation.html")
    for text in ("Training error (train-mode minibatch", "Eval-mode error",
                 "Degradation gap", "Recipe: SGD momentum 0.9"):
        assert text in html
    finals = json.loads((tiny_degradation / "data" / "train_final.json").read_text())
    assert {(r["model"], r["seed"]) for r in finals} == {
        (m, s) for m in ("plain8", "resnet8", "cifar[layers=2-2-2,shortcut=false]",
                         "cifar[layers=2-2-2]") for s in (0, 1)}
    gaps = json.loads((tiny_degradation / "data" / "train_gaps.json").read_text())
    assert {g["kind"] for g in gaps} == {"plain", "residual"} and gaps[0]["seeds"] == 2


def test_compare_reuses_a_degradation_run(tiny_degradation, tmp_path, invoke):
    result = invoke("compare", "plain14", "resnet14", "--no-latency", "--out", str(tmp_path),
                    "--from-degradation", str(tiny_degradation))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "compare-plain14-vs-resnet14.html").read_text()
    assert "Degradation gap" in html


def test_zoo_report_lists_every_variant(zoo_report):
    from resnet_probe.zoo import list_models

    html = page_text(zoo_report / "zoo.html")
    zoo = json.loads((zoo_report / "zoo-data" / "zoo.json").read_text())
    assert [row["model"] for row in zoo] == list_models()
    assert "Cost vs depth" in html and "Bottleneck vs basic across widths" in html
    resnet50 = next(r for r in zoo if r["model"] == "resnet50")
    assert resnet50["macs"] == 4_089_184_256 and resnet50["macs_v1"] == 3_857_973_248
    assert 'href="zoo.html"' in page_text(zoo_report / "index.html")


def test_cli_compare_prints_report_path_first(invoke, tmp_path):
    result = invoke("compare", "resnet8", "plain8", "--no-train", "--no-latency", "--out",
                    str(tmp_path))
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first == f"report: {tmp_path / 'compare-resnet8-vs-plain8.html'}"
    assert "macs (G)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["resnet34"], "at least two models"),
    (["resnet34", "resnet34"], "named twice"),
    (["resnet35", "plain34"], "did you mean resnet34"),
])
def test_cli_compare_bad_models(invoke, args, message):
    result = invoke("compare", *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_cli_compare_out_is_a_file(invoke, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    result = invoke("compare", "resnet8", "plain8", "--out", str(blocker))
    assert result.exit_code == 1 and "exists and is a file" in result.stderr


def test_cli_compare_unwritable_out(invoke):
    result = invoke("compare", "resnet8", "plain8", "--out", "/proc/resnet-probe")
    assert result.exit_code == 1 and "not writable" in result.stderr


def test_mixed_families_share_an_input_size(invoke, tmp_path):
    result = invoke("compare", "resnet20", "resnet10", "--no-train", "--no-latency",
                    "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "shared size 224x224" in result.stderr
    summary = json.loads((tmp_path / "compare-resnet20-vs-resnet10-data" / "summary.json")
                         .read_text())
    assert {row["input_size"] for row in summary} == {224}
    too_small = invoke("compare", "resnet20", "resnet10", "--input-size", "16", "--no-train")
    assert too_small.exit_code == 2 and "total stride 32" in too_small.stderr


def test_interrupted_compare_writes_a_partial_report(invoke, tmp_path, monkeypatch):
    from resnet_probe import comparison

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(comparison, "measure_gradients", interrupt)
    result = invoke("compare", "resnet8", "plain8", "--no-train", "--fresh", "--out",
                    str(tmp_path))  # fresh: measured, not taken from an earlier test's cache
    assert result.exit_code == 130
    page = (tmp_path / "compare-resnet8-vs-plain8.html").read_text()
    assert "Interrupted (Ctrl-C)" in page
    assert "Per-layer latency" in page and "Gradients were not measured" in page
    data = tmp_path / "compare-resnet8-vs-plain8-data"
    assert (data / "latency_layers.csv").exists()
    summary = json.loads((data / "summary.json").read_text())
    assert all(row["forward_ms"] > 0 for row in summary)  # the finished section's columns


def test_each_model_keeps_one_colour_in_every_figure_of_a_report(tiny_compare, tmp_path,
                                                                  monkeypatch):
    from resnet_probe.report import html, write_compare_report

    result, _ = tiny_compare
    figures_seen = []
    real = html.figure_html
    monkeypatch.setattr(html, "figure_html",
                        lambda fig: figures_seen.append(fig) or real(fig))
    write_compare_report(result, tmp_path)
    colours: dict[str, set[str]] = {}
    by_model_figures = 0
    for fig in figures_seen:
        named = False
        for trace in fig.data:
            model = (trace.name or "").split(",")[0]
            if model not in result.models:
                continue
            colour = (trace.line.color if trace.type == "scatter" and trace.mode and
                      "lines" in trace.mode else trace.marker.color)
            if isinstance(colour, str):
                colours.setdefault(model, set()).add(colour)
                named = True
        by_model_figures += named
    assert by_model_figures >= 6  # costs, latency, gradients and training figures
    assert set(colours) == set(result.models)
    assert all(len(seen) == 1 for seen in colours.values()), colours
    assert len({next(iter(seen)) for seen in colours.values()}) == len(result.models)
