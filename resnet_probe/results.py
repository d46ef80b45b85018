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
    """One column's meaning. ``scale`` divides the value for display, under ``header``."""

    column: str
    label: str
    unit: str
    direction: Direction = Direction.NEUTRAL
    scale: float = 1.0
    description: str = ""
    reported_by: str = ""  # for counting conventions: who quotes numbers this way

    @property
    def header(self) -> str:
        prefix = {1e9: "G", 1e6: "M"}.get(self.scale, "")
        return f"{self.column} ({prefix})" if prefix else self.column


G = 1e9
# The counting conventions, in the order tables show them (measure/costs.py defines each).
CONVENTIONS = (
    Metric("macs", "(a) conv+linear MACs, stride on 3x3 (v1.5)", "MACs", Direction.LOWER, G,
           "multiply-accumulates of convolutions and linear layers",
           "torchvision docs' GFLOPS; resnet-probe's `macs`"),
    Metric("macs_v1", "(a) conv+linear MACs, stride on 1x1 (v1)", "MACs", Direction.LOWER, G,
           "convention (a) with the bottleneck's stride on the first 1x1 conv",
           "the ResNet paper's Table 1 'FLOPs'"),
    Metric("macs_fvcore_default", "fvcore default: (a) + 2 per BN element + 1 per avg-pool "
           "input", "MACs", Direction.LOWER, G, "what fvcore's FlopCountAnalysis reports",
           "fvcore FlopCountAnalysis total"),
    Metric("macs_with_elementwise", "(b) (a) + BN, ReLU, residual add, pooling (1 per "
           "element)", "MACs", Direction.LOWER, G, "convention (a) plus elementwise work",
           "resnet-probe `macs_with_elementwise`"),
    Metric("flops", "(c) FLOPs = 2 x (a)", "FLOPs", Direction.LOWER, G,
           "a multiply and an add per MAC", "torch FlopCounterMode"),
    Metric("backward_flops", "(d) backward conv+linear FLOPs, measured", "FLOPs",
           Direction.LOWER, G, "gradient of input and weight, op by op",
           "torch FlopCounterMode on loss.backward()"),
)
METRICS = {m.column: m for m in [
    Metric("params", "parameters", "params", Direction.LOWER),
    Metric("trainable_params", "trainable parameters", "params", Direction.LOWER),
    *CONVENTIONS,
    Metric("forward_ms", "forward ms (median)", "ms", Direction.LOWER),
    Metric("backward_ms", "backward ms (median)", "ms", Direction.LOWER),
    Metric("images_per_s", "images/s", "images/s", Direction.HIGHER),
    Metric("grad_ratio_first_last", "grad-norm ratio first/last block", "ratio"),
    Metric("final_train_error", "final training error", "error", Direction.LOWER),
    Metric("final_test_error", "final test error", "error", Direction.LOWER),
]}
SUMMARY_COLUMNS = list(METRICS)


def display_scales(columns) -> dict[str, tuple[float, str]]:
    """(divisor, header) for every catalogued column shown scaled: ``macs`` -> "macs (G)"."""
    return {c: (METRICS[c].scale, METRICS[c].header) for c in columns
            if c in METRICS and METRICS[c].scale != 1.0}


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
        base = baseline[column]
        if isinstance(base, numbers.Number) and not isinstance(base, bool) and base \
                and not pd.isna(base):
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
