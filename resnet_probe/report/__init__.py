"""DataFrame -> plotly figures -> one HTML report; console tables.

Each writer saves every table as CSV and JSON in a data folder beside its page, so any figure
can be rebuilt, and keeps plotly.js in one file beside the reports unless told to inline it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from resnet_probe.report import figures
from resnet_probe.report.html import Section, esc, render_page, write_page
from resnet_probe.report.sections import (
    architecture_section,
    bottleneck_section,
    costs_section,
    degradation_section,
    environment_section,
    gradients_section,
    latency_section,
    scaled,
    summary_section,
    why_section,
)
from resnet_probe.results import (
    atomic_write_text,
    check_writable_dir,
    save_table,
    to_json_records,
)

INDEX = "index.html"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def save_tables(tables: dict[str, pd.DataFrame], directory: Path) -> None:
    """Every table as CSV and JSON; a training verdict also as ``verdict.json``, one object."""
    for name, df in tables.items():
        save_table(df, directory, name)
    if "train_verdict" in tables:
        (verdict,) = json.loads(to_json_records(tables["train_verdict"]))  # NaN -> null
        verdict["reasons"] = json.loads(verdict["reasons"])
        atomic_write_text(directory / "verdict.json", json.dumps(verdict, indent=2) + "\n")


def compare_report_name(models: list[str]) -> str:
    name = "compare-" + "-vs-".join(slug(m) for m in models)
    return name if len(name) <= 120 else name[:100] + f"-and-{len(models)}-models"


def write_compare_report(result, out_dir: Path, inline_plotly: bool = False) -> Path:
    out_dir = check_writable_dir(out_dir)
    name = compare_report_name(result.models)
    tables = result.tables
    save_tables(tables, out_dir / f"{name}-data")
    trained = tables["train_final"]["model"] if "train_final" in tables else []
    with figures.consistent_colours([*result.models, *trained]):
        sections = [
            summary_section(tables["deltas"], result.notes),
            architecture_section(tables["architecture"]),
            costs_section(tables),
            latency_section(tables, result.section_environment("latency")),
            gradients_section(tables, result.section_environment("gradients")),
            degradation_section(tables, result.section_environment("training")),
            why_section(tables, result.section_environment("training"), number="6b."),
            bottleneck_section(tables),
            environment_section(result.environment),
        ]
    subtitle = (f"{esc(' vs '.join(result.models))} — baseline {esc(result.models[0])}. "
                f"Data for every table: <code>{esc(name)}-data/</code>")
    page = render_page(f"resnet-probe: {' vs '.join(result.models)}", subtitle, sections,
                       inline_plotly)
    path = write_page(out_dir / f"{name}.html", page, inline_plotly)
    write_index(out_dir)
    return path


def write_degradation_report(tables: dict[str, pd.DataFrame], environment: dict,
                             out_dir: Path, title: str, inline_plotly: bool = False) -> Path:
    out_dir = check_writable_dir(out_dir)
    save_tables(tables, out_dir / "data")
    trained = tables["train_final"]["model"] if "train_final" in tables else []
    with figures.consistent_colours(trained):
        sections = [degradation_section(tables, environment, number="1."),
                    why_section(tables, environment, number="2."),
                    environment_section(environment, number="3.")]
    page = render_page(title, "Training error of plain and residual twins by depth "
                       "(He et al. 2016, Fig. 6). Data: <code>data/</code>", sections,
                       inline_plotly)
    path = write_page(out_dir / "degradation.html", page, inline_plotly)
    write_index(out_dir.parent if out_dir.parent.exists() else out_dir)
    return path


def write_analysis_report(tables: dict[str, pd.DataFrame], environment: dict, out_dir: Path,
                          name: str, title: str, inline_plotly: bool = False) -> Path:
    """One analysis of trained nets (lesion, responses, landscape) as its own page."""
    out_dir = check_writable_dir(out_dir)
    save_tables(tables, out_dir / f"{name}-data")
    models = [m for key in ("lesion_blocks", "responses", "landscape") if key in tables
              for m in tables[key]["model"]]
    with figures.consistent_colours(models):
        sections = [why_section(tables, environment, number="1."),
                    environment_section(environment, number="2.")]
    page = render_page(title, f"Trained nets analysed. Data: <code>{esc(name)}-data/</code>",
                       sections, inline_plotly)
    path = write_page(out_dir / f"{name}.html", page, inline_plotly)
    write_index(out_dir)
    return path


def write_zoo_report(census: dict[str, pd.DataFrame], environment: dict, out_dir: Path,
                     inline_plotly: bool = False) -> Path:
    """``census`` is what ``census.zoo_census`` returns."""
    out_dir = check_writable_dir(out_dir)
    save_tables(census, out_dir / "zoo-data")
    zoo, bottleneck_rows = census["zoo"], census["bottleneck_widths"]
    variants = Section("variants", "1. Every variant")
    variants.text("Params and MACs at each family's standard input (224 for ImageNet-style, "
                  "32 for CIFAR-style), batch 1, in every convention; macs_v1 strides the "
                  "bottleneck's 1x1 conv as the paper did, macs strides the 3x3 as torchvision "
                  "does. MACs in G (10⁹).")
    variants.table(scaled(zoo))
    depth = Section("depth", "2. Cost vs depth").figure(figures.cost_vs_depth(zoo))
    design = Section("design", "3. Depth, width and cardinality against cost")
    design.text("Each design changes one choice at about the same depth: ResNeXt splits the "
                "bottleneck's 3x3 into groups (cardinality) at about ResNet's cost; Wide "
                "ResNets widen instead of deepening; ResNet-C/D change the stem and the "
                "projection shortcut for a few percent more MACs.")
    design.figure(figures.cost_by_design(zoo))
    columns = ["model", "design", "depth", "groups", "width_per_group", "widths", "params",
               "macs"]
    design.table(zoo.loc[zoo["shortcut"], columns].sort_values(["design", "depth"]))
    widths = Section("widths", "4. Bottleneck vs basic across widths").figure(
        figures.bottleneck_widths(bottleneck_rows))
    widths.table(bottleneck_rows)
    sections = [variants, depth, design, widths,
                bottleneck_section(census, number="5."),
                environment_section(environment, number="6.")]
    page = render_page("resnet-probe: the zoo", "Every registered ResNet and plain twin. "
                       "Data: <code>zoo-data/</code>", sections, inline_plotly)
    path = write_page(out_dir / "zoo.html", page, inline_plotly)
    write_index(out_dir)
    return path


def write_index(out_dir: Path) -> Path:
    """Links to every report under ``out_dir``."""
    out_dir = Path(out_dir)
    pages = sorted(p for p in out_dir.rglob("*.html") if p.name != INDEX or p.parent != out_dir)
    section = Section("reports", "Reports")
    if pages:
        items = "".join(f'<li><a href="{esc(p.relative_to(out_dir).as_posix())}">'
                        f"{esc(p.relative_to(out_dir).as_posix())}</a></li>" for p in pages)
        section.parts.append(f'<ul class="reports">{items}</ul>')
    else:
        section.text("No reports yet: run <code>resnet-probe compare resnet34 plain34</code>.")
    # The index has no figures, so it loads no plotly.js at all.
    page = render_page("resnet-probe reports", f"Everything under {esc(out_dir)}", [section],
                       inline_plotly=False, with_plotly=False)
    return write_page(out_dir / INDEX, page, inline_plotly=True)


__all__ = ["write_analysis_report", "write_compare_report", "write_degradation_report",
           "write_index", "write_zoo_report"]
