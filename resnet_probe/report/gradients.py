"""The gradients part rendered: norms by depth at init on the nets that are trained, the
within-stage ratios, the variance ratio, shattering."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from resnet_probe.jobs.parts import GradientsPart
from resnet_probe.measure.gradients import SHATTERING_METHOD
from resnet_probe.report import figures
from resnet_probe.report.html import Section, format_value, join, markup


def render_gradients(part: GradientsPart, number: str = "5.") -> Section:
    section = Section("gradients", f"{number} Gradient norms by depth", nav="Gradients")
    models = part.models
    reused = (" Reused from the cache of results: the same models, settings, data and "
              "versions were measured before (--fresh measures again)." if part.reused else "")
    section.text(f"At initialization, BN in train mode, on {part.setting}; input: "
                 f"{part.input_description}; seeds {list(part.seed_list)}.{reused}")
    for note in part.notes:  # a surrogate loss, a measurement that could not be taken
        section.note(note)
    section.method("‖∂L/∂s‖ is taken at each block's join, the sum of shortcut and branch before "
                   "the block's last ReLU. Only through an identity block whose branch starts at "
                   "zero (zero-initialised last BN) does it pass unchanged; with the usual init "
                   "each block adds its branch's term, so the ratio grows inside stages too. Two "
                   "models are fitted to ‖∂L/∂s‖ against depth l on each seed: exponential (a "
                   "factor r per layer) and power law (~l^-k). The trend is named by the fit whose "
                   "R² is higher on the seeds, by a t interval on the per-seed R² difference; when "
                   "that interval contains zero the two shapes are not distinguishable. "
                   "Within-stage ratios leave out what stage transitions do (option A's "
                   "zero-padding, projections).",
                   summary="How the gradients are measured and their trend named")
    section.table(models[[c for c in (
        "model", "depth", "shortcut", "grad_ratio_first_last", "grad_ratio_std",
        "max_within_stage_ratio", "exp_rate_per_layer", "exp_r2", "power_exponent", "power_r2",
        "r2_power_minus_exp", "r2_power_minus_exp_ci95_low", "r2_power_minus_exp_ci95_high",
        "gradient_trend", "first_nonfinite_forward", "first_nonfinite_gradient")
        if c in models]], caption="Per model, over the seeds: the first/last block ratio, the "
                                   "fits and the trend their rule names")
    section.note(gradient_explanation(models), kind="finding")
    if not part.stages.empty:
        section.table(part.stages.groupby(["model", "stage"], sort=False, as_index=False)
                      [["blocks", "within_stage_ratio"]].mean(),
                      caption="Within-stage ratio: join gradient at the stage's first block "
                              "over its last (mean over seeds)")
    if "preact" in models and models["preact"].fillna(False).astype(bool).any():
        section.note(preact_explanation(models, part.blocks), kind="finding")
    section.figure(figures.grad_norm_depth(part.blocks))
    section.figure(figures.activation_std_depth(part.blocks))
    if "variance_ratio" in part.blocks and part.blocks["variance_ratio"].notna().any():
        section.method("Inside a stage, each BN'd branch adds about unit variance to a stream "
                     "whose variance grows block by block, so Var F(x)/Var x falls from block "
                     "to block and each block is close to the identity at init. At each stage "
                     "transition the projection shortcut's BN resets the stream to unit "
                     "variance, so the ratio starts over in every stage (the block-output std "
                     "above shows the resets). A plain block has no stream: its output replaces "
                     "its input.", summary="Why the variance ratio starts over in every stage")
        section.figure(figures.variance_ratio_depth(part.blocks))
    if not part.shattering.empty:
        section.method(SHATTERING_METHOD, summary="How shattering is measured")
        section.figure(figures.shattering(part.shattering))
    return section


def gradient_explanation(models: pd.DataFrame) -> Markup:
    parts = []
    for _, row in models.iterrows():
        ratio = row["grad_ratio_first_last"]
        fits = (f"R² {format_value(row['exp_r2'])} exponential vs "
                f"{format_value(row['power_r2'])} power law, on the mean over seeds")
        if row["shortcut"]:
            parts.append(markup(
                "In <b>{}</b> the gradient {}: the first block sees {}× the last one's norm "
                "({}). Each block adds its identity term, dy/dx = dF/dx + I, and BN'd branches "
                "add a shrinking share to a growing stream within a stage, so the growth stays "
                "far below the plain net's compounding.", row["model"], row["gradient_trend"],
                format_value(ratio), fits))
        else:
            parts.append(markup(
                "In <b>{}</b> the gradient {}: the first block sees {}× the last block's norm "
                "({}). For reference, Yang et al. (2019) derive a rate of ≈√(π/(π−1)) ≈ 1.21 "
                "per layer for the gradient norm of wide, fully-connected BN-ReLU nets at large "
                "batch; these are convolutional nets at a small batch, outside that setting.",
                row["model"], row["gradient_trend"], format_value(ratio), fits))
    return join(" ", parts)


def preact_explanation(models: pd.DataFrame, blocks: pd.DataFrame) -> Markup:
    """What He et al. 2016b's clean identity path changes, in this run's numbers."""
    stream = blocks.groupby(["model", "block"], sort=False)["act_std"].mean()
    parts = [Markup(
        "In a pre-activation net (He et al. 2016b) nothing sits on the identity path: "
        "x<sub>l+1</sub> = x<sub>l</sub> + F(x<sub>l</sub>) with no ReLU after the add, so "
        "the gradient from every later block reaches x<sub>l</sub> unchanged, plus the "
        "branches' terms. That does not make the first/last ratio small at init: the "
        "stream is never normalized, its spread grows with every block, and the final "
        "BN divides the last block's gradient by it.")]
    for _, row in models[models["shortcut"].astype(bool)].iterrows():
        std = stream.loc[row["model"]]
        parts.append(markup(
            "<b>{}</b> ({}-activation, depth {}): ratio {} ± {} across seeds; block-output "
            "std {} at the first block, {} at the last.", row["model"],
            "pre" if row["preact"] else "post", row["depth"],
            format_value(row["grad_ratio_first_last"]), format_value(row["grad_ratio_std"]),
            format_value(std.iloc[0]), format_value(std.iloc[-1])))
    return join(" ", parts)
