"""The compare, degradation and zoo reports: written, complete, consistent with their own
numbers, and honest about conventions."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from conftest import page_of

from resnet_probe.results import SUMMARY_COLUMNS, declared_tables

SECTION_ORDER = ["1. Summary", "2. Architecture side by side", "3. Parameters and MACs",
                 "4. Per-layer latency", "5. Gradient norms by depth", "6. Degradation",
                 "6b. Why", "7. Why bottleneck blocks are cheaper", "8. Environment"]
T_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446}  # Student t, 97.5th percentile


def page_text(path) -> str:
    return path.read_text()


def test_compare_report_has_every_section_in_order(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    positions = [html.index(title) for title in SECTION_ORDER]
    assert positions == sorted(positions)
    assert page_of(result, out) == out / "compare-resnet8-vs-plain8-vs-resnet14.html"


def test_compare_report_names_every_convention(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    for convention in ("(a) conv+linear MACs, stride on 3x3 (v1.5)",
                       "(a) conv+linear MACs, stride on 1x1 (v1)",
                       "fvcore default", "(b) (a) + BN, ReLU, residual add, pooling",
                       "(c) FLOPs = 2 x (a)", "(d) backward conv+linear FLOPs, measured"):
        assert convention in html


def test_every_declared_table_is_saved_as_csv_and_json(tiny_compare):
    result, out = tiny_compare
    data = out / "compare-resnet8-vs-plain8-vs-resnet14-data"
    parts = [result.costs, result.latency, result.gradients, result.training, result.summary]
    for part in parts:
        for name, df in declared_tables(part).items():
            assert (data / f"{name}.csv").exists(), name
            assert len(json.loads((data / f"{name}.json").read_text())) == len(df), name
    reloaded = pd.read_csv(data / "layer_costs.csv")
    assert reloaded["macs"].sum() == result.costs.summary["macs"].sum()


def test_summary_deltas_against_the_first_model_by_hand(tiny_compare):
    """resnet14 (bottleneck ImageNet-style, one block a stage) against resnet8 (CIFAR-style):
    their counts differ, so the formula is checked on numbers that are not 0 == 0."""
    result, out = tiny_compare
    deltas = result.summary.deltas.set_index("model")
    costs = result.costs.summary.set_index("model")
    base, other = costs.loc["resnet8"], costs.loc["resnet14"]
    assert base["params"] != other["params"] and base["macs"] != other["macs"]
    assert deltas.loc["resnet8", "macs_delta_pct"] == 0
    assert deltas.loc["resnet14", "params_delta_pct"] == pytest.approx(
        (other["params"] - base["params"]) / base["params"] * 100, rel=1e-12)
    assert deltas.loc["resnet14", "macs_delta_pct"] == pytest.approx(
        (other["macs"] - base["macs"]) / base["macs"] * 100, rel=1e-12)
    assert set(SUMMARY_COLUMNS) - {"trainable_params"} <= set(deltas.columns) | {"model"}


def test_report_is_offline_and_tables_are_html(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    assert '<script src="plotly.min.js"></script>' in html
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert not re.search(r"<script[^>]+src=\"https?://", html)
    assert html.count('<table class="data">') >= 10


def test_latency_section_says_cpu_never_gpu(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    assert "Measured on this machine's <b>CPU" in html and "hooks engine" in html
    section = html.split('id="latency"')[1].split("</section>")[0]
    # Text only: plotly's base64-encoded arrays in <script> can spell "GPU" by chance.
    visible = re.sub(r"<script.*?</script>", "", section, flags=re.DOTALL)
    assert "GPU" not in visible


def test_gradient_explanation_cites_measured_numbers(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    ratio = result.gradients.models.set_index("model").loc["plain8", "grad_ratio_first_last"]
    assert "dy/dx = dF/dx + I" in html and "Yang et al. (2019)" in html
    assert "outside that setting" in html  # the 1.21 rate is cited with its conditions
    assert f"{ratio:.4g}" in html
    assert "Balduzzi-style" in html and "fixed from a batch of 64" in html


def test_inline_plotly_flag(tmp_path):
    from resnet_probe import compare

    result = compare(["resnet8", "plain8"], out=tmp_path, inline_plotly=True, latency=None,
                     gradients=None, train=None)
    head = page_text(page_of(result, tmp_path)).split("</head>")[0]
    assert 'src="plotly.min.js"' not in head and len(head) > 1_000_000  # the library inline
    html = page_text(page_of(result, tmp_path))
    assert "latency was not measured" in html and "no training was run" in html


def test_index_links_every_report(tiny_compare):
    result, out = tiny_compare
    index = page_text(out / "index.html")
    assert 'href="compare-resnet8-vs-plain8-vs-resnet14.html"' in index


def test_degradation_report(tiny_degradation):
    html = page_text(tiny_degradation / "degradation.html")
    for text in ("Training error (train-mode minibatch", "Eval-mode error",
                 "The comparisons the verdict rests on", "Recipe: SGD momentum 0.9",
                 "Verdict: inconclusive"):
        assert text in html
    finals = json.loads((tiny_degradation / "data" / "train_final.json").read_text())
    assert {(r["model"], r["seed"]) for r in finals} == {
        (m, s) for m in ("plain8", "resnet8", "cifar[layers=2-2-2,shortcut=false]",
                         "cifar[layers=2-2-2]") for s in (0, 1)}
    gaps = json.loads((tiny_degradation / "data" / "train_gaps.json").read_text())
    assert {g["comparison"] for g in gaps} == {"plain gap", "residual gap",
                                               "difference of differences", "twin gap",
                                               "plain gap in final training error"}
    assert all(g["seeds"] == 2 for g in gaps)


def _t_interval(values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = T_975[len(values) - 1] * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def check_report_consistency(data, page):
    """Every verdict in a report agrees with the numbers beside it: the verdict's comparisons
    are recomputed from the endpoints in the final table by hand, its outcome from the rule,
    and the summary's per-model errors from the same table."""
    from resnet_probe.train.verdict import MIN_GAP, judge

    verdict = json.loads((data / "verdict.json").read_text())
    finals = json.loads((data / "train_final.json").read_text())
    errors = {(r["shortcut"], r["depth"], r["seed"]): r["train_error_auc"] for r in finals}
    depths = sorted({r["depth"] for r in finals})
    shallow, deep = depths[0], depths[-1]
    all_seeds = sorted({r["seed"] for r in finals})

    def per_seed(*nets):  # {seed: errors of nets} for the seeds where every net ran
        return {s: [errors[(k, d, s)] for k, d in nets] for s in all_seeds
                if all((k, d, s) in errors for k, d in nets)}

    # The rule compares only seeds on which all four nets (plain and residual, shallow and
    # deep) ran; without all four there is no comparison at all.
    seeds = per_seed((False, deep), (False, shallow), (True, deep), (True, shallow))
    plain = {s: e[0] - e[1] for s, e in seeds.items()}
    residual = {s: e[2] - e[3] for s, e in seeds.items()}
    expected = {"plain_gap": plain, "residual_gap": residual,
                "difference_of_differences": {s: plain[s] - residual[s] for s in seeds},
                "twin_gap": {s: e[0] - e[2] for s, e in seeds.items()}}
    gaps = {row["comparison"].replace(" ", "_"): row
            for row in json.loads((data / "train_gaps.json").read_text())}
    where = {"plain_gap": verdict["primary_test"]["plain_gap"],
             "residual_gap": verdict["controls"]["residual_pair"]["gap"],
             "difference_of_differences": verdict["supporting"]["difference_of_differences"],
             "twin_gap": verdict["supporting"]["twin_gap"]}
    for name, by_seed in expected.items():
        recorded = where[name]
        if not by_seed:
            assert recorded is None and name not in gaps, name
            assert verdict["verdict"] == "inconclusive"
            continue
        values = list(by_seed.values())
        mean, low, high = _t_interval(values)
        assert [recorded["per_seed"][str(s)] for s in by_seed] == pytest.approx(values)
        assert recorded["mean"] == pytest.approx(mean)
        if not math.isnan(low):
            assert (recorded["ci95_low"], recorded["ci95_high"]) == pytest.approx((low, high))
            assert (gaps[name]["ci95_low"], gaps[name]["ci95_high"]) == pytest.approx(
                (low, high))
    chance = finals[0]["chance_error"]
    assert judge(finals, chance).verdict.value == verdict["verdict"]
    if verdict["verdict"] == "degradation observed":
        plain_gap = verdict["primary_test"]["plain_gap"]
        assert plain_gap["ci95_low"] > 0 and plain_gap["mean"] >= MIN_GAP
        assert verdict["primary_test"]["lowest_low_with_a_worse_deep_plain_net"] > 0
    html = page.read_text()
    assert f"Verdict: {verdict['verdict']}" in html
    summary = data / "summary.json"
    if summary.exists():  # a compare report: its first screen uses the same table
        means = pd.DataFrame(finals).groupby("model")["final_train_error"].mean()
        for row in json.loads(summary.read_text()):
            if row["model"] in means and row.get("final_train_error") is not None:
                assert row["final_train_error"] == pytest.approx(means[row["model"]])


def test_the_compare_report_agrees_with_itself(tiny_compare):
    result, out = tiny_compare
    check_report_consistency(out / "compare-resnet8-vs-plain8-vs-resnet14-data",
                             page_of(result, out))


def test_the_degradation_report_agrees_with_itself(tiny_degradation):
    check_report_consistency(tiny_degradation / "data", tiny_degradation / "degradation.html")


def test_compare_reuses_a_degradation_run(tiny_degradation, tmp_path, invoke):
    result = invoke("compare", "plain14", "resnet14", "--no-latency", "--out", str(tmp_path),
                    "--from-degradation", str(tiny_degradation))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "compare-plain14-vs-resnet14.html").read_text()
    assert "The comparisons the verdict rests on" in html and f"reused from {tiny_degradation}" \
        in html


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
    report = f"report: {tmp_path / 'compare-resnet8-vs-plain8.html'}"
    assert result.stderr.splitlines()[0] == report  # before any work starts
    assert result.stdout.splitlines()[0] == report  # and first among the results
    assert "macs (G)" in result.stdout


def test_cli_compare_markdown_goes_to_the_step_summary(invoke, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("compare", "resnet8", "resnet14", "--no-train", "--no-latency", "--out",
                    str(tmp_path), "--format", "markdown")
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | params |") and table[1].startswith("|:---|---:")
    assert "| resnet14 |" in result.stdout
    assert summary.read_text().startswith("### resnet-probe compare\n\n| model |")


@pytest.mark.parametrize("args, message", [
    (["resnet34"], "at least two models"),
    (["resnet34", "resnet34"], "named twice"),
    (["resnet35", "plain34"], "did you mean resnet34"),
    (["resnet8", "plain8", "--seeds", "4,4,5"], "4 given more than once"),
    (["resnet8", "plain8", "--seeds", "4,,5"], "an empty item"),
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
    summary = json.loads((tmp_path / "compare-resnet20-vs-resnet10-data" /
                          "costs_summary.json").read_text())
    assert {row["input_size"] for row in summary} == {224}
    too_small = invoke("compare", "resnet20", "resnet10", "--input-size", "16", "--no-train")
    assert too_small.exit_code == 2 and "total stride 32" in too_small.stderr


def test_interrupted_compare_writes_a_partial_report(invoke, tmp_path, monkeypatch):
    from resnet_probe.jobs.compare import gradients

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gradients, "measure_gradients", interrupt)
    result = invoke("compare", "resnet8", "plain8", "--no-train", "--fresh", "--out",
                    str(tmp_path))  # fresh: measured, not taken from an earlier test's cache
    assert result.exit_code == 130
    page = (tmp_path / "compare-resnet8-vs-plain8.html").read_text()
    assert "Interrupted (Ctrl-C)" in page
    assert "Per-layer latency" in page and "not reached: the run was interrupted" in page
    data = tmp_path / "compare-resnet8-vs-plain8-data"
    assert (data / "latency_layers.csv").exists()
    summary = json.loads((data / "deltas.json").read_text())
    assert all(row["forward_ms"] > 0 for row in summary)  # the finished section's columns


def test_a_failing_section_leaves_the_finished_ones_and_is_named(invoke, tmp_path,
                                                                 monkeypatch):
    from resnet_probe.jobs.compare import gradients

    def broken(*args, **kwargs):
        raise RuntimeError("the probe met something it could not handle")

    monkeypatch.setattr(gradients, "measure_gradients", broken)
    result = invoke("compare", "resnet8", "plain8", "--no-train", "--fresh", "--out",
                    str(tmp_path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the gradients section failed: RuntimeError: the probe met something" in \
        result.stderr
    page = (tmp_path / "compare-resnet8-vs-plain8.html").read_text()
    assert "This section failed: RuntimeError: the probe met something" in page
    assert "Per-layer latency" in page and "Parameters and MACs" in page
    debug = invoke("--debug", "compare", "resnet8", "plain8", "--no-train", "--fresh",
                   "--out", str(tmp_path))
    assert "Traceback" in debug.stderr and "broken" in debug.stderr


def test_the_first_screen_states_the_verdict_and_the_numbers_with_intervals(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    summary = html.split('id="summary"')[1].split("</section>")[0]
    assert "training verdict:" in summary
    headline = result.summary.headline.set_index("model")
    low = headline.loc["resnet8", "forward_ms_ci95_low"]
    assert low == low and f"{low:,.4g}" in summary  # the interval, not just the median
    assert "All deltas" in summary and "table-wrap scroll" in summary


def test_each_model_keeps_one_colour_in_every_figure_of_a_report(tiny_compare, tmp_path,
                                                                  monkeypatch):
    from resnet_probe.report import html, write_compare_report

    result, out = tiny_compare
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
