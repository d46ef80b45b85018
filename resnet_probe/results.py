"""Column schema, units and metric direction; rows -> tidy DataFrames; atomic save and load.

Counts carry their unit in the column name (``params``, ``macs``, ``flops``); times end in
``_ms``, rates in ``_per_s``. Every file is written to a temporary sibling and renamed into
place, so an interrupted run never leaves a half-written table behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from resnet_probe.contained import contained
from resnet_probe.errors import InvalidRequest


class Direction(StrEnum):
    LOWER = "lower is better"
    HIGHER = "higher is better"
    NEUTRAL = "neither"


@dataclass(frozen=True)
class Metric:
    """One column's meaning. ``scale`` divides the value for the console, under ``header``;
    pages show ``heading`` (or ``label``) with the unit, in readable units per column."""

    column: str
    label: str
    unit: str
    direction: Direction = Direction.NEUTRAL
    scale: float = 1.0
    description: str = ""
    reported_by: str = ""  # for counting conventions: who quotes numbers this way
    heading: str = ""  # a table header's words, when the label is too long for one

    @property
    def header(self) -> str:
        prefix = {1e9: "G", 1e6: "M"}.get(self.scale, "")
        return f"{self.column} ({prefix})" if prefix else self.column

    def display_heading(self, prefix: str = "") -> str:
        """"forward (ms)", "params (M)", "activations (MB)": the words and the unit shown."""
        words = self.heading or self.label
        if self.unit in COUNTED_UNITS:
            return f"{words} ({prefix})" if prefix else words
        if self.unit == "bytes":
            return f"{words} ({prefix}B)" if prefix else f"{words} (bytes)"
        return f"{words} ({self.unit})" if self.unit else words


# Units whose values are counts, shown in K, M or G as each column's size needs.
COUNTED_UNITS = ("params", "MACs", "FLOPs", "elements", "weights")
G = 1e9
# The counting conventions, in the order tables show them (measure/costs.py defines each).
CONVENTIONS = (
    Metric("macs", "(a) conv+linear MACs, stride on 3x3 (v1.5)", "MACs", Direction.LOWER, G,
           "multiply-accumulates of convolutions and linear layers",
           "torchvision docs' GFLOPS; resnet-probe's `macs`", "MACs (a)"),
    Metric("macs_v1", "(a) conv+linear MACs, stride on 1x1 (v1)", "MACs", Direction.LOWER, G,
           "convention (a) with the bottleneck's stride on the first 1x1 conv",
           "the ResNet paper's Table 1 'FLOPs'", "MACs (a), v1 stride"),
    Metric("macs_fvcore_default", "fvcore default: (a) + 2 per BN element + 1 per avg-pool "
           "input", "MACs", Direction.LOWER, G, "what fvcore's FlopCountAnalysis reports",
           "fvcore FlopCountAnalysis total", "MACs, fvcore default"),
    Metric("macs_with_elementwise", "(b) (a) + BN, ReLU, residual add, pooling (1 per "
           "element)", "MACs", Direction.LOWER, G, "convention (a) plus elementwise work",
           "resnet-probe `macs_with_elementwise`", "MACs (b), with elementwise"),
    Metric("flops", "(c) FLOPs = 2 x (a)", "FLOPs", Direction.LOWER, G,
           "a multiply and an add per MAC", "torch FlopCounterMode", "FLOPs (c)"),
    Metric("backward_flops", "(d) backward conv+linear FLOPs, measured", "FLOPs",
           Direction.LOWER, G, "gradient of input and weight, op by op",
           "torch FlopCounterMode on loss.backward()", "backward FLOPs (d)"),
)
# The summary's columns, in the order its tables show them.
SUMMARY_METRICS = (
    Metric("params", "parameters", "params", Direction.LOWER, heading="params"),
    Metric("trainable_params", "trainable parameters", "params", Direction.LOWER,
           heading="trainable params"),
    *CONVENTIONS,
    Metric("forward_ms", "forward ms (median)", "ms", Direction.LOWER, heading="forward"),
    Metric("backward_ms", "backward ms (median)", "ms", Direction.LOWER, heading="backward"),
    Metric("images_per_s", "images/s", "images/s", Direction.HIGHER, heading="throughput"),
    Metric("grad_ratio_first_last", "grad-norm ratio first/last block", "",
           heading="gradient ratio first/last block"),
    Metric("final_train_error", "final training error", "", Direction.LOWER),
    Metric("final_test_error", "final test error", "", Direction.LOWER),
)
SUMMARY_COLUMNS = [m.column for m in SUMMARY_METRICS]
# Every other column a report shows: (column, words, unit). Raw names stay in the CSV and JSON.
_COLUMN_LABELS = (
    # who and where
    ("model", "model", ""), ("baseline", "baseline", ""), ("metric", "measure", ""),
    ("seed", "seed", ""), ("seeds", "seeds", ""), ("depth", "depth", ""),
    ("net_depth", "net depth", ""), ("shortcut", "shortcut", ""), ("stage", "stage", ""),
    ("block", "block", ""), ("module", "module", ""), ("type", "type", ""),
    ("role", "role", ""), ("direction", "direction", ""), ("operator", "operator", ""),
    ("kind", "kind", ""), ("unit", "unit", ""), ("convention", "convention", ""),
    ("reported_by", "reported by", ""), ("key", "key", ""), ("value", "value", ""),
    ("status", "status", ""), ("engine", "engine", ""), ("family", "family", ""),
    ("design", "design", ""), ("groups", "groups", ""), ("width_per_group", "width per group",
                                                         ""),
    ("widths", "stage widths", ""), ("width", "inner width d", ""), ("input_size",
                                                                     "input size", "px"),
    ("preact", "pre-activation", ""), ("discovered", "found from the graph", ""),
    ("partial", "partial count", ""), ("uncounted_operators", "operators not counted", ""),
    ("count_notes", "count notes", ""), ("count_method", "count method", ""),
    ("stride_placement", "stride on", ""), ("shortcut_option", "shortcut option", ""),
    ("blocks", "blocks", ""), ("layers", "layers", ""), ("template", "block", ""),
    ("formula", "formula", ""), ("in_channels", "input channels", ""),
    ("out_channels", "output channels", ""), ("output_size", "output size", ""),
    ("downsampling", "downsampling", ""), ("not_deletable_because", "why it cannot be deleted",
                                           ""),
    ("comparison", "comparison", ""), ("claim", "claim", ""), ("outcome", "outcome", ""),
    ("evidence", "evidence", ""), ("per_seed", "per seed", ""), ("change", "change", ""),
    ("measurable", "measurable", ""), ("method", "method", ""), ("noisy", "noisy", ""),
    ("noisy_layers", "noisy layers", ""), ("bound", "bound", ""), ("chance_error",
                                                                  "chance error", ""),
    ("steps_done", "steps done", ""), ("diverged_at", "diverged at step", ""),
    ("diverged_because", "diverged because", ""), ("processes", "processes", ""),
    ("samples_per_rank", "samples per process", ""), ("from_step", "from step", ""),
    ("to_step", "to step", ""), ("step", "step", ""),
    # counts and sizes
    ("weights", "weights", "weights"), ("mmacs", "MACs", "MACs"),
    ("macs_vs_bottleneck", "MACs ÷ the bottleneck's", ""),
    ("param_bytes", "parameters", "bytes"), ("buffer_bytes", "buffers", "bytes"),
    ("grad_bytes", "gradients", "bytes"), ("activation_bytes", "saved activations", "bytes"),
    ("optimizer_bytes", "optimizer state", "bytes"),
    ("train_peak_bytes", "training step peak", "bytes"),
    ("cuda_measured_peak_bytes", "measured CUDA peak", "bytes"),
    ("batch_size", "batch size", ""), ("giga", "value", "G"),
    # times
    ("hooked_forward_ms", "hooked forward", "ms"), ("hooked_backward_ms", "hooked backward",
                                                    "ms"),
    ("hook_overhead_ratio", "hook overhead (hooked ÷ un-hooked)", ""),
    ("layer_sum_forward_ms", "sum of layers, forward", "ms"),
    ("layer_sum_backward_ms", "sum of layers, backward", "ms"),
    ("layer_sum_to_total", "sum of layers ÷ total", ""),
    ("median_ms", "median", "ms"), ("iqr_ms", "IQR", "ms"), ("min_ms", "min", "ms"),
    ("sum_of_median_ms", "sum of layer medians", "ms"), ("ms", "time", "ms"),
    ("ci95_low_ms", "95% CI low", "ms"), ("ci95_high_ms", "95% CI high", "ms"),
    ("wall_ms", "wall time", "ms"), ("busy_ms", "busy time", "ms"), ("idle_ms", "idle time",
                                                                     "ms"),
    ("kernel_ms", "kernel time", "ms"), ("dispatch_ms", "dispatch time", "ms"),
    ("kernels", "kernels", ""), ("launch_bound", "launch-bound", ""),
    ("launch_bound_fraction", "idle between kernels", "fraction"),
    ("backward_to_forward", "backward ÷ forward", ""),
    ("arithmetic_intensity", "arithmetic intensity", "FLOP/byte"),
    ("achieved_gflops_per_s", "achieved", "GFLOP/s"), ("bytes_moved", "bytes moved", "bytes"),
    ("seconds", "time", "s"), ("error", "error", ""),
    # differences
    ("baseline_value", "baseline value", ""), ("delta_pct", "Δ", "%"),
    ("ci95_low_pct", "Δ 95% CI low", "%"), ("ci95_high_pct", "Δ 95% CI high", "%"),
    ("mean", "mean", ""), ("ci95_low", "95% CI low", ""), ("ci95_high", "95% CI high", ""),
    ("spread_std", "std over seeds", ""),
    # gradients at init
    ("grad_ratio_std", "gradient ratio, std over seeds", ""),
    ("max_within_stage_ratio", "largest within-stage ratio", ""),
    ("within_stage_ratio", "within-stage ratio", ""),
    ("exp_rate_per_layer", "exponential fit: rate per layer", ""),
    ("exp_r2", "exponential fit R²", ""), ("power_exponent", "power-law fit exponent", ""),
    ("power_r2", "power-law fit R²", ""), ("r2_power_minus_exp", "R² power − exponential", ""),
    ("better_fit", "better fit", ""), ("gradient_trend", "gradient trend", ""),
    ("first_nonfinite_forward", "first non-finite forward", ""),
    ("first_nonfinite_gradient", "first non-finite gradient", ""),
    # training dynamics
    ("weight_growth", "‖W‖ growth", ""), ("grad_to_weight", "‖∇W‖/‖W‖", ""),
    ("effective_step", "effective step lr·‖∇W‖/‖W‖", ""),
    ("update_to_weight", "‖ΔW‖/‖W‖", ""), ("momentum", "momentum", ""),
    # trained nets
    ("top_eigenvalue", "largest Hessian eigenvalue", ""),
    ("min_eigenvalue", "smallest Hessian eigenvalue", ""),
    ("min_max_ratio", "|λmin/λmax|", ""), ("iterations", "Lanczos iterations", ""),
    ("images", "images", ""), ("loss", "loss", ""), ("loss_at_0", "loss at the trained weights",
                                                    ""),
    ("relative_rise", "relative loss rise", ""), ("relative_rise_std", "relative rise, std", ""),
    ("slice_curvature_ratio", "slice curvature ratio", ""),
    ("concave_fraction", "concave fraction", ""), ("directions", "directions", ""),
    ("parameters", "parameters", "params"), ("reorthogonalisation", "reorthogonalisation", ""),
    ("alpha", "α", ""), ("beta", "β", ""), ("lesioned", "lesioned", ""),
    ("removed", "blocks deleted", ""), ("k_half", "blocks deleted to halfway to chance", ""),
    ("path_length", "path length", ""), ("gradient_magnitude", "gradient magnitude", ""),
    ("fraction", "share", ""), ("effective_length", "effective path length", ""),
    ("response_std", "response std", ""), ("rank", "rank", ""),
    # training
    ("train_error", "training error", ""), ("train_loss", "training loss", ""),
    ("train_error_eval", "training error (eval mode)", ""), ("test_error", "test error", ""),
    ("final_train_loss", "final training loss", ""),
    ("final_train_error_eval", "final training error (eval mode)", ""),
    ("train_error_auc", "mean training error over the budget", ""),
    ("in_words", "in words", ""), ("weight_norm", "‖W‖", ""), ("grad_norm", "‖∇W‖", ""),
    ("layer", "layer", ""), ("loss_at_init", "loss at init", ""),
    ("growth_per_layer", "growth per layer", ""), ("lag", "lag", ""),
    ("correlation", "correlation", ""), ("samples", "samples", ""), ("points", "points", ""),
    ("bn", "BN", ""),
    # counting
    ("conv", "conv", ""), ("kernel", "kernel", ""), ("size", "spatial size", "px"),
    ("largest_output_bytes", "largest output", "bytes"),
    ("memory_batch_size", "memory batch size", ""), ("count_seconds", "count time", "s"),
    ("inputs", "inputs", ""), ("input", "input", ""),
)
METRICS = {m.column: m for m in [
    *(Metric(column, words, unit) for column, words, unit in _COLUMN_LABELS),
    *SUMMARY_METRICS,
]}
# Columns made from a catalogued one: (suffix, how its heading reads, its unit).
_DERIVED = (
    ("_delta_ci95_low", "Δ {} 95% CI low", "%"), ("_delta_ci95_high", "Δ {} 95% CI high", "%"),
    ("_delta_pct", "Δ {}", "%"), ("_ci95_low", "{} 95% CI low", None),
    ("_ci95_high", "{} 95% CI high", None), ("_change", "{}: change", ""),
    ("_measurable", "{}: measurable", ""), ("_seeds", "{}: seeds", ""),
    ("_std", "{}, std", None), ("_iqr", "{}, IQR", None),
)


def metric_for(column: str) -> tuple[Metric, str] | None:
    """The catalogue's entry for ``column`` and how a derived column reads ("Δ {}"), or None
    for a column the catalogue does not know."""
    if column in METRICS:
        return METRICS[column], "{}"
    for suffix, words, unit in _DERIVED:
        base = column.removesuffix(suffix)
        if base != column and base in METRICS:
            metric = METRICS[base]
            heading = metric.heading or metric.label
            derived = Metric(column, words.format(heading), metric.unit if unit is None else unit)
            return derived, words
    return None


def column_label(column: str, prefix: str = "") -> str:
    """A column's header on a page: its words with its unit ("Δ params (%)", "forward (ms)");
    a column the catalogue does not know reads as its words."""
    found = metric_for(column)
    if found is None:
        return column.replace("_", " ")
    return found[0].display_heading(prefix)


PREFIXES = ((1e9, "G"), (1e6, "M"), (1e4, "K"))


def readable_prefix(values: pd.Series) -> tuple[float, str]:
    """(divisor, prefix) that shows a column of counts in K, M or G by its largest value."""
    numbers = pd.to_numeric(values, errors="coerce").abs()
    largest = numbers.max() if numbers.notna().any() else 0
    for divisor, prefix in PREFIXES:
        if largest >= divisor:
            return divisor, prefix
    return 1.0, ""


def display_table(df: pd.DataFrame, names: tuple[str, ...] = ()) -> pd.DataFrame:
    """``df`` as a page shows it: each catalogued column headed by its words and unit, counts
    in K, M or G as the column's size needs; ``names`` (e.g. model names heading a pivot's
    columns) stay as they are."""
    columns: dict[int, pd.Series] = {}
    labels = []
    for position, column in enumerate(df.columns):
        values = df.iloc[:, position]
        label = column
        if isinstance(column, str) and column not in names:
            divisor, prefix = _count_scale(column, values)
            values = values / divisor if divisor != 1.0 else values
            label = column_label(column, prefix)
        columns[position] = values
        labels.append(label)
    shown = pd.DataFrame(columns, index=df.index)
    shown.columns = labels
    return shown


def _count_scale(column: str, values: pd.Series) -> tuple[float, str]:
    found = metric_for(column)
    if found is None or found[0].unit not in (*COUNTED_UNITS, "bytes") or \
            not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return 1.0, ""
    return readable_prefix(values)


def uncatalogued(columns) -> list[str]:
    """The columns the catalogue has no words for (a report shows their raw names' words)."""
    return [c for c in columns if isinstance(c, str) and metric_for(c) is None]


def display_scales(df: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """(divisor, header) for every catalogued count column the console shows scaled: in K, M
    or G as the column's largest value needs (``macs`` -> "macs (G)", a small net's
    "macs (M)"); CSV and JSON keep the exact integers."""
    scales = {}
    for column in df.columns:
        if column not in METRICS or METRICS[column].scale == 1.0 or \
                not pd.api.types.is_numeric_dtype(df[column]) or \
                pd.api.types.is_bool_dtype(df[column]):
            continue
        divisor, prefix = readable_prefix(df[column])
        scales[column] = (divisor, f"{column} ({prefix})" if prefix else column)
    return scales


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)


def table(name: str) -> Any:
    """A dataclass field holding a DataFrame saved as ``name.csv`` and ``name.json``: a part
    declares its tables this way, and ``declared_tables`` walks them."""
    return dataclasses.field(metadata={"table": name})


def declared_tables(part: Any) -> dict[str, pd.DataFrame]:
    """Every table a part (a dataclass) declares, by saved name, its nested parts' too."""
    tables: dict[str, pd.DataFrame] = {}
    for f in dataclasses.fields(part):
        value = getattr(part, f.name)
        if "table" in f.metadata:
            tables[f.metadata["table"]] = value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            tables.update(declared_tables(value))
    return tables


def rollup(df: pd.DataFrame, by: str, values: list[str], how: str = "sum",
           keys: tuple[str, ...] = ("model",)) -> pd.DataFrame:
    """Per-layer rows rolled up per ``by`` ("block" or "stage"), in network order. A layer
    outside every block (stem, head) counts as its own stage under ``by="block"``."""
    if by not in ("block", "stage"):
        raise ValueError(f"unknown roll-up {by!r}; choose block or stage")
    key = df["block"].fillna(df["stage"]) if by == "block" else df["stage"]
    present = [v for v in values if v in df]
    grouped = df.assign(**{by: key}).groupby([*keys, by], sort=False, as_index=False)
    return grouped[present].sum(min_count=1) if how == "sum" else grouped[present].mean()


def _nonzero_number(value: object) -> float | None:
    """A baseline Δ% can be taken against: a number (not a bool), neither zero nor NaN."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value \
            and not math.isnan(value):
        return float(value)
    return None


def delta_table(summary: pd.DataFrame, columns: list[str], key: str = "model",
                uncertainty: pd.DataFrame | None = None) -> pd.DataFrame:
    """Baseline (first row) first, then value and Δ% against it for each column.

    ``uncertainty`` rows (model, metric, ci95_low_pct, ci95_high_pct, measurable, change,
    unit) add, for a measured metric, its interval (in percent, or absolute for error rates:
    the row's ``unit``) and ``METRIC_change``: the difference in words, "no measurable
    difference" when the interval spans zero (``resnet_probe.stats``)."""
    baseline = summary.iloc[0]
    out = pd.DataFrame({key: summary[key]})
    for column in columns:
        if column not in summary:
            continue
        out[column] = summary[column]
        base = _nonzero_number(baseline[column])
        if base is not None:
            out[f"{column}_delta_pct"] = (summary[column] - base) / base * 100.0
        else:
            out[f"{column}_delta_pct"] = math.nan
        if uncertainty is None or uncertainty.empty:
            continue
        rows = uncertainty[uncertainty["metric"] == column].set_index("model")
        if rows.empty:
            continue
        for source, target in (("ci95_low_pct", "delta_ci95_low"),
                               ("ci95_high_pct", "delta_ci95_high"), ("measurable", "measurable"),
                               ("change", "change")):
            out[f"{column}_{target}"] = out[key].map(rows[source])
        out.loc[out.index[0], f"{column}_change"] = "baseline"
    return out


def measurable_deltas(deltas: pd.DataFrame) -> pd.DataFrame:
    """The delta table as shown: a Δ% whose interval spans zero is blanked (its ``_change``
    column says "no measurable difference"), and the interval columns are folded into it."""
    shown = deltas.copy()
    for column in [c for c in deltas.columns if c.endswith("_measurable")]:
        metric = column.removesuffix("_measurable")
        unmeasurable = shown[column].eq(False)
        shown.loc[unmeasurable, f"{metric}_delta_pct"] = math.nan
        shown = shown.drop(columns=[column, f"{metric}_delta_ci95_low",
                                    f"{metric}_delta_ci95_high"])
    return shown


def change_direction(column: str, delta_pct: float) -> str | None:
    """"better", "worse" or None (no change, no direction, or not a catalogued metric)."""
    metric = METRICS.get(column.removesuffix("_delta_pct"))
    if metric is None or metric.direction is Direction.NEUTRAL or pd.isna(delta_pct) \
            or delta_pct == 0:
        return None
    lower = delta_pct < 0
    return "better" if lower == (metric.direction is Direction.LOWER) else "worse"


def check_path_name(path: str | Path, what: str) -> Path:
    """``path`` if the file system can hold its name, else InvalidRequest naming the part that
    is too long and the limit (NAME_MAX bytes per name, PATH_MAX for the whole path; 255 and
    4096 on Linux). Checked before any work, so a long --out fails at once, not at the end."""
    path = Path(path)
    existing = next((p for p in (path.absolute(), *path.absolute().parents) if _exists(p)),
                    Path("/"))
    name_max, path_max = _limit(existing, "PC_NAME_MAX", 255), _limit(existing, "PC_PATH_MAX",
                                                                      4096)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            where = f"{what} {_shortened(str(path))}: the name" if str(path) != part \
                else f"{what} name"
            raise InvalidRequest(f"{where} {_shortened(part)} is {size} bytes long; a file or "
                                 f"folder name may be at most {name_max} bytes here")
    size = len(os.fsencode(str(path.absolute())))
    if size > path_max:
        raise InvalidRequest(f"{what} {_shortened(str(path))} is {size} bytes long as an "
                             f"absolute path; a path may be at most {path_max} bytes here")
    return path


def _shortened(text: str, keep: int = 40) -> str:
    return repr(text) if len(text) <= keep else repr(text[:keep]) + f"... ({len(text)} characters)"


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long to even ask about
        return False


def _limit(directory: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(directory, name))
    except (OSError, ValueError, AttributeError):  # no such limit on this platform
        return default


def cannot_write(path: str | Path, error: OSError) -> OSError:
    """The error for a write that failed: it names the target, not a hidden temporary file."""
    return OSError(f"cannot write {str(path)!r}: {error.strerror or error}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise cannot_write(path, error) from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise a user sharing reports
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, error) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_json_records(df: pd.DataFrame) -> str:
    """A JSON array of row objects; NaN becomes null."""
    return df.to_json(orient="records", indent=2, double_precision=15)


def save_table(df: pd.DataFrame, directory: str | Path, name: str) -> list[Path]:
    """``name.csv`` and ``name.json`` side by side, each written atomically, in a data folder
    that is no symlink out of the report's folder (``contained``)."""
    directory = Path(directory)
    contained(directory.parent, directory, "the data folder")
    return [
        atomic_write_text(directory / f"{name}.csv", df.to_csv(index=False)),
        atomic_write_text(directory / f"{name}.json", to_json_records(df)),
    ]


def load_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError("expected a JSON array of row objects")
        return pd.DataFrame.from_records(rows)
    return pd.read_csv(path)


def check_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed; a clear ValueError when it cannot hold files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output directory {str(path)!r} exists and is a file; "
                         f"choose a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as error:
        raise ValueError(f"output directory {str(path)!r} is not writable: "
                         f"{error.strerror or error}") from None
    return path
