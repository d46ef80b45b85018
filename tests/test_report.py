"""The compare, degradation and zoo reports: written, complete, consistent with their own
numbers, and honest about conventions."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from conftest import page_of

from resnet_probe.report.answers import plain_nets
from resnet_probe.report.html import esc
from resnet_probe.report.words import verdict_headline, verdict_line
from resnet_probe.results import SUMMARY_COLUMNS, declared_tables

SECTION_ORDER = ["Does the deeper plain net degrade?", "Why?", "What does the shortcut cost?",
                 "What the tutorials say, measured", "1. Summary",
                 "2. Architecture side by side", "3. Parameters and MACs",
                 "4. Per-layer latency", "5. Gradient norms by depth", "6. Degradation",
                 "6b. Why", "7. Why bottleneck blocks are cheaper", "8. Environment"]
T_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446}  # Student t, 97.5th percentile


def page_text(path) -> str:
    return path.read_text()


def test_compare_report_has_every_section_in_order(tiny_compare):
    result, out = tiny_compare
    html = page_text(page_of(result, out))
    positions = [html.index(f"<h2>{title}") for title in SECTION_ORDER]
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
    assert "macs (M)" in result.stdout  # 12.2 M MACs: the column in the units its size needs


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
    assert str(esc(verdict_line(result.summary.verdict))) in summary
    headline = result.summary.headline.set_index("model")
    low = headline.loc["resnet8", "forward_ms_ci95_low"]
    assert low == low and f"{low:,.4g}" in summary  # the interval, not just the median
    assert "All deltas" in summary and "table-wrap scroll" in summary
    first = html.split('id="degrade"')[1].split("</section>")[0]
    deep, shallow = plain_nets(result.training.degradation.final)
    assert str(esc(verdict_headline(result.summary.verdict, deep, shallow))) in first


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


# --- each section rendered from parts built by hand (tests/report_parts.py) --------------------

SNAKE_CASE = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")


def hand_result(**kwargs):
    import report_parts

    return report_parts.compare_result(**kwargs)


def rendered(section) -> str:
    return "".join(str(part) for part in section.parts)


def headers(html: str) -> list[str]:
    from html import unescape

    return [unescape(re.sub(r"<[^>]+>", "", h)) for h in re.findall(r"<th[^>]*>(.*?)</th>",
                                                                     html, flags=re.DOTALL)]


def test_degrade_answer_is_two_sentences_with_the_plain_gap_and_its_interval():
    from resnet_probe.report.answers import degrade_answer

    section = degrade_answer(hand_result(), [])
    headline = section.paragraphs[0]
    # plain gaps 0.70, 0.74, 0.72: mean 0.72, sd 0.02, t(0.975, 2) = 4.302653
    half = T_975[2] * 0.02 / math.sqrt(3)
    assert f"+0.720 (95% CI {0.72 - half:+.3f} to {0.72 + half:+.3f})" in headline
    assert headline.startswith("Yes: the deeper plain net, plain14, trains worse than the "
                               "shallower plain8.")
    assert headline.endswith("held-out seeds 0, 1, 2.")
    assert len(re.findall(r"[.!?](?:\s|$)", headline)) <= 2  # at most two sentences
    html = rendered(section)
    assert html.index("p class=\"lead\"") < html.index('class="figure"')  # verdict, then curves
    assert 'href="#degradation"' in html


def test_degrade_answer_without_training_says_why_not():
    from resnet_probe.report.answers import degrade_answer

    section = degrade_answer(hand_result(trained=False), [])
    assert section.paragraphs == ["Not answered in this report: no training was run "
                                  "(--no-train)"]
    assert 'class="figure"' not in rendered(section)


def test_why_answer_says_gradients_grow_toward_the_input_with_their_interval():
    from html import unescape

    from resnet_probe.report.answers import why_answer

    html = rendered(why_answer(hand_result()))
    items = [unescape(item) for item in re.findall(r"<li>(.*?)</li>", html)]
    assert 3 <= len(items) <= 5
    # plain8's ratios 17, 19, 18: mean 18, sd 1; resnet8's 1.5, 1.7, 1.6: mean 1.6, sd 0.1;
    # a ratio's interval is on the log scale: m·exp(±t·s/(m√n))
    factor = math.exp(T_975[2] * 1 / (18 * math.sqrt(3)))
    residual_factor = math.exp(T_975[2] * 0.1 / (1.6 * math.sqrt(3)))
    gradients = items[0]
    assert "grow toward the input, they do not vanish" in gradients
    assert (f"plain8's gradient at the first block is 18× (95% CI {18 / factor:.3g}× to "
            f"{18 * factor:.3g}×, 3 seeds) its gradient at the last") in gradients
    assert f"resnet8's 1.6× (95% CI {1.6 / residual_factor:.3g}× to " in gradients
    assert 'href="#gradients"' in gradients
    assert "mechanism test" in items[1] and "not run" in items[1]
    assert "Deleting one block (lesions) at depth 14: holds (mean +0.320, 95% CI +0.270 to " \
           "+0.370, 3 seeds)" in items[2] and 'href="#why"' in items[2]
    assert "Effective paths at depth 14: needs 2 seeds" in items[3]


def test_the_mechanism_slot_reads_the_outcome_when_a_test_arrives():
    from types import SimpleNamespace

    from resnet_probe.report.words import MECHANISM_NOT_RUN, mechanism_finding

    assert "not run" in MECHANISM_NOT_RUN
    outcome = SimpleNamespace(value="supported")
    assert mechanism_finding(SimpleNamespace(outcome=outcome)).endswith(": supported.")


def test_cost_answer_gives_each_change_with_its_interval_or_no_measurable_difference():
    from resnet_probe.report.answers import cost_answer, cost_table
    from resnet_probe.report.words import cost_change

    result = hand_result()
    table = cost_table(result.summary).set_index("model")
    assert table.loc["plain8", "Δ params"] == "no difference (exact count)"  # option A twins
    assert table.loc["plain8", "Δ MACs (a)"] == "no difference (exact count)"
    assert table.loc["plain8", "Δ forward time"] == \
        "no measurable difference (95% CI -4.1% to +0.9%)"
    # resnet14 against resnet8: 10,064,936 - 78,042 = 9,986,894 params, +12,797%
    assert cost_change(10_064_936, 78_042, "params") == "+12,797%, +9.99 M params (exact count)"
    assert cost_change(100, 104, "MACs") == "-3.85%, -4 MACs (exact count)"
    html = rendered(cost_answer(result.summary))
    assert "<b>resnet8</b>" in html and "<th" in html


def test_tutorials_block_answers_each_claim_from_the_run():
    from resnet_probe.report.answers import tutorial_answers, tutorials_block

    answers = tutorial_answers(hand_result())
    assert set(answers) == set("abcdefg")
    assert "training error 0.110 → 0.830, test error 0.120 → 0.840" in answers["a"]
    assert answers["a"].startswith("No: the plain nets' training error itself rises")
    assert "18×" in answers["b"] and answers["b"].startswith("Not with BN")
    assert "resnet8 ×1.25" in answers["c"]
    # 28,672 adds / 12,239,360 MACs = 0.234%
    assert "+0 parameters against its plain twin plain8" in answers["d"]
    assert f"{28_672 / 12_239_360:.2%} of its conv and linear MACs" in answers["d"]
    assert f"{3_699_376_128 / 218_103_808:.1f}× the bottleneck" in answers["e"]
    # BN parameters 32 + 32 -> 32 biases; params 432 + 32 + 2304 + 32 + 0 + 650 = 3450
    assert "resnet8: 32 (0.93% of its 3,450 parameters)" in answers["f"]
    assert "test_eval_outputs_are_deterministic_and_batch_independent" in answers["g"]
    assert len(re.findall("<li>", rendered(tutorials_block(hand_result())))) == 7


def test_summary_section_heads_every_column_with_a_label_and_its_unit():
    from resnet_probe.report.summary import render_summary

    html = rendered(render_summary(hand_result().summary))
    found = headers(html)
    assert {"params (K)", "MACs (a) (M)", "forward (ms)", "final training error",
            "gradient ratio first/last block"} <= set(found)
    assert "Δ params (%)" in found and "Δ forward (%)" in found
    assert not [h for h in found if SNAKE_CASE.search(h)]
    assert '<details class="wide">' in html  # the full delta table folds


def test_architecture_section_keeps_model_names_as_headers():
    from resnet_probe.report.costs import render_architecture

    html = rendered(render_architecture(hand_result().costs))
    assert headers(html) == ["stage", "resnet8", "plain8"]
    # The hand-built counts, in words: resnet8's stage 2 pads its one changing shortcut.
    assert "zero-pad identity (A) on 1 block" in html and "identity on 1 block" in html
    assert "none (plain)" in html


def test_the_conventions_story_shows_only_with_a_bottleneck_net():
    import dataclasses

    from resnet_probe.report.costs import render_costs

    costs = hand_result().costs
    assert "Why ResNet-50" not in rendered(render_costs(costs))
    bottleneck = costs.architecture.assign(block=costs.architecture["block"].replace(
        "basic", "bottleneck"))
    html = rendered(render_costs(dataclasses.replace(costs, architecture=bottleneck)))
    story = html.split('<details class="method">')[1]
    assert story.index("Why ResNet-50") < story.index("</details>")


def test_latency_section_names_its_device_and_engine():
    from resnet_probe.report.latency import render_latency

    html = rendered(render_latency(hand_result().latency))
    assert "Measured on this machine's <b>CPU (test CPU, 2 threads, float32)</b>" in html
    assert "<b>hooks engine</b>" in html
    assert {"forward (ms)", "hook overhead (hooked ÷ un-hooked)"} <= set(headers(html))


def test_gradients_section_folds_its_method_notes():
    from resnet_probe.report.gradients import render_gradients

    section = render_gradients(hand_result().gradients)
    html = rendered(section)
    method = html.split('<details class="method">')[1].split("</details>")[0]
    assert "‖∂L/∂s‖ is taken at each block&#39;s join" in method
    assert "dy/dx = dF/dx + I" in html and "Yang et al. (2019)" in html


def test_training_section_keeps_every_character_of_its_paragraphs():
    from report_parts import SIGMA_PARAGRAPH

    from resnet_probe.report.training import render_training

    section = render_training(hand_result().training)
    html = rendered(section)
    assert "Σ_{k&lt;t} μ^k" in html and "Σ_{k<t}" not in html
    assert any(SIGMA_PARAGRAPH in p for p in section.paragraphs)
    assert "<b>Verdict: degradation observed</b>" in html


def test_the_training_sections_verdict_says_slower_optimisation_where_that_is_what_it_is():
    """Observed on the endpoint while the final errors do not differ measurably: the bold
    verdict says so, as the console line and verdict.json do."""
    import dataclasses

    from resnet_probe.report.training import render_training
    from resnet_probe.train.verdict import PlainGapAboveZero

    training = hand_result().training
    verdict = training.degradation.verdict
    slower = dataclasses.replace(verdict, reasons=[PlainGapAboveZero(False)])
    part = dataclasses.replace(training, degradation=dataclasses.replace(
        training.degradation, verdict=slower))
    html = rendered(render_training(part))
    assert ("<b>Verdict: degradation observed (slower optimisation at this budget)</b>"
            in html)


def test_why_section_shows_each_finding_and_folds_its_rule():
    from resnet_probe.report.training import render_why

    html = rendered(render_why(hand_result().training.why, number="6b."))
    assert "<b>holds</b>" in html and "<b>needs 2 seeds</b>" in html
    rule = html.split("The rule each claim is tested by")[1].split("</details>")[0]
    assert "paired by seed, with a Student-t 95% interval" in rule


def test_bottleneck_section_says_the_measured_numbers():
    from resnet_probe.report.costs import render_bottleneck

    section = render_bottleneck(hand_result().costs.bottleneck)
    assert "It costs 218,103,808 MACs" in section.paragraphs[0]
    assert f"{3_699_376_128 / 218_103_808:.1f}× the bottleneck" in section.paragraphs[0]


def test_environment_section_is_a_key_value_table():
    from resnet_probe.report import render_environment

    html = rendered(render_environment({"torch": "2.x", "threads": 2}))
    assert headers(html) == ["key", "value"] and "<td class=\"text\">2.x</td>" in html


def test_an_eval_chart_with_one_step_is_bars():
    from report_parts import degradation_tables

    from resnet_probe.report.figures import eval_curves

    evals = degradation_tables().evals
    assert evals["step"].nunique() == 1
    fig = eval_curves(evals)
    assert {trace.type for trace in fig.data} == {"bar"}
    assert "step 8" in fig.layout.title.text
    two_steps = pd.concat([evals, evals.assign(step=4)])
    assert {trace.type for trace in eval_curves(two_steps).data} == {"scatter"}


# --- labels, units and escaping --------------------------------------------------------------

@pytest.mark.parametrize("column, label", [
    ("params_delta_pct", "Δ params (%)"), ("forward_ms", "forward (ms)"),
    ("final_train_error", "final training error"),
    ("macs_v1_delta_pct", "Δ MACs (a), v1 stride (%)"),
    ("forward_ms_ci95_low", "forward 95% CI low (ms)"),
    ("grad_ratio_first_last_change", "gradient ratio first/last block: change"),
    ("activation_bytes", "saved activations (bytes)"),
])
def test_column_labels(column, label):
    from resnet_probe.results import column_label

    assert column_label(column) == label


def test_counts_are_shown_in_readable_units_per_column():
    from resnet_probe.results import display_table

    df = pd.DataFrame({"model": ["a", "b"], "params": [21_797_672, 21_284_672],
                       "macs": [3_671_224_320, 3_670_000_000], "train_peak_bytes": [2e8, 1e8],
                       "forward_ms": [12.5, 12.0], "blocks": [3, 4]})
    shown = display_table(df)
    assert list(shown.columns) == ["model", "params (M)", "MACs (a) (G)",
                                   "training step peak (MB)", "forward (ms)", "blocks"]
    assert shown["params (M)"].tolist() == pytest.approx([21.797672, 21.284672])
    assert shown["training step peak (MB)"].tolist() == pytest.approx([200.0, 100.0])
    small = display_table(pd.DataFrame({"params": [432, 2304]}))
    assert list(small.columns) == ["params"] and small["params"].tolist() == [432, 2304]


def test_every_column_of_the_hand_built_report_is_catalogued():
    from resnet_probe.report import compare_sections, environment_table
    from resnet_probe.results import uncatalogued

    result = hand_result()
    sections = compare_sections(result, environment_table({"torch": "2.x"}))
    html = "".join(rendered(s) for s in sections)
    found = headers(html)
    assert found and not [h for h in found if SNAKE_CASE.search(h)]
    assert uncatalogued(result.summary.deltas.columns) == []


def test_text_reaches_html_escaped_once():
    from markupsafe import Markup

    from resnet_probe.report.html import Section, esc, markup

    section = Section("s", "t").text("a < b & Σ_{k<t}").text(esc("x<y")).text(
        markup("<b>{}</b>", "<i>"))
    assert [str(p) for p in section.parts] == [
        "<p>a &lt; b &amp; Σ_{k&lt;t}</p>", "<p>x&lt;y</p>", "<p><b>&lt;i&gt;</b></p>"]
    assert section.paragraphs == ["a < b & Σ_{k<t}", "x<y", "<i>"]
    assert isinstance(section.parts[0], Markup)


def test_a_model_named_like_a_script_is_text_in_every_page(tmp_path):
    from resnet_probe import report

    name = "<script>alert(1)</script>"
    result = hand_result(models=(name, "plain8"))
    page = report.write(result, tmp_path).read_text()
    index = (tmp_path / "index.html").read_text()
    for html in (page, index):
        visible = re.sub(r"<script[^>]*>.*?</script>", "", html.split("</head>", 1)[1],
                         flags=re.DOTALL)  # plotly's own scripts hold figures as JSON
        assert name not in visible
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in visible
    assert "<script>alert(1)" not in page  # nor inside plotly's JSON (it escapes "<")


def test_a_wide_table_folds_and_a_narrow_one_does_not():
    from resnet_probe.report.html import table_html

    narrow = pd.DataFrame({"model": ["resnet8"], "params": [78_042]})
    wide = pd.DataFrame({f"value_{i}": [123456.789] for i in range(40)})
    assert "<details" not in str(table_html(narrow))
    assert str(table_html(wide, caption="Wide")).startswith(
        '<details class="wide"><summary>Wide (40 columns × 1 rows')


# --- golden files: what the console and markdown outputs print --------------------------------

COMPARE_COLUMNS = ["model", "params", "params_delta_pct", "macs", "macs_delta_pct", "forward_ms",
                   "forward_ms_change", "grad_ratio_first_last", "final_train_error",
                   "final_train_error_change"]


def test_console_compare_table(golden):
    from resnet_probe.report.console import console_table
    from resnet_probe.results import measurable_deltas

    deltas = measurable_deltas(hand_result().summary.deltas)
    golden("compare_console", console_table(deltas, COMPARE_COLUMNS) + "\n")


def test_markdown_compare_table(golden):
    from resnet_probe.report.console import markdown_table
    from resnet_probe.results import measurable_deltas

    deltas = measurable_deltas(hand_result().summary.deltas)
    golden("compare_markdown", markdown_table(deltas, COMPARE_COLUMNS) + "\n")


def test_console_verdict_and_headline(golden):
    from report_parts import degradation_tables

    from resnet_probe.report.words import verdict_headline, verdict_line

    verdict = degradation_tables().verdict
    golden("verdict", verdict_line(verdict) + "\n" + verdict_headline(verdict, "plain14",
                                                                      "plain8") + "\n")


def test_cost_answer_carries_a_busy_machine_warning_beside_its_times():
    from resnet_probe.report.answers import cost_answer

    warning = "the machine was busy before timing (1-minute load average 3.1 on 2 cores)"
    html = rendered(cost_answer(hand_result().summary, (warning,)))
    assert f"The times below: {warning}" in html and 'class="warning"' in html
    assert "The times below" not in rendered(cost_answer(hand_result().summary))
