"""The costs part rendered: the architecture side by side, every counting convention, per-stage
and per-layer MACs, memory, and why bottleneck blocks are cheaper."""

from __future__ import annotations

import pandas as pd

from resnet_probe.jobs.parts import BottleneckPart, CostsPart
from resnet_probe.measure.architecture import ShortcutKind
from resnet_probe.measure.memory import MEMORY_METHOD
from resnet_probe.report import figures
from resnet_probe.report.html import Section, format_value, ordered_pivot


def models_of(df: pd.DataFrame) -> tuple[str, ...]:
    return tuple(dict.fromkeys(df["model"])) if "model" in df else ()


def has_bottleneck(part: CostsPart) -> bool:
    """A bottleneck net is in the report: the conventions' v1/v1.5 story applies to it."""
    architecture = part.architecture
    return "block" in architecture and bool(architecture["block"].astype(str).str.contains(
        "bottleneck").any())


def render_architecture(part: CostsPart, number: str = "2.") -> Section:
    section = Section("architecture", f"{number} Architecture side by side", nav="Architecture")
    section.text("Per stage: blocks × block type, output channels and spatial size at the "
                 "measured input, and where shortcuts and projections sit.")
    architecture = part.architecture
    cells = architecture.assign(cell=architecture.apply(_architecture_cell, axis=1))
    return section.table(ordered_pivot(cells, "stage", "cell"), names=models_of(cells),
                         caption="Each model's stages, from the stem to the head")


STEM_WORDS = {"imagenet": "7x7/2 conv + 3x3/2 max-pool",
              "deep": "three 3x3 convs (first /2) + 3x3/2 max-pool", "cifar": "3x3 conv"}
SHORTCUT_WORDS = {ShortcutKind.ZERO_PAD: "zero-pad identity (A)",
                  ShortcutKind.PROJECTION: "1x1 projection",
                  ShortcutKind.POOLED_PROJECTION: "2x2 avg-pool + 1x1 projection (D)"}


def _architecture_cell(row: pd.Series) -> str:
    if row.get("discovered") is True:  # a foreign model: what its graph showed
        if row["stage"] in ("stem", "head"):
            return f"{row['stage']}: {row['params']:,} params"
        shortcut = "residual additions" if row["shortcut"] else "none (plain twin)"
        channels = row.get("out_channels")
        size = (f", {channels:.0f} ch, {row['output_size']}"
                if channels is not None and channels == channels else "")
        return f"{row['blocks']} blocks found from the graph{size}; shortcuts: {shortcut}"
    size = f"{row['out_channels']} ch, {row['output_size']}"
    if row["stage"] == "stem":
        preact = " (no BN-ReLU: pre-activation)" if row["preact"] else ""
        return f"{STEM_WORDS[row['block']]}{preact}, {size}"
    if row["stage"] == "head":
        return f"{'BN-ReLU + ' if row['preact'] else ''}avg-pool + fc, {size}"
    block = ("pre-activation " if row["preact"] else "") + row["block"]
    if row["groups"] > 1 or row["width_per_group"] != 64:
        block += f", {row['groups']}x{row['width_per_group']}d grouped 3x3"
    return f"{row['blocks']} × {block}, {size}; {shortcut_words(row)}"


def shortcut_words(row: pd.Series) -> str:
    if not row["shortcut"]:
        return "none (plain)"
    parts = [f"{SHORTCUT_WORDS[kind]} on {_blocks(int(row[kind.column]))}"
             for kind in ShortcutKind if row.get(kind.column)]
    identities = int(row["identity_blocks"])
    if identities:
        parts.append(f"identity on {_blocks(identities)}")
    return "; ".join(parts)


def _blocks(count: int) -> str:
    return f"{count} block{'s' if count > 1 else ''}"


def render_costs(part: CostsPart, number: str = "3.") -> Section:
    section = Section("costs", f"{number} Parameters and MACs, every convention reconciled",
                      nav="Params & MACs")
    conventions = part.conventions
    models = models_of(conventions)
    section.text("Every counting convention, each named, side by side. Counted at inference "
                 "(BN in eval mode), batch size 1.")
    if has_bottleneck(part):
        # The v1/v1.5 story is about where a bottleneck block strides: it applies only here.
        section.method(
            "Why ResNet-50 is '3.8G', '4.09G', '4.11G' or '8.2G': the paper strides the 1x1 "
            "conv (v1) while torchvision strides the 3x3 (v1.5); fvcore adds batch norm; "
            "torch's FlopCounterMode counts 2 FLOPs per multiply-accumulate.",
            summary="Why one bottleneck net has four published numbers")
    pivot = conventions.pivot_table(index=["convention", "unit", "reported_by"],
                                    columns="model", values="giga", sort=False).reset_index()
    pivot = pivot[["convention", "unit", "reported_by", *models]]
    section.table(pivot, caption="Values in G (10⁹)", names=models)
    partial = conventions[conventions["partial"]].drop_duplicates("model")
    for _, row in partial.iterrows():
        section.note(f"{row['model']}: convention (b) is partial; operators with no formula: "
                     f"{row['uncounted_operators']}")
    if partial.empty:
        section.note("Every operator that ran has a formula or only moves data: no count "
                     "here is partial.", kind="finding")
    if "count_notes" in part.summary:
        for noted in part.summary[part.summary["count_notes"].fillna("") != ""].itertuples():
            section.note(f"{noted.model}: {noted.count_notes}", kind="warning")
    section.figure(figures.conventions(conventions))
    section.figure(figures.stage_macs(part.stages))
    section.table(ordered_pivot(part.stages, "stage", "macs"),
                  caption="MACs per stage (exact counts)", names=models_of(part.stages))
    section.figure(figures.layer_macs(part.layers))
    if not part.memory.empty:
        totals = part.memory[part.memory["module"] == "(model)"]
        section.table(totals.drop(columns=["module"], errors="ignore"),
                      caption="Memory, exact on shapes: parameter, buffer and gradient bytes, "
                              "activations autograd saves for backward, and the estimated "
                              "peak of one training step")
        section.method(f"Memory: {MEMORY_METHOD}", summary="How memory is counted")
    operators = part.operators
    section.table(operators.pivot_table(index=["direction", "operator", "kind"],
                                        columns="model", values="macs", sort=False
                                        ).reset_index(),
                  caption="Per operator: MACs for conv/linear; element counts for "
                          "elementwise operators (exact)", names=models_of(operators))
    return section


def render_bottleneck(part: BottleneckPart, number: str = "7.") -> Section:
    section = Section("bottleneck", f"{number} Why bottleneck blocks are cheaper",
                      nav="Bottlenecks")
    totals, rows = part.totals, part.rows
    by_template = totals.set_index("template")
    basic, bottleneck = by_template.loc["basic at d"], by_template.loc["bottleneck at 4d"]
    wide = by_template.loc["basic at 4d"]
    section.text(
        f"The paper's Fig. 5: a bottleneck block at 4d channels squeezes to d with a 1x1 conv, "
        f"does the 3x3 at d and expands back. It costs {format_value(bottleneck['macs'])} "
        f"MACs, about the same as a basic block at d ({format_value(basic['macs'])}), while "
        f"a basic block at the full 4d width costs {format_value(wide['macs'])}: "
        f"{wide['macs_vs_bottleneck']:.1f}× the bottleneck. Each number below was measured on "
        f"the real block module; the formula column shows k²·Cin/groups·Cout·H·W.")
    resnext = totals[totals["template"].str.startswith("resnext")]
    if not resnext.empty:
        row = resnext.iloc[0]
        section.text(
            f"ResNeXt (Xie et al. 2017, Table 1) spends the same budget differently: its "
            f"bottleneck doubles the inner width and splits the 3x3 into groups "
            f"({row['design']}). It has {format_value(row['weights'])} weights against the "
            f"bottleneck's {format_value(bottleneck['weights'])} and "
            f"{row['macs_vs_bottleneck']:.3f}× its MACs: more channels at about equal cost, "
            f"because a grouped 3x3 costs 1/groups of a dense one.")
    section.table(rows)
    section.table(totals)
    return section.figure(figures.bottleneck(totals))
