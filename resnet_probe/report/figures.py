"""DataFrame -> plotly figure. Every figure has a title and axis labels with units.

Each model keeps one colour across a report: the writer renders its figures inside
``consistent_colours(models)``, and every figure coloured by model takes its colours from that
map (models it does not list, e.g. training siblings, get the next palette colours in turn).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SMOOTHING_STEPS = 10
PALETTE = px.colors.qualitative.Plotly + px.colors.qualitative.Dark24
_MODEL_COLOURS: ContextVar[dict[str, str] | None] = ContextVar("model_colours", default=None)


@contextlib.contextmanager
def consistent_colours(models: Iterable[str]) -> Iterator[dict[str, str]]:
    colours = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(dict.fromkeys(models))}
    token = _MODEL_COLOURS.set(colours)
    try:
        yield colours
    finally:
        _MODEL_COLOURS.reset(token)


def model_colours(models: Iterable[str]) -> dict[str, str]:
    """The colour of each model: from the report's map, extended in order for new models."""
    colours = _MODEL_COLOURS.get()
    if colours is None:
        colours = {}
    for model in dict.fromkeys(models):
        if model not in colours:
            colours[model] = PALETTE[len(colours) % len(PALETTE)]
    return colours


def _by_model(df: pd.DataFrame) -> dict[str, str]:
    return model_colours(df["model"]) if "model" in df else {}


def stage_macs(stage_costs: pd.DataFrame) -> go.Figure:
    df = stage_costs.assign(gmacs=stage_costs["macs"] / 1e9)
    fig = px.bar(df, x="model", y="gmacs", color="stage", barmode="stack",
                 title="MACs per stage (conv + linear, convention a)")
    return fig.update_layout(yaxis_title="GMACs", xaxis_title="model")


def conventions(conventions: pd.DataFrame) -> go.Figure:
    df = conventions.dropna(subset=["giga"]).copy()
    df["convention"] = df["convention"].str.slice(0, 48)
    fig = px.bar(df, x="convention", y="giga", color="model",
                 color_discrete_map=_by_model(df), barmode="group",
                 title="One model, six numbers: every counting convention side by side")
    return fig.update_layout(yaxis_title="G (MACs or FLOPs, see unit column)",
                             xaxis_title="counting convention")


def layer_macs(layer_costs: pd.DataFrame) -> go.Figure:
    df = layer_costs[layer_costs["macs"] > 0].assign(mmacs=lambda d: d["macs"] / 1e6)
    fig = px.bar(df, x="module", y="mmacs", color="model",
                 color_discrete_map=_by_model(df), barmode="group",
                 hover_data=["stage", "depth", "params"],
                 title="MACs per layer (conv + linear)")
    return fig.update_layout(yaxis_title="MMACs", xaxis_title="layer (input → output)")


def latency_layers(layers: pd.DataFrame, device: str) -> go.Figure:
    df = layers.copy()
    df["iqr_half"] = df["iqr_ms"] / 2
    fig = px.bar(df, x="module", y="median_ms", color="model",
                 color_discrete_map=_by_model(df), barmode="group",
                 facet_row="direction", error_y="iqr_half", hover_data=["type", "noisy"],
                 title=f"Per-layer latency on {device} (median; whiskers ±IQR/2)")
    fig.update_yaxes(title_text="ms", matches=None)
    return fig.update_layout(height=650, xaxis_title="layer (input → output)")


def latency_stages(stages: pd.DataFrame, device: str) -> go.Figure:
    """``stages``: views.rolled_up_times by stage (median per-repeat total, 95% interval)."""
    df = stages.assign(above=stages["ci95_high_ms"] - stages["median_ms"],
                       below=stages["median_ms"] - stages["ci95_low_ms"])
    fig = px.bar(df, x="stage", y="median_ms", color="model", barmode="group",
                 color_discrete_map=_by_model(df), facet_col="direction", error_y="above",
                 error_y_minus="below",
                 title=f"Time by stage on {device} (median over repeats of the stage's total; "
                 f"whiskers: 95% interval)")
    return fig.update_yaxes(title_text="ms")


def roofline(layers: pd.DataFrame, peak_gflops: float, peak_gbs: float, device: str
             ) -> go.Figure:
    df = layers[(layers["flops"] > 0) & (layers["direction"] == "forward")].copy()
    fig = px.scatter(df, x="arithmetic_intensity", y="achieved_gflops_per_s", color="model",
                     color_discrete_map=_by_model(df),
                     symbol="bound", hover_data=["module", "type", "median_ms"], log_x=True,
                     log_y=True, title=f"Roofline of forward layers on {device}")
    if len(df):
        lo = max(df["arithmetic_intensity"].min() / 2, 1e-3)
        hi = df["arithmetic_intensity"].max() * 2
        xs = np.logspace(np.log10(lo), np.log10(hi), 60)
        fig.add_trace(go.Scatter(x=xs, y=np.minimum(peak_gflops, peak_gbs * xs), mode="lines",
                                 name=f"roof: {peak_gflops:.0f} GFLOP/s, {peak_gbs:.1f} GB/s",
                                 line=dict(color="black", dash="dash")))
    return fig.update_layout(xaxis_title="arithmetic intensity (FLOP per byte moved)",
                             yaxis_title="achieved GFLOP/s")


def throughput(sweep: pd.DataFrame, device: str) -> go.Figure:
    df = sweep.dropna(subset=["images_per_s"])
    fig = px.line(df, x="batch_size", y="images_per_s", color="model",
                  color_discrete_map=_by_model(df), markers=True, log_x=True,
                  title=f"Forward throughput vs batch size on {device}")
    return fig.update_layout(xaxis_title="batch size (images)", yaxis_title="images/s")


def _mean_std(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    grouped = df.groupby(keys, as_index=False)[value].agg(["mean", "std"]).reset_index()
    grouped["std"] = grouped["std"].fillna(0.0)
    return grouped


def _band_figure(stats: pd.DataFrame, x: str, title: str, y_title: str, log_y: bool
                 ) -> go.Figure:
    fig = go.Figure()
    colours = _by_model(stats)
    for model, group in stats.groupby("model", sort=False):
        color = colours[str(model)]
        group = group.sort_values(x)
        upper = group["mean"] + group["std"]
        lower = (group["mean"] - group["std"]).clip(lower=group["mean"] * 0.05)
        fig.add_trace(go.Scatter(x=list(group[x]) + list(group[x])[::-1],
                                 y=list(upper) + list(lower)[::-1], fill="toself",
                                 fillcolor=color, opacity=0.2, line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, name=f"{model} ±std"))
        fig.add_trace(go.Scatter(x=group[x], y=group["mean"], mode="lines+markers",
                                 name=model, line=dict(color=color)))
    fig.update_layout(title=title, xaxis_title="depth (weighted layers from the input)",
                      yaxis_title=y_title)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def grad_norm_depth(blocks: pd.DataFrame) -> go.Figure:
    stats = _mean_std(blocks, ["model", "depth"], "act_grad_norm")
    return _band_figure(stats, "depth", "Gradient norm ‖∂L/∂x‖ at each block output, at init "
                        "(mean ± std over seeds)", "‖∂L/∂x‖ (log scale)", log_y=True)


def activation_std_depth(blocks: pd.DataFrame) -> go.Figure:
    stats = _mean_std(blocks, ["model", "depth"], "act_std")
    return _band_figure(stats, "depth", "Forward activation std at each block output, at init",
                        "std of block output (log scale)", log_y=True)


def variance_ratio_depth(blocks: pd.DataFrame) -> go.Figure:
    stats = _mean_std(blocks.dropna(subset=["variance_ratio"]), ["model", "depth"],
                      "variance_ratio")
    return _band_figure(stats, "depth", "Branch-to-stream variance Var F(x)/Var x per residual "
                        "block (De & Smith 2020); output/input variance for plain blocks",
                        "variance ratio (log scale)", log_y=True)


def shattering(shatter: pd.DataFrame) -> go.Figure:
    df = shatter[shatter["lag"] > 0].copy()  # lag 0 is 1 by definition
    df["block output"] = df["stage"] + " end (depth " + df["depth"].astype(str) + ")"
    fig = px.line(df, x="lag", y="correlation", color="block output", facet_col="model",
                  facet_col_wrap=2, error_y="correlation_std", markers=True, log_x=True,
                  title="Shattered gradients (Balduzzi et al. 2017): correlation of input-"
                  "gradients at grid points `lag` apart (mean ± std over seeds and "
                  "projections)")
    fig.update_yaxes(title_text="correlation", range=[-0.1, 1.05])
    return fig.update_xaxes(title_text="lag (grid points, log)")


def recipe_dynamics(dynamics: pd.DataFrame, joins: pd.DataFrame) -> go.Figure:
    """The first conv's numbers at the recorded steps of the training runs (mean over seeds):
    ||dL/dW||/||W||, the effective step lr ||dL/dW||/||W||, ||dW||/||W|| beside the curve
    momentum alone gives after one large first step, and the whole-net join ratio."""
    from plotly.subplots import make_subplots

    from resnet_probe.train.dynamics import momentum_only_curve

    first = dynamics[dynamics["depth"] == dynamics.groupby("model")["depth"].transform("min")]
    panels = [("grad_to_weight", "‖∇W‖/‖W‖, first conv"),
              ("effective_step", "effective step lr·‖∇W‖/‖W‖, first conv"),
              ("update_to_weight", "‖ΔW‖/‖W‖, first conv (dotted: momentum alone)"),
              ("grad_ratio_first_last", "join ratio ‖∂L/∂s‖ first / last block")]
    means = first.groupby(["model", "step"], as_index=False)[[p for p, _ in panels[:3]]].mean()
    if not joins.empty:
        means = means.merge(joins.groupby(["model", "step"], as_index=False)[
            "grad_ratio_first_last"].mean(), on=["model", "step"], how="left")
    fig = make_subplots(rows=2, cols=2, subplot_titles=[title for _, title in panels])
    colours = _by_model(means)
    for index, (column, _) in enumerate(panels):
        if column not in means:
            continue
        row, col = divmod(index, 2)
        for model, group in means.groupby("model", sort=False):
            fig.add_trace(go.Scatter(x=group["step"], y=group[column], mode="lines+markers",
                                     name=model, legendgroup=model, showlegend=index == 0,
                                     line=dict(color=colours[str(model)])),
                          row=row + 1, col=col + 1)
    steps = sorted(int(s) for s in means["step"].unique() if s > 0)
    if steps:
        momentum = float(dynamics["momentum"].iloc[0]) if "momentum" in dynamics else 0.9
        curve = momentum_only_curve(momentum, max(steps))
        fig.add_trace(go.Scatter(x=steps, y=[curve[s] for s in steps], mode="lines",
                                 line=dict(color="black", dash="dot"),
                                 name=f"momentum alone (μ = {momentum:g})"), row=2, col=1)
    fig.update_yaxes(type="log")
    for index, axis_title in enumerate(["‖∇W‖/‖W‖", "lr·‖∇W‖/‖W‖", "‖ΔW‖/‖W‖", "join ratio"]):
        row, col = divmod(index, 2)
        fig.update_yaxes(title_text=f"{axis_title} (log)", row=row + 1, col=col + 1)
    fig.update_xaxes(title_text="step")
    return fig.update_layout(height=620, title="The first training steps in the recipe "
                             "(mean over seeds)")


def path_lengths(paths: pd.DataFrame) -> go.Figure:
    """Veit et al. Fig. 6: the share of paths of each length, the gradient magnitude at the
    input through paths of that length, and their product."""
    df = _seed_mean(paths, ["model", "path_length"], "gradient_magnitude").merge(
        paths.drop_duplicates(["model", "path_length"])[["model", "path_length", "fraction"]],
        on=["model", "path_length"])
    df["contribution"] = df["fraction"] * df["gradient_magnitude"]
    long = df.melt(id_vars=["model", "path_length"],
                   value_vars=["fraction", "gradient_magnitude", "contribution"],
                   var_name="measure", value_name="value")
    names = {"fraction": "share of paths (binomial)",
             "gradient_magnitude": "gradient magnitude at the input",
             "contribution": "share × gradient magnitude"}
    long["measure"] = long["measure"].map(names)
    fig = px.line(long, x="path_length", y="value", color="model", facet_col="measure",
                  color_discrete_map=_by_model(long), markers=True, log_y=True,
                  title="Effective paths (Veit et al. 2016, Fig. 6)")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_yaxes(matches=None, showticklabels=True, title_text="")
    fig.update_yaxes(title_text="value (log; each panel its own unit)", col=1)
    return fig.update_xaxes(title_text="path length (branches passed through)")


def training_curves(history: pd.DataFrame, finals: pd.DataFrame, height: int | None = None
                    ) -> go.Figure:
    """``finals`` (one row per run) says which models have shortcuts; ``height`` in px (by
    default plotly's)."""
    df = history.sort_values("step").copy()
    df["smoothed"] = df.groupby(["model", "seed"])["train_error"].transform(
        lambda s: s.rolling(SMOOTHING_STEPS, min_periods=1).mean())
    df = df.groupby(["model", "step"], as_index=False)[["smoothed"]].mean()
    shortcut = finals.drop_duplicates("model").set_index("model")["shortcut"].astype(bool)
    df["kind"] = np.where(df["model"].map(shortcut), "residual", "plain")
    fig = px.line(df, x="step", y="smoothed", color="model",
                  color_discrete_map=_by_model(df), facet_col="kind",
                  category_orders={"kind": ["plain", "residual"]},
                  title=f"Training error (train-mode minibatch, {SMOOTHING_STEPS}-step mean; "
                  "plain left, residual right, same axes)")
    fig.update_yaxes(title_text="training error", range=[0, 1])
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    if height is not None:
        fig.update_layout(height=height)
    return fig.update_xaxes(title_text="step")


def eval_curves(evals: pd.DataFrame) -> go.Figure:
    """Eval-mode errors by step; with one evaluation step, bars (a line needs two)."""
    df = evals.groupby(["model", "step"], as_index=False)[["train_error_eval", "test_error"]].mean()
    long = df.melt(id_vars=["model", "step"], value_vars=["train_error_eval", "test_error"],
                   var_name="measure", value_name="error")
    if long["step"].nunique() == 1:
        long["measure"] = long["measure"].map({"train_error_eval": "training set",
                                               "test_error": "test set"})
        fig = px.bar(long, x="measure", y="error", color="model", barmode="group",
                     color_discrete_map=_by_model(long),
                     title=f"Eval-mode error at step {int(long['step'].iloc[0])}, the one "
                     f"evaluation: training set and test set")
        return fig.update_layout(xaxis_title="evaluated on", yaxis_title="error",
                                 yaxis_range=[0, 1])
    fig = px.line(long, x="step", y="error", color="model",
                  color_discrete_map=_by_model(long), line_dash="measure", markers=True,
                  title="Eval-mode error: training set (solid) and test set (dashed)")
    return fig.update_layout(xaxis_title="step", yaxis_title="error", yaxis_range=[0, 1])


def grad_ratio_training(grad_norms: pd.DataFrame) -> go.Figure:
    main = grad_norms[grad_norms["role"].isin(["main", "stem"])]
    rows = []
    for (model, seed, step), group in main.groupby(["model", "seed", "step"]):
        first = group["grad_norm"].iloc[group["depth"].argmin()]  # what idxmin labels
        last = group["grad_norm"].iloc[group["depth"].argmax()]
        rows.append({"model": model, "seed": seed, "step": step, "ratio": first / last})
    df = pd.DataFrame(rows).groupby(["model", "step"], as_index=False)[["ratio"]].mean()
    fig = px.line(df, x="step", y="ratio", color="model",
                  color_discrete_map=_by_model(df), markers=True, log_y=True,
                  title="Weight-gradient norm, first conv / last conv, during training")
    return fig.update_layout(xaxis_title="step", yaxis_title="‖∇W first‖ / ‖∇W last‖ (log)")


def bottleneck(totals: pd.DataFrame) -> go.Figure:
    df = totals.assign(mmacs=totals["macs"] / 1e6,
                       label=[f"{r:.1f}× bottleneck" for r in totals["macs_vs_bottleneck"]])
    fig = px.bar(df, x="design", y="mmacs", text="label",
                 title="Block cost at the same spatial size: MACs per block")
    return fig.update_layout(xaxis_title="block design", yaxis_title="MMACs")


def cost_vs_depth(zoo: pd.DataFrame) -> go.Figure:
    """The depth series: the original design only (other designs change width or stem)."""
    zoo = zoo[zoo["design"] == "resnet"]
    df = zoo.assign(gmacs=zoo["macs"] / 1e9,
                    kind=np.where(zoo["shortcut"], "residual", "plain"))
    fig = px.line(df.sort_values("depth"), x="depth", y="gmacs", color="family",
                  line_dash="kind", markers=True, log_x=True, log_y=True,
                  hover_data=["model", "params"],
                  title="Cost vs depth at each family's standard input")
    return fig.update_layout(xaxis_title="depth (weighted layers, log)",
                             yaxis_title="GMACs (conv+linear, log)")


def cost_by_design(zoo: pd.DataFrame) -> go.Figure:
    """Depth, width and cardinality against cost: each residual net as params vs MACs."""
    df = zoo[zoo["shortcut"]].assign(gmacs=lambda d: d["macs"] / 1e9,
                                     mparams=lambda d: d["params"] / 1e6)
    fig = px.scatter(df, x="mparams", y="gmacs", color="design", symbol="family",
                     hover_data=["model", "depth", "groups", "width_per_group", "widths"],
                     log_x=True, log_y=True,  # names on hover: clustered labels would overlap
                     title="Depth, width and cardinality against cost (residual nets)")
    return fig.update_layout(xaxis_title="parameters (M, log)",
                             yaxis_title="GMACs (conv+linear, log)")


def bottleneck_widths(rows: pd.DataFrame) -> go.Figure:
    fig = px.line(rows, x="width", y="mmacs", color="design", markers=True, log_y=True,
                  title="Basic, bottleneck and ResNeXt block cost across widths (56x56)")
    return fig.update_layout(xaxis_title="inner width d (channels)",
                             yaxis_title="MMACs per block (log)")


def _seed_mean(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean and std over seeds, as ``value`` and ``value_std``."""
    stats = df.groupby(keys, as_index=False, sort=False)[value].agg(["mean", "std"])
    return stats.reset_index().rename(columns={"mean": value, "std": f"{value}_std"}).fillna(
        {f"{value}_std": 0.0})


def lesion_blocks(rows: pd.DataFrame) -> go.Figure:
    # Each model's blocks by position from the input, so nets of different depths share
    # an axis; the hover names the block. Undeletable blocks leave a gap in the line.
    df = _seed_mean(rows, ["model", "block", "downsampling"], "error")
    df["position"] = df.groupby("model", sort=False).cumcount()
    df["block kind"] = np.where(df["downsampling"], "downsampling", "keeps shape")
    fig = px.scatter(df.dropna(subset=["error"]), x="position", y="error", error_y="error_std",
                     color="model", symbol="block kind", hover_data=["block"],
                     color_discrete_map=_by_model(df),
                     title="Error with one block deleted (mean ± std over seeds); a plain "
                     "net's shape-changing blocks cannot be deleted")
    for model, group in df.groupby("model", sort=False):
        fig.add_trace(go.Scatter(x=group["position"], y=group["error"], mode="lines",
                                 line=dict(color=_by_model(df)[str(model)], width=1),
                                 showlegend=False, hoverinfo="skip"))
    return fig.update_layout(xaxis_title="deleted block (position from the input)",
                             yaxis_title="test error", yaxis_range=[0, 1])


def lesion_count(rows: pd.DataFrame) -> go.Figure:
    df = _seed_mean(rows, ["model", "removed"], "error")
    fig = px.line(df, x="removed", y="error", error_y="error_std", color="model",
                  color_discrete_map=_by_model(df), markers=True,
                  title="Error with k random shape-preserving blocks deleted (mean over "
                  "draws, ± std over seeds)")
    return fig.update_layout(xaxis_title="blocks deleted (k)", yaxis_title="test error",
                             yaxis_range=[0, 1])


def layer_responses(rows: pd.DataFrame) -> go.Figure:
    ordered = _seed_mean(rows, ["model", "depth"], "response_std").assign(order="layer order")
    ordered["position"] = ordered["depth"]
    ranked = _seed_mean(rows, ["model", "rank"], "response_std").assign(
        order="sorted by magnitude")
    ranked["position"] = ranked["rank"]
    df = pd.concat([ordered, ranked], ignore_index=True)
    fig = px.line(df, x="position", y="response_std", error_y="response_std_std",
                  color="model", facet_col="order", color_discrete_map=_by_model(df),
                  markers=True, title="Std of each 3x3 layer's response (after BN, before the "
                  "addition or ReLU), trained nets, mean ± std over seeds (He et al. Fig. 7)")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_xaxes(matches=None, title_text="")
    fig.update_xaxes(title_text="depth (weighted layers)", col=1)
    fig.update_xaxes(title_text="rank (1 = largest)", col=2)
    return fig.update_yaxes(title_text="response std", col=1)


def landscape_slices(rows: pd.DataFrame) -> go.Figure:
    one_d = rows[rows["beta"].isna()] if "beta" in rows else rows
    df = _seed_mean(one_d, ["model", "alpha"], "loss")
    fig = px.line(df, x="alpha", y="loss", error_y="loss_std", color="model",
                  color_discrete_map=_by_model(df), markers=True, log_y=True,
                  title="Training loss along a filter-normalised random direction around the "
                  "trained weights (mean ± std over seeds; Li et al. 2018)")
    return fig.update_layout(xaxis_title="α (step along the direction)",
                             yaxis_title="cross-entropy loss (log scale)")


def landscape_surfaces(rows: pd.DataFrame) -> go.Figure:
    """The 2-D slices of each model's first seed, as contour panels."""
    df = rows[rows["beta"].notna()]
    models = list(dict.fromkeys(df["model"]))
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models)
    for index, model in enumerate(models, start=1):
        group = df[(df["model"] == model) & (df["seed"] == df[df["model"] == model]["seed"].min())]
        grid = group.pivot_table(index="beta", columns="alpha", values="loss")
        fig.add_trace(go.Contour(x=grid.columns, y=grid.index, z=np.log10(grid.to_numpy()),
                                 showscale=index == 1, colorbar=dict(title="log10 loss"),
                                 contours_coloring="lines", line_width=1.5), row=1, col=index)
    return fig.update_layout(title="2-D loss slices (first seed; log10 training loss)")
