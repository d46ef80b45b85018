"""Report sections shared by the compare, degradation and zoo reports."""

from __future__ import annotations

import json

import pandas as pd

from resnet_probe.report import figures
from resnet_probe.report.html import Section, esc, format_value
from resnet_probe.report.labels import with_bound, with_gradient_trend
from resnet_probe.results import change_direction, display_scales, measurable_deltas
from resnet_probe.views import rolled_up_times


def scaled(df: pd.DataFrame) -> pd.DataFrame:
    """Catalogued columns divided by their display scale, renamed to say so."""
    view = df.copy()
    scales = display_scales(view.columns)
    for column, (divisor, _) in scales.items():
        view[column] = view[column] / divisor
    return view.rename(columns={c: header for c, (_, header) in scales.items()})


def summary_section(deltas: pd.DataFrame, notes: list[str]) -> Section:
    section = Section("summary", "1. Summary")
    baseline = deltas["model"].iloc[0]
    section.text(f"Baseline: <b>{esc(baseline)}</b> (the first model named). Each Δ% column "
                 f"is the change against it, green where it is better and red where it is "
                 f"worse by the metric's direction (fewer parameters, MACs and milliseconds, "
                 f"more images/s, lower error). Measured quantities carry a 95% interval in "
                 f"their <i>_change</i> column (times: bootstrap over interleaved rounds; "
                 f"training: t interval over seeds); a Δ% whose interval spans zero is left "
                 f"blank and reads \"no measurable difference\". Counts are exact. MACs and "
                 f"FLOPs are in G (10⁹); the exact counts are in the data folder.")
    section.table(scaled(measurable_deltas(deltas)).dropna(axis=1, how="all"),
                  cell_class=lambda column, value: change_direction(column, value)
                  if column.endswith("_delta_pct") else None)
    for note in notes:
        section.note(esc(note))
    return section


def architecture_section(architecture: pd.DataFrame) -> Section:
    section = Section("architecture", "2. Architecture side by side")
    section.text("Per stage: blocks × block type, output channels and spatial size at the "
                 "measured input, and where shortcuts and projections sit.")
    cells = architecture.assign(cell=architecture.apply(_architecture_cell, axis=1))
    return section.table(_ordered_pivot(cells, "stage", "cell"))


STEM_WORDS = {"imagenet": "7x7/2 conv + 3x3/2 max-pool",
              "deep": "three 3x3 convs (first /2) + 3x3/2 max-pool", "cifar": "3x3 conv"}
SHORTCUT_WORDS = {"zero-pad": "zero-pad identity (A)", "projection": "1x1 projection",
                  "pooled-projection": "2x2 avg-pool + 1x1 projection (D)"}


def _architecture_cell(row: pd.Series) -> str:
    if row.get("discovered") is True:  # a foreign model: what its graph showed
        if row["stage"] in ("stem", "head"):
            return f"{row['stage']}: {row['params']:,} params"
        shortcut = "residual additions" if row["shortcut"] else "none (plain twin)"
        return (f"{row['blocks']} blocks found from the graph, {row['out_channels']:.0f} ch, "
                f"{row['output_size']}; shortcuts: {shortcut}")
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
    parts = [f"{SHORTCUT_WORDS[kind]} at block {index}" for kind, index in
             (item.split("@") for item in filter(None, str(row["shortcut_blocks"]).split(";")))]
    identities = int(row["identity_blocks"])
    if identities:
        parts.append(f"identity on {identities} block{'s' if identities > 1 else ''}")
    return "; ".join(parts)


def costs_section(tables: dict[str, pd.DataFrame]) -> Section:
    section = Section("costs", "3. Parameters and MACs, every convention reconciled")
    conventions = tables["conventions"]
    section.text(
        "Why ResNet-50 is '3.8G', '4.09G', '4.11G' or '8.2G': the paper strides the 1x1 conv "
        "(v1) while torchvision strides the 3x3 (v1.5); fvcore adds batch norm; torch's "
        "FlopCounterMode counts 2 FLOPs per multiply-accumulate. All of them are below, each "
        "named. Counted at inference (BN in eval mode), batch size 1.")
    pivot = conventions.pivot_table(index=["convention", "unit", "reported_by"],
                                    columns="model", values="giga", sort=False).reset_index()
    pivot = pivot[["convention", "unit", "reported_by",
                   *dict.fromkeys(conventions["model"])]]
    section.table(pivot, caption="Values in G (10⁹)")
    partial = conventions[conventions["partial"]].drop_duplicates("model")
    for _, row in partial.iterrows():
        section.note(f"{esc(row['model'])}: convention (b) is partial; operators with no "
                     f"formula: {esc(row['uncounted_operators'])}")
    if partial.empty:
        section.note("Every operator that ran has a formula or only moves data: no count "
                     "here is partial.", kind="finding")
    section.figure(figures.conventions(conventions))
    section.figure(figures.stage_macs(tables["stage_costs"]))
    stage_view = _ordered_pivot(tables["stage_costs"], "stage", "macs")
    section.table(stage_view, caption="MACs per stage (exact)")
    section.figure(figures.layer_macs(tables["layer_costs"]))
    operators = tables["operators"]
    section.table(operators.pivot_table(index=["direction", "operator", "kind"],
                                        columns="model", values="macs", sort=False
                                        ).reset_index(),
                  caption="Per operator: MACs for conv/linear; element counts for "
                          "elementwise operators")
    return section


def _ordered_pivot(df: pd.DataFrame, index: str, values: str) -> pd.DataFrame:
    """pivot() sorts labels; keep stages in network order and models in the order named."""
    pivot = df.pivot(index=index, columns="model", values=values)
    labels = list(dict.fromkeys(df[index]))
    if index == "stage":  # models of different depths: stem, stage1..N, head, whatever came first
        labels.sort(key=lambda s: (s == "head", s != "stem"))
    pivot = pivot.reindex(labels)
    return pivot[list(dict.fromkeys(df["model"]))].reset_index()


def latency_section(tables: dict[str, pd.DataFrame], environment: dict) -> Section:
    section = Section("latency", "4. Per-layer latency")
    if "latency_models" not in tables:
        return section.note("Latency was not measured in this run.")
    for warning in environment.get("warnings", []):
        section.note(f"Busy machine: {esc(warning)}.", kind="warning")
    device = environment.get("device", "cpu")
    device_label = (f"{device.upper()} ({environment.get('device_name')}, "
                    f"{environment.get('threads')} threads, "
                    f"{environment.get('dtype')})")
    clock = ("CUDA events, one synchronize per pass" if device == "cuda"
             else "time.perf_counter")
    section.text(
        f"Measured on this machine's <b>{esc(device_label)}</b>, torch "
        f"{esc(environment.get('torch_version'))}. Each leaf is timed between a "
        f"pre- and a post-hook ({clock}); forward and backward in separate passes; medians "
        f"over the kept repeats, warm-up discarded.")
    models = tables["latency_models"]
    overhead = models[["model", "forward_ms", "hooked_forward_ms", "hook_overhead_ratio",
                       "layer_sum_forward_ms", "layer_sum_to_total", "backward_ms",
                       "layer_sum_backward_ms", "images_per_s", "noisy_layers"]]
    section.table(overhead, caption="Overhead: un-hooked forward (torch.utils.benchmark) vs "
                                    "hooked forward, and per-layer sums vs the model total")
    if "latency_failures" in tables:
        section.table(tables["latency_failures"], caption="Runs that failed")
    layers = with_bound(tables["latency_layers"], environment["peak_gflops"],
                        environment["peak_gbytes_per_s"])
    section.figure(figures.latency_layers(layers, device_label))
    section.figure(figures.latency_stages(
        rolled_up_times(tables["latency_layers"], tables["latency_samples"], "stage"),
        device_label))
    section.figure(figures.roofline(layers, environment["peak_gflops"],
                                    environment["peak_gbytes_per_s"], device_label))
    section.text(f"Roof: {environment['peak_gflops']:.0f} GFLOP/s and "
                 f"{environment['peak_gbytes_per_s']:.1f} GB/s, "
                 f"{esc(environment['peak_source'])}. A layer left of the ridge "
                 f"is memory-bound.")
    if "latency_sweep" in tables and not tables["latency_sweep"].empty:
        section.figure(figures.throughput(tables["latency_sweep"], device_label))
    return section


def gradients_section(tables: dict[str, pd.DataFrame], environment: dict) -> Section:
    section = Section("gradients", "5. Gradient norms by depth")
    if "gradient_models" not in tables:
        return section.note("Gradients were not measured in this run.")
    models = with_gradient_trend(tables["gradient_models"])
    reused = (" Reused from the cache of results: the same models, settings, data and "
              "versions were measured before (--fresh measures again)."
              if environment.get("reused") else "")
    section.text(f"At initialization, BN in train mode, input: "
                 f"{esc(environment.get('input', ''))}; seeds "
                 f"{esc(environment.get('seeds', ''))}.{reused}")
    section.text("‖∂L/∂s‖ is taken at each block's join, the sum of shortcut and branch before "
                 "the block's last ReLU: through an identity block it passes unchanged. Two "
                 "models are fitted to it against depth l: exponential (a factor r per layer) "
                 "and power law (~l^-k); the better fit (R² of log ‖∂L/∂s‖) names the trend. "
                 "Within-stage ratios leave out what stage transitions do (option A's "
                 "zero-padding, projections).")
    section.table(models[["model", "depth", "shortcut", "grad_ratio_first_last",
                          "grad_ratio_std", "max_within_stage_ratio", "exp_rate_per_layer",
                          "exp_r2", "power_exponent", "power_r2", "gradient_trend",
                          "first_nonfinite_forward", "first_nonfinite_gradient"]])
    section.note(gradient_explanation(models), kind="finding")
    if "gradient_stages" in tables and not tables["gradient_stages"].empty:
        section.table(tables["gradient_stages"].groupby(["model", "stage"], sort=False,
                                                        as_index=False)
                      [["blocks", "within_stage_ratio"]].mean(),
                      caption="Within-stage ratio: join gradient at the stage's first block "
                              "over its last (mean over seeds)")
    if "preact" in models and models["preact"].any():
        section.note(preact_explanation(models, tables["gradient_blocks"]), kind="finding")
    section.figure(figures.grad_norm_depth(tables["gradient_blocks"]))
    section.figure(figures.activation_std_depth(tables["gradient_blocks"]))
    if "variance_ratio" in tables["gradient_blocks"]:
        section.text("Why the residual stream stays trainable: each BN'd branch adds about "
                     "unit variance to a stream whose variance grows block by block, so "
                     "Var F(x)/Var x falls with depth and each block is close to the identity "
                     "at init. A plain block has no stream: its output replaces its input.")
        section.figure(figures.variance_ratio_depth(tables["gradient_blocks"]))
    if not tables["shattering"].empty:
        section.figure(figures.shattering(tables["shattering"]))
    if "dynamics_models" in tables and not tables["dynamics_models"].empty:
        section.text("Initialization is not the whole story: the explosion fades within a few "
                     "steps. What it leaves behind is in the early weights: the first updates "
                     "inflate ‖W‖, and under BN a conv's output ignores its weights' scale, so "
                     "its effective step ‖ΔW‖/‖W‖ then collapses and the layer stops learning.")
        section.note(dynamics_finding(tables["dynamics_models"]), kind="finding")
        section.figure(figures.gradient_dynamics(tables["dynamics_models"]))
    return section


def dynamics_finding(dynamics: pd.DataFrame) -> str:
    parts = []
    for model, rows in dynamics.groupby("model", sort=False):
        mean = rows.groupby("step")[["first_layer_weight_norm",
                                     "first_layer_update_to_weight"]].mean()
        first, last = mean.index.min(), mean.index.max()
        growth = mean.loc[last, "first_layer_weight_norm"] / mean.loc[first,
                                                                       "first_layer_weight_norm"]
        parts.append(f"<b>{esc(model)}</b>: first-conv ‖W‖ ×{format_value(growth)} from step "
                     f"{first} to {last}; effective step "
                     f"{format_value(mean.loc[first, 'first_layer_update_to_weight'])} → "
                     f"{format_value(mean.loc[last, 'first_layer_update_to_weight'])}.")
    return " ".join(parts)


def gradient_explanation(models: pd.DataFrame) -> str:
    parts = []
    for _, row in models.iterrows():
        ratio = row["grad_ratio_first_last"]
        fits = (f"R² {format_value(row['exp_r2'])} exponential vs "
                f"{format_value(row['power_r2'])} power law")
        if row["shortcut"]:
            parts.append(
                f"In <b>{esc(row['model'])}</b> the gradient {esc(row['gradient_trend'])}: the "
                f"first block sees {format_value(ratio)}× the last one's norm ({fits}). Each "
                f"block adds its identity term, dy/dx = dF/dx + I, and BN'd branches add a "
                f"shrinking share to a growing stream, so the growth gathers in the first "
                f"blocks rather than compounding layer by layer.")
        else:
            parts.append(
                f"In <b>{esc(row['model'])}</b> the gradient {esc(row['gradient_trend'])}: the "
                f"first block sees {format_value(ratio)}× the last block's norm ({fits}). For "
                f"reference, Yang et al. (2019) derive a rate of ≈√(π/(π−1)) ≈ 1.21 per layer "
                f"for the gradient norm of wide, fully-connected BN-ReLU nets at large batch; "
                f"these are convolutional nets at a small batch, outside that setting.")
    return " ".join(parts)


def preact_explanation(models: pd.DataFrame, blocks: pd.DataFrame) -> str:
    """What He et al. 2016b's clean identity path changes, in this run's numbers."""
    stream = blocks.groupby(["model", "block"], sort=False)["act_std"].mean()
    parts = ["In a pre-activation net (He et al. 2016b) nothing sits on the identity path: "
             "x<sub>l+1</sub> = x<sub>l</sub> + F(x<sub>l</sub>) with no ReLU after the add, so "
             "the gradient from every later block reaches x<sub>l</sub> unchanged, plus the "
             "branches' terms. That does not make the first/last ratio small at init: the "
             "stream is never normalized, its spread grows with every block, and the final "
             "BN divides the last block's gradient by it."]
    for _, row in models[models["shortcut"]].iterrows():
        std = stream.loc[row["model"]]
        parts.append(f"<b>{esc(row['model'])}</b> ({'pre' if row['preact'] else 'post'}"
                     f"-activation, depth {row['depth']}): ratio "
                     f"{format_value(row['grad_ratio_first_last'])} ± "
                     f"{format_value(row['grad_ratio_std'])} across seeds; block-output std "
                     f"{format_value(std.iloc[0])} at the first block, "
                     f"{format_value(std.iloc[-1])} at the last.")
    return " ".join(parts)


def degradation_section(tables: dict[str, pd.DataFrame], environment: dict,
                        number: str = "6.") -> Section:
    section = Section("degradation", f"{number} Degradation: training error by depth")
    if "train_final" not in tables or tables["train_final"].empty:
        if environment.get("in_progress"):
            return section.note("Training in progress: this section appears when it "
                                "finishes (the page is rewritten; reload it).", kind="warning")
        if environment.get("interrupted"):
            return section.note("Training was interrupted before any run recorded a step; "
                                 "nothing to show.", kind="warning")
        return section.note("No training was run in this comparison; an earlier degradation "
                            "run can be shown here instead (compare --from-degradation DIR).")
    unfinished = tables["train_final"].query("status != 'finished'")
    if not unfinished.empty:
        runs = ", ".join(f"{row.model} seed {row.seed} ({row.status} after {row.steps_done} "
                         f"steps)" for row in unfinished.itertuples())
        section.note(f"Not every run finished: {esc(runs)}. Their rows and curves show the "
                     f"steps recorded before they stopped; conclusions below use them as "
                     f"they are.", kind="warning")
    cache = environment.get("cache") or {}
    if cache.get("reused"):
        section.note(f"Reused from the run cache ({esc(cache['path'])}): "
                     f"{esc(', '.join(cache['reused']))}. These runs finished earlier with the "
                     f"same model, recipe, data, seed, device and versions; --fresh retrains "
                     f"them.")
    for problem in cache.get("problems", []):
        section.note(esc(problem), kind="warning")
    if "dataset" in environment:
        section.text(f"Data: {esc(environment['dataset'])}. Recipe: "
                     f"{esc(recipe_text(environment['recipe']))}. The primary curve is the "
                     f"train-mode minibatch error; eval-mode errors are beside it.")
    finals = tables["train_final"]
    text, kind = verdict_note(tables)
    section.note(text, kind=kind)
    section.figure(figures.training_curves(tables["train_history"], tables["train_final"]))
    if not tables["train_evals"].empty:
        section.figure(figures.eval_curves(tables["train_evals"]))
    section.table(finals, caption="Final errors (train-mode error averaged over the last "
                                  "10% of steps; eval-mode errors at the last evaluation)")
    if "train_gaps" in tables and not tables["train_gaps"].empty:
        section.table(tables["train_gaps"], caption="Degradation gap: deep minus shallow "
                                                    "final training error")
    if "train_grad_norms" in tables and not tables["train_grad_norms"].empty:
        section.figure(figures.grad_ratio_training(tables["train_grad_norms"]))
    section.text("These are short runs on small data: the gap they show is slower "
                 "optimisation of the deeper plain net at this budget. Trained much longer, "
                 "a deep plain net on data this easy can still reach low training error; the "
                 "paper's Fig. 6 shows the gap persisting on CIFAR-10 over 64k iterations.")
    return section


def verdict_note(tables: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """The verdict computed in train/verdict.py, in words, and the note kind to show it as."""
    row = tables["train_verdict"].iloc[0]
    gaps = [f"{g.kind}: depth {g.deep_depth} ends at training error {g.deep_error:.3f} vs "
            f"{g.shallow_error:.3f} at depth {g.shallow_depth} (gap {g.gap_mean:+.3f}"
            + (f" ± {2 * g.gap_se:.3f}, 2 SE over {g.seeds} seeds)." if g.seeds > 1
               else ", one seed).")
            for g in tables["train_gaps"].itertuples()] if "train_gaps" in tables else []
    reasons = "; ".join(json.loads(row["reasons"]))
    rule = " ".join(row["rule"].replace("``", "").split()).replace(" * ", " • ")
    text = (" ".join(gaps) + f" <b>Verdict: {esc(row['verdict'])}</b>: {esc(reasons)}. "
            f"<small>Rule, {esc(rule)}</small>")
    return text, ("finding" if row["verdict"] != "inconclusive" else "warning")


def bottleneck_section(tables: dict[str, pd.DataFrame], number: str = "7.") -> Section:
    section = Section("bottleneck", f"{number} Why bottleneck blocks are cheaper")
    totals = tables["bottleneck_totals"]
    rows = tables["bottleneck"]
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


def recipe_text(recipe: dict) -> str:
    """A TrainConfig's fields (as stored with a run) in words."""
    milestones = ", ".join(f"{m:.0%}" for m in recipe["milestones"])
    return (f"SGD momentum {recipe['momentum']}, lr {recipe['lr']} (warm-up "
            f"{recipe['warmup_lr']} for {recipe['warmup_steps']} steps, x{recipe['gamma']} at "
            f"{milestones} of the budget), weight decay {recipe['weight_decay']}, batch "
            f"{recipe['batch_size']}, {recipe['steps']} steps"
            f"{', pad-crop-flip augmentation' if recipe['augment'] else ''}")


def environment_section(environment: dict, number: str = "8.") -> Section:
    section = Section("environment", f"{number} Environment")
    rows = pd.DataFrame([{"key": k, "value": str(v)} for k, v in environment.items()])
    return section.table(rows)


WHY_TABLES = ("lesion_blocks", "lesion_count", "responses", "landscape", "landscape_summary",
              "why_findings")


def why_section(tables: dict[str, pd.DataFrame], environment: dict, number: str = "") -> Section:
    """Why the residual nets train: lesions, layer responses and loss slices on the trained
    nets, and the papers' three claims tested plain against residual."""
    section = Section("why", f"{number} Why: lesions, layer responses and loss landscapes of "
                      f"the trained nets".strip())
    if not any(name in tables for name in WHY_TABLES):
        if environment.get("why_skipped"):
            return section.note(esc(environment["why_skipped"]), kind="warning")
        return section.note("No trained nets were analysed in this report.")
    if environment.get("why_data"):
        reused = (" Reused from the cache of analyses: the same runs, analyses and options "
                  "were analysed before (--fresh recomputes)." if environment.get("why_reused")
                  else "")
        section.text(esc(environment["why_data"] + reused))
    for skipped in environment.get("why_not_analysed", []):
        section.note(f"Not analysed: {esc(skipped)}", kind="warning")
    untrained = environment.get("why_untrained") or []
    if untrained:
        section.note(f"These nets did not train (final training error not below the verdict's "
                     f"bar): {esc(', '.join(untrained))}. Their rows describe a net stuck "
                     f"near chance, not a trained one.", kind="warning")
    findings = tables.get("why_findings")
    if findings is not None and not findings.empty:
        held = findings["outcome"].eq("holds")
        kind = "finding" if held.all() else "warning"
        lines = "; ".join(f"{row.claim} at depth {row.depth}: <b>{esc(row.outcome)}</b> "
                          f"(mean {row.mean:+.3f}, seeds {row.per_seed})"
                          for row in findings.itertuples())
        section.note(f"{lines}. <small>Rule: {esc(environment.get('why_rule', ''))}</small>",
                     kind=kind)
        section.table(findings, caption="The papers' claims, tested at this budget")
    if "lesion_blocks" in tables or "lesion_count" in tables:
        section.text("<b>Lesions</b> (Veit et al. 2016): a residual block's branch is deleted "
                     "and its shortcut kept; a plain block is replaced by the identity where "
                     "its shape allows. If the residual net behaves like an ensemble of "
                     "shallower paths, one deletion barely moves its error, except at "
                     "downsampling blocks.")
    if "lesion_blocks" in tables:
        section.figure(figures.lesion_blocks(tables["lesion_blocks"]))
        blocked = tables["lesion_blocks"][tables["lesion_blocks"]["not_deletable_because"]
                                          .notna()].drop_duplicates(["model", "block"])
        if not blocked.empty:
            section.table(blocked[["model", "block", "not_deletable_because"]],
                          caption="Blocks that cannot be deleted, and why")
    if "lesion_count" in tables:
        section.figure(figures.lesion_count(tables["lesion_count"]))
    if "responses" in tables:
        section.text("<b>Layer responses</b> (He et al. 2016, Fig. 7): residual functions "
                     "that stay close to zero give smaller responses than the plain net's "
                     "layers, which must carry the whole signal.")
        section.figure(figures.layer_responses(tables["responses"]))
    if "landscape" in tables:
        section.text("<b>Loss landscape</b> (Li et al. 2018): the training loss along "
                     "filter-normalised random directions; a steeper, more chaotic slice is "
                     "harder to optimise.")
        section.figure(figures.landscape_slices(tables["landscape"]))
        if "beta" in tables["landscape"] and tables["landscape"]["beta"].notna().any():
            section.figure(figures.landscape_surfaces(tables["landscape"]))
    if "landscape_summary" in tables:
        section.table(tables["landscape_summary"], caption="Landscape summary per net: loss "
                      "at the trained weights, mean rise at ±0.5, curvature along the slice")
    return section
