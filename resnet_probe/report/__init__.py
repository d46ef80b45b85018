"""Parts -> plotly figures -> one HTML report; console tables.

Each writer saves every table a part declares as CSV and JSON in a data folder beside its page,
so any figure can be rebuilt, and keeps plotly.js in one file beside the reports unless told to
inline it. A training verdict is also saved whole as ``verdict.json``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from html import unescape
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.analysis import WhyPart
from resnet_probe.environment import Environment
from resnet_probe.jobs.parts import (
    CompareResult,
    CostsPart,
    Failed,
    GradientsPart,
    InProgress,
    LatencyPart,
    Skipped,
    TrainingPart,
    ZooPart,
)
from resnet_probe.report import figures
from resnet_probe.report.answers import render_answers
from resnet_probe.report.costs import (
    has_bottleneck,
    render_architecture,
    render_bottleneck,
    render_costs,
)
from resnet_probe.report.gradients import render_gradients
from resnet_probe.report.html import Section, join, markup, render_page, write_page
from resnet_probe.report.latency import render_latency
from resnet_probe.report.summary import render_summary
from resnet_probe.report.training import render_training, render_why
from resnet_probe.report.words import compare_notes, twin_verdict_record, verdict_record
from resnet_probe.results import (
    atomic_write_text,
    check_writable_dir,
    declared_tables,
    frame,
    save_table,
)
from resnet_probe.train.causal import CausalTest
from resnet_probe.train.verdict import DegradationVerdict, TwinVerdict

INDEX = "index.html"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def save_parts(parts: list[Any], directory: Path, environment: pd.DataFrame | None = None
               ) -> None:
    """Every declared table of ``parts`` as CSV and JSON; a training verdict also as
    ``verdict.json``; the environment as a key/value table."""
    verdicts = []
    for part in parts:
        if part is None or isinstance(part, (Failed, Skipped, InProgress)):
            continue
        for name, df in declared_tables(part).items():
            save_table(df, directory, name)
        if isinstance(part, TrainingPart):
            verdicts.append((part.degradation.verdict, part.degradation.causal,
                             part.degradation.twin_verdict))
    if environment is not None:
        save_table(environment, directory, "environment")
    for verdict, causal, twin in verdicts:
        save_verdict(verdict, directory, causal, twin)


def save_verdict(verdict: DegradationVerdict, directory: Path,
                 causal: CausalTest | None = None, twin: TwinVerdict | None = None) -> None:
    record = verdict_record(verdict, causal)
    if twin is not None:  # a model and its plain twin: the verdict their pair asks for
        record["twin_verdict"] = twin_verdict_record(twin)
    atomic_write_text(directory / "verdict.json",
                      json.dumps(_json_ready(record), indent=2) + "\n")


def _json_ready(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, dict):
        return {key: _json_ready(v) for key, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def environment_table(environment: Environment | dict[str, Any],
                      facts: dict[str, Any] | None = None) -> pd.DataFrame:
    """Key/value rows: where and with what the result was made, then the result's own
    facts (a section's seconds, its device, ...)."""
    rows = environment.rows() if isinstance(environment, Environment) else \
        list(environment.items())
    rows += list((facts or {}).items())
    return frame([{"key": k, "value": str(v)} for k, v in rows])


def compare_facts(result: CompareResult) -> dict[str, Any]:
    """Each part's facts for the environment table, prefixed by its section."""
    facts: dict[str, Any] = {f"{name}_seconds": value for name, value in result.seconds.items()}
    if isinstance(result.latency, LatencyPart) and result.latency.environment is not None:
        facts.update({f"latency_{field.name}": getattr(result.latency.environment, field.name)
                      for field in dataclasses.fields(result.latency.environment)})
    if isinstance(result.gradients, GradientsPart):
        facts.update(gradients_input=result.gradients.input_description,
                     gradients_setting=result.gradients.setting,
                     gradients_seeds=list(result.gradients.seed_list),
                     gradients_reused=result.gradients.reused)
    training = result.training
    if isinstance(training, TrainingPart):
        facts.update(training_dataset=training.dataset,
                     training_recipe=dataclasses.asdict(training.recipe)
                     if training.recipe is not None else {},
                     training_seeds=list(training.seeds), training_source=training.source)
        if training.cache is not None:
            facts.update(training_cache=training.cache.path,
                         training_cache_usage=training.cache.usage,
                         training_reused=list(training.cache.reused))
        if isinstance(training.why, WhyPart):
            facts["training_why_seconds"] = training.why.seconds
    return facts


def compare_report_name(models: Sequence[str]) -> str:
    name = "compare-" + "-vs-".join(slug(m) for m in models)
    return name if len(name) <= 120 else name[:100] + f"-and-{len(models)}-models"


def compare_report_path(out_dir: Path, models: Sequence[str]) -> Path:
    """Where ``write`` puts a comparison's page (its data folder is NAME-data beside it)."""
    return Path(out_dir) / f"{compare_report_name(models)}.html"


def write(result: CompareResult, out_dir: Path, inline_plotly: bool = False) -> Path:
    """The page of a result, its tables as CSV and JSON beside it, and the index of
    ``out_dir``; returns the page's path. Callers (the CLI, the API) write; jobs never do."""
    if isinstance(result, CompareResult):
        return write_compare_report(result, out_dir, inline_plotly)
    raise TypeError(f"no report for a {type(result).__name__}")


def _not_there(anchor: str, title: str, nav: str, part: Any) -> Section:
    """The section of a part that failed, was skipped or is still running, in its place."""
    section = Section(anchor, title, nav=nav)
    if isinstance(part, Failed):
        return section.note(f"This section failed: {part.error}. The other sections are "
                            f"complete.", kind="warning")
    if isinstance(part, InProgress):
        return section.note(part.note, kind="warning")
    return section.note(part.reason if isinstance(part, Skipped) else "Not measured.")


def compare_sections(result: CompareResult, environment: pd.DataFrame) -> list[Section]:
    """The compare report's sections in order: the three answers and the tutorials' claims,
    then every section in detail. Figures take each model's colour from one map."""
    training = result.training
    trained = list(training.degradation.final["model"]) \
        if isinstance(training, TrainingPart) and not training.degradation.final.empty else []
    with figures.consistent_colours([*result.models, *trained]):
        costs = result.costs
        notes = compare_notes(result)
        sections = [*render_answers(result, notes), render_summary(result.summary)]
        if isinstance(costs, CostsPart):
            sections += [render_architecture(costs), render_costs(costs)]
        else:
            sections += [_not_there("architecture", "2. Architecture side by side",
                                    "Architecture", costs),
                         _not_there("costs", "3. Parameters and MACs", "Params & MACs", costs)]
        sections.append(render_latency(result.latency) if isinstance(result.latency,
                                                                     LatencyPart)
                        else _not_there("latency", "4. Per-layer latency", "Latency",
                                        result.latency))
        sections.append(render_gradients(result.gradients)
                        if isinstance(result.gradients, GradientsPart)
                        else _not_there("gradients", "5. Gradient norms by depth", "Gradients",
                                        result.gradients))
        if isinstance(training, TrainingPart):
            sections += [render_training(training), render_why(training.why, number="6b.")]
        else:
            sections += [_not_there("degradation", "6. Degradation: training error by depth",
                                    "Degradation", training),
                         _not_there("why", "6b. Why: what the trained nets show",
                                    "Trained nets", training)]
        if isinstance(costs, CostsPart) and has_bottleneck(costs):
            # A generic explainer: shown where a bottleneck net makes it apply.
            sections.append(render_bottleneck(costs.bottleneck))
        sections.append(render_environment(environment))
    return sections


def write_compare_report(result: CompareResult, out_dir: Path, inline_plotly: bool = False
                         ) -> Path:
    out_dir = check_writable_dir(out_dir)
    name = compare_report_name(result.models)
    environment = environment_table(result.environment or {}, compare_facts(result))
    save_parts([result.costs, result.latency, result.gradients, result.training,
                result.summary], out_dir / f"{name}-data", environment)
    sections = compare_sections(result, environment)
    subtitle = markup("{} — baseline {}. Data for every table: <code>{}-data/</code>",
                      " vs ".join(result.models), result.models[0], name)
    page = render_page(f"resnet-probe: {' vs '.join(result.models)}", subtitle, sections,
                       inline_plotly)
    path = write_page(out_dir / f"{name}.html", page, inline_plotly)
    write_index(out_dir)
    return path


def write_degradation_report(part: TrainingPart, environment: Environment | dict[str, Any],
                             out_dir: Path, title: str, inline_plotly: bool = False) -> Path:
    out_dir = check_writable_dir(out_dir)
    save_parts([part], out_dir / "data", environment_table(environment))
    trained: Iterable[str] = \
        part.degradation.final["model"] if not part.degradation.final.empty else []
    with figures.consistent_colours(trained):
        sections = [render_training(part, number="1."),
                    render_why(part.why, number="2."),
                    render_environment(environment, number="3.")]
    page = render_page(title, markup("Training error of plain and residual twins by depth "
                                     "(He et al. 2016, Fig. 6). Data: <code>data/</code>"),
                       sections, inline_plotly)
    path = write_page(out_dir / "degradation.html", page, inline_plotly)
    write_index(out_dir.parent if out_dir.parent.exists() else out_dir)
    return path


def write_analysis_report(part: WhyPart, environment: Environment | dict[str, Any], out_dir: Path,
                          name: str, title: str, inline_plotly: bool = False) -> Path:
    """One analysis of trained nets (lesion, responses, landscape, paths, hessian) as its own
    page."""
    out_dir = check_writable_dir(out_dir)
    save_parts([part], out_dir / f"{name}-data", environment_table(environment))
    models = [m for table in declared_tables(part).values() if "model" in table
              for m in table["model"]]
    with figures.consistent_colours(models):
        sections = [render_why(part, number="1."),
                    render_environment(environment, number="2.")]
    page = render_page(title, markup("Trained nets analysed. Data: <code>{}-data/</code>",
                                     name), sections, inline_plotly)
    path = write_page(out_dir / f"{name}.html", page, inline_plotly)
    write_index(out_dir)
    return path


def write_zoo_report(census: ZooPart, environment: Environment | dict[str, Any], out_dir: Path,
                     inline_plotly: bool = False) -> Path:
    out_dir = check_writable_dir(out_dir)
    save_parts([census], out_dir / "zoo-data", environment_table(environment))
    zoo, widths_rows = census.zoo, census.widths
    variants = Section("variants", "1. Every variant", nav="Variants")
    variants.text("Params and MACs at each family's standard input (224 for ImageNet-style, "
                  "32 for CIFAR-style), batch 1, in every convention; the v1 stride puts the "
                  "bottleneck's stride on its 1x1 conv as the paper did, v1.5 on the 3x3 as "
                  "torchvision does.")
    variants.table(zoo, scroll=True, fold=False)
    depth = Section("depth", "2. Cost vs depth", nav="Cost vs depth").figure(
        figures.cost_vs_depth(zoo))
    design = Section("design", "3. Depth, width and cardinality against cost", nav="Design")
    design.text("Each design changes one choice at about the same depth: ResNeXt splits the "
                "bottleneck's 3x3 into groups (cardinality) at about ResNet's cost; Wide "
                "ResNets widen instead of deepening; ResNet-C/D change the stem and the "
                "projection shortcut for a few percent more MACs.")
    design.figure(figures.cost_by_design(zoo))
    columns = ["model", "design", "depth", "groups", "width_per_group", "widths", "params",
               "macs"]
    design.table(zoo.loc[zoo["shortcut"], columns].sort_values(["design", "depth"]))
    widths = Section("widths", "4. Bottleneck vs basic across widths", nav="Widths").figure(
        figures.bottleneck_widths(widths_rows))
    widths.table(widths_rows)
    sections = [variants, depth, design, widths,
                render_bottleneck(census.bottleneck, number="5."),
                render_environment(environment, number="6.")]
    page = render_page("resnet-probe: the zoo", markup("Every registered ResNet and plain twin. "
                                                       "Data: <code>zoo-data/</code>"),
                       sections, inline_plotly)
    path = write_page(out_dir / "zoo.html", page, inline_plotly)
    write_index(out_dir)
    return path


def render_environment(environment: pd.DataFrame | Environment | dict[str, Any],
                       number: str = "8.") -> Section:
    table = environment if isinstance(environment, pd.DataFrame) else \
        environment_table(environment)
    return Section("environment", f"{number} Environment", nav="Environment").table(
        table, scroll=True)


def page_title(path: Path) -> str | None:
    """A report's title as its reader saw it (the page holds it escaped), or None."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    found = re.search(r"<title>(.*?)</title>", head, flags=re.DOTALL)
    return unescape(found.group(1)) if found else None


def write_index(out_dir: Path) -> Path:
    """Links to every report under ``out_dir``, each with its title."""
    out_dir = Path(out_dir)
    pages = sorted(p for p in out_dir.rglob("*.html") if p.name != INDEX or p.parent != out_dir)
    section = Section("reports", "Reports")
    if pages:
        items = join("", (markup('<li><a href="{}">{}</a> <small>{}</small></li>',
                                 p.relative_to(out_dir).as_posix(),
                                 page_title(p) or p.stem, p.relative_to(out_dir).as_posix())
                          for p in pages))
        section.html(markup('<ul class="reports">{}</ul>', items))
    else:
        section.text(markup("No reports yet: run <code>resnet-probe compare resnet34 "
                            "plain34</code>."))
    # The index has no figures, so it loads no plotly.js at all.
    page = render_page("resnet-probe reports", f"Everything under {out_dir}", [section],
                       inline_plotly=False, with_plotly=False)
    return write_page(out_dir / INDEX, page, inline_plotly=True)


__all__ = ["compare_report_name", "compare_report_path", "save_parts", "write",
           "write_analysis_report", "write_compare_report", "write_degradation_report",
           "write_index", "write_zoo_report"]
