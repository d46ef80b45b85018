"""The compare report's first part: its reader's three questions, each answered within one
screen at 1280x800 (does the deeper plain net degrade? why? what does the shortcut cost?),
then what the tutorials say, measured. Each answer links to the section that holds its
details."""

from __future__ import annotations

from typing import Any

import pandas as pd

from resnet_probe.analysis import WhyPart
from resnet_probe.jobs.parts import (
    CompareResult,
    CostsPart,
    GradientsPart,
    InProgress,
    LatencyPart,
    Skipped,
    SummaryPart,
    TrainingPart,
)
from resnet_probe.report import figures, tutorials
from resnet_probe.report.html import Section, join, markup
from resnet_probe.report.words import (
    MECHANISM_NOT_RUN,
    TUTORIAL_CLAIMS,
    bias_answer,
    bottleneck_answer,
    claim_finding,
    cost_change,
    eval_bn_answer,
    gradient_finding,
    identity_answer,
    mechanism_finding,
    overfitting_answer,
    shortcut_cost_answer,
    twin_headline,
    vanishing_answer,
    verdict_headline,
)
from resnet_probe.results import column_label

FIRST_FIGURE_HEIGHT = 430  # px: the verdict and the curves fit the first screen at 1280x800
# The claims of the trained nets the Why answer quotes, by id (analysis.claims.Claim) or, in
# results made before the ids, by the words their claim began with.
WHY_CLAIMS = (("lesion_blocks", "one block deleted", "Deleting one block (lesions)"),
              ("paths", "paths", "Effective paths"))


def render_answers(result: CompareResult, notes: list[str]) -> list[Section]:
    latency = result.latency
    timing_warnings = latency.environment.warnings if isinstance(latency, LatencyPart) \
        and latency.environment is not None else ()
    return [degrade_answer(result, notes), why_answer(result),
            cost_answer(result.summary, timing_warnings), tutorials_block(result)]


def degrade_answer(result: CompareResult, notes: list[str]) -> Section:
    twin = result.summary.twin_verdict
    section = Section("degrade", "Does the plain twin train worse?" if twin is not None
                      else "Does the deeper plain net degrade?", nav="Degrade?",
                      answer=True)
    for note in notes:
        section.note(note)
    training = result.training
    verdict = result.summary.verdict
    if not isinstance(training, TrainingPart) or verdict is None:
        why = training.reason if isinstance(training, Skipped) else \
            training.note if isinstance(training, InProgress) else "training did not finish"
        return section.text(f"Not answered in this report: {why}", css_class="lead")
    deep, shallow = plain_nets(training.degradation.final)
    # A model and its twin are one depth: their own question, not "needs two depths".
    section.text(twin_headline(twin) if twin is not None
                 else verdict_headline(verdict, deep, shallow), css_class="lead")
    if not training.degradation.history.empty:
        section.figure(figures.training_curves(training.degradation.history,
                                               training.degradation.final,
                                               height=FIRST_FIGURE_HEIGHT))
    return section.text(markup('<a href="#degradation">Every number behind the verdict, and '
                               "the rule →</a>"), css_class="more")


def plain_nets(final: pd.DataFrame) -> tuple[str | None, str | None]:
    """The deepest and the shallowest plain net trained."""
    if final.empty:
        return None, None
    plain = final[~final["shortcut"].astype(bool)].drop_duplicates("model").sort_values("depth")
    if plain.empty:
        return None, None
    return str(plain["model"].iloc[-1]), str(plain["model"].iloc[0])


def why_answer(result: CompareResult) -> Section:
    section = Section("why-answer", "Why?", nav="Why?", answer=True)
    findings = [gradients_line(result), mechanism_line(result), *claim_lines(result)]
    items = join("", (markup('<li>{} <a href="#{}">{} →</a></li>', text, anchor, link)
                      for text, anchor, link in findings))
    return section.html(markup('<ul class="findings">{}</ul>', items))


def gradients_line(result: CompareResult) -> tuple[str, str, str]:
    gradients = result.gradients
    ratios = tutorials.gradient_ratios(result.summary.headline, gradients.models) \
        if isinstance(gradients, GradientsPart) else []
    if not ratios:
        return "Gradients at init: not measured in this report.", "gradients", "section 5"
    return gradient_finding([{"model": r.model, "shortcut": r.shortcut, "ratio": r.ratio,
                              "low": r.low, "high": r.high, "seeds": r.seeds}
                             for r in ratios]), "gradients", "gradients by depth"


def mechanism_line(result: CompareResult) -> tuple[str, str, str]:
    training = result.training
    # Issue 37's intervention: a typed result on the training part once it runs in compare.
    test = getattr(training.degradation, "causal", None) \
        if isinstance(training, TrainingPart) else None
    text = MECHANISM_NOT_RUN if test is None else mechanism_finding(test)
    return text, "degradation", "the training runs"


def claim_lines(result: CompareResult) -> list[tuple[str, str, str]]:
    training = result.training
    why = training.why if isinstance(training, TrainingPart) else None
    if not isinstance(why, WhyPart) or why.findings.empty:
        reason = why.reason if isinstance(why, Skipped) else why.note \
            if isinstance(why, InProgress) else "no trained nets were analysed"
        return [(f"Lesions and paths of the trained nets: not in this report ({reason}).",
                 "why", "section 6b")]
    lines = []
    claims = why.findings["claim"].astype(str)
    for claim_id, words, what in WHY_CLAIMS:
        rows = why.findings[(claims == claim_id) | claims.str.startswith(words)]
        if rows.empty:
            lines.append((f"{what}: not measured in this report.", "why", "section 6b"))
            continue
        deepest = rows.sort_values("depth").iloc[-1].to_dict()
        lines.append((claim_finding(what, deepest), "why", "the trained nets"))
    return lines


def cost_answer(summary: SummaryPart, timing_warnings: tuple[str, ...] = ()) -> Section:
    """The cost table; the latency section's warnings (a busy machine) carried up beside the
    times they qualify."""
    section = Section("cost", "What does the shortcut cost?", nav="Cost?", answer=True)
    table = cost_table(summary)
    if table.empty:
        return section.text("Nothing was measured against a baseline in this report.")
    for warning in timing_warnings:
        section.note(f"The times below: {warning}", kind="warning")
    baseline = summary.deltas["model"].iloc[0]
    return section.table(table, caption=markup(
        "Each model against the baseline <b>{}</b>: counts are exact; times are medians "
        "over interleaved rounds, each change with its 95% interval or \"no measurable "
        "difference\"", baseline), names=tuple(table.columns), fold=False)


# (column, what its change is counted in or called)
COST_COUNTS = (("params", "params"), ("macs", "MACs"))
COST_TIMES = (("forward_ms", "Δ forward time"), ("backward_ms", "Δ backward time"))


def cost_table(summary: SummaryPart) -> pd.DataFrame:
    """Per model after the baseline: the change of params, MACs and each measured time."""
    deltas, differences = summary.deltas, summary.differences
    if len(deltas) < 2:
        return pd.DataFrame()
    base = deltas.iloc[0]
    rows = []
    for record in deltas.iloc[1:].to_dict("records"):
        row: dict[str, Any] = {"model": record["model"]}
        for column, unit in COST_COUNTS:
            if column in deltas and record[column] == record[column]:
                row[f"Δ {column_label(column)}"] = cost_change(record[column], base[column],
                                                               unit)
        for metric, heading in COST_TIMES:
            found = differences[(differences["model"] == record["model"])
                                & (differences["metric"] == metric)] \
                if not differences.empty else differences
            if not found.empty:
                row[heading] = found["change"].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)


def tutorials_block(result: CompareResult) -> Section:
    """Claims (a)-(g) of a ResNet tutorial, each answered by this run's numbers where it has
    them (docs: tutorials-measured)."""
    section = Section("tutorials", "What the tutorials say, measured", nav="Tutorials")
    answers = tutorial_answers(result)
    items = join("", (markup("<li><b>({}) “{}”</b> {}</li>", letter, claim,
                             answers.get(letter) or "Not measured in this report.")
                      for letter, claim in TUTORIAL_CLAIMS))
    return section.html(markup('<ul class="findings">{}</ul>', items))


def tutorial_answers(result: CompareResult) -> dict[str, str | None]:
    costs, gradients, training = result.costs, result.gradients, result.training
    answers: dict[str, str | None] = {"g": eval_bn_answer()}
    if isinstance(training, TrainingPart):
        answers["a"] = overfitting_answer(tutorials.errors_by_depth(training.degradation.final))
    if isinstance(gradients, GradientsPart):
        answers["b"] = vanishing_answer(tutorials.gradient_ratios(result.summary.headline,
                                                                  gradients.models))
        answers["c"] = identity_answer(tutorials.within_stage_ratios(gradients.stages,
                                                                     gradients.models))
    if isinstance(costs, CostsPart):
        answers["d"] = shortcut_cost_answer(tutorials.shortcut_costs(
            costs.summary, costs.layers, costs.operators, costs.architecture))
        answers["e"] = bottleneck_answer(tutorials.bottleneck_saving(costs.bottleneck.totals))
        answers["f"] = bias_answer(tutorials.bn_biases(costs.layers, costs.architecture))
    return answers
