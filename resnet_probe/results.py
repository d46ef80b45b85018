"""Column schema, units and metric direction; rows -> tidy DataFrames; atomic save and load.

Counts carry their unit in the column name (``params``, ``macs``, ``flops``); times end in
``_ms``, rates in ``_per_s``. Every file is written to a temporary sibling and renamed into
place, so an interrupted run never leaves a half-written table behind.
"""

from __future__ import annotations

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


class Direction(StrEnum):
    LOWER = "lower is better"
    HIGHER = "higher is better"
    NEUTRAL = "neither"


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    direction: Direction


METRICS = {m.column: m for m in [
    Metric("params", "parameters", Direction.LOWER),
    Metric("trainable_params", "trainable parameters", Direction.LOWER),
    Metric("macs", "MACs, conv+linear (a)", Direction.LOWER),
    Metric("macs_with_elementwise", "MACs + elementwise (b)", Direction.LOWER),
    Metric("flops", "FLOPs = 2×MACs (c)", Direction.LOWER),
    Metric("backward_flops", "backward FLOPs (d)", Direction.LOWER),
    Metric("macs_fvcore_default", "fvcore default (conv+linear+BN+avgpool)", Direction.LOWER),
    Metric("macs_v1", "MACs with v1 stride (1x1)", Direction.LOWER),
    Metric("forward_ms", "forward ms (median)", Direction.LOWER),
    Metric("backward_ms", "backward ms (median)", Direction.LOWER),
    Metric("images_per_s", "images/s", Direction.HIGHER),
    Metric("grad_ratio_first_last", "grad-norm ratio first/last block", Direction.NEUTRAL),
    Metric("final_train_error", "final training error", Direction.LOWER),
    Metric("final_test_error", "final test error", Direction.LOWER),
]}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)


def delta_table(summary: pd.DataFrame, columns: list[str], key: str = "model") -> pd.DataFrame:
    """Baseline (first row) first, then value and Δ% against it for each column."""
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
    return out


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:  # name the target, not the hidden temporary file
        raise OSError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
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
        raise OSError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
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
    """``name.csv`` and ``name.json`` side by side, each written atomically."""
    directory = Path(directory)
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
