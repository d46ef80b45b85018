"""FLOP regression checks: a committed baseline of params and MACs per model and stage.

The baseline pins convention (a) (conv + linear MACs) and parameter counts, per model and per
stage, at each model's recorded input size. Matching is exact unless ``rtol`` relaxes it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resnet_probe.measure.costs import CostResult, count_costs, stage_costs
from resnet_probe.results import atomic_write_text
from resnet_probe.zoo import UnknownModelError, get_spec, list_models

BASELINE_FORMAT = 1
BASELINE_METRICS = ("params", "macs")  # columns of results.METRICS the baseline pins


class BaselineError(ValueError):
    """The baseline file is missing, malformed or names models that cannot be built."""


@dataclass(frozen=True)
class Drift:
    model: str
    stage: str
    metric: str
    expected: int
    got: int

    @property
    def delta_pct(self) -> float:
        if self.expected == 0:
            return 0.0 if self.got == 0 else float("inf")
        return (self.got - self.expected) / self.expected * 100


def measure_baseline_entry(model: str, input_size: int | None = None,
                           counted: CostResult | None = None) -> dict[str, Any]:
    """``counted`` reuses a count already made at the same input size."""
    usable = counted is not None and counted.summary["input_size"] == (
        input_size or counted.summary["input_size"]) and counted.summary["batch_size"] == 1
    result = counted if usable else count_costs(model, input_size=input_size)
    return {
        "input_size": result.summary["input_size"],
        "params": result.summary["params"],
        "macs": result.summary["macs"],
        "stages": {row["stage"]: {"params": row["params"], "macs": row["macs"]}
                   for row in stage_costs(result)},
    }


@dataclass(frozen=True)
class BaselineUpdate:
    path: Path
    added: list[str]
    replaced: list[str]
    kept: list[str]  # entries already in the file that this update did not touch


def write_baseline(path: str | Path, models: list[str] | None = None,
                   replace: bool = False) -> BaselineUpdate:
    """Measure ``models`` (default: the whole zoo) and merge them into the baseline at
    ``path``; ``replace=True`` starts a new file instead of merging into an existing one."""
    path = Path(path)
    models = models or list_models()
    existing = {} if replace or not path.exists() else load_baseline(path)["models"]
    fresh = {name: measure_baseline_entry(name) for name in models}
    baseline = {
        "format": BASELINE_FORMAT,
        "about": "resnet-probe FLOP baseline: params and conv+linear MACs (convention a, "
                 "1 MAC = 1 multiply-accumulate) per model and stage at batch size 1.",
        "torch_version": torch.__version__,
        "models": {**existing, **fresh},
    }
    atomic_write_text(path, json.dumps(baseline, indent=2) + "\n")
    return BaselineUpdate(path, added=[n for n in fresh if n not in existing],
                          replaced=[n for n in fresh if n in existing],
                          kept=[n for n in existing if n not in fresh])


def update_baseline(path: str | Path, models: list[str] | None = None,
                    replace: bool = False) -> BaselineUpdate:
    """Like write_baseline; with no models named, an existing file's own entries are
    re-measured (the whole zoo for a new file or with ``replace``)."""
    path = Path(path)
    if models is None and path.exists() and not replace:
        models = list(load_baseline(path)["models"])
    return write_baseline(path, models, replace)


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"baseline file {str(path)!r} does not exist; create it with "
                            f"an update (resnet-probe flops --update-baseline {path})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"baseline file {str(path)!r} is not valid JSON: {error}") from None
    version = data.get("format") if isinstance(data, dict) else None
    if version != BASELINE_FORMAT:
        raise BaselineError(f"baseline file {str(path)!r} has format {version!r}; this version "
                            f"of resnet-probe reads format {BASELINE_FORMAT}; regenerate it, "
                            f"replacing the old file")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise BaselineError(f"baseline file {str(path)!r} has no \"models\" object; expected "
                            f"{{\"models\": {{name: {{params, macs, stages}}}}}}")
    for name, entry in models.items():
        needed = (*BASELINE_METRICS, "stages")
        if not isinstance(entry, dict) or not all(k in entry for k in needed):
            raise BaselineError(f"baseline entry for {name!r} in {str(path)!r} needs the keys "
                                f"params, macs and stages")
    unknown = []
    for name in models:
        try:
            get_spec(name)
        except UnknownModelError as error:
            unknown.append(str(error))
    if unknown:
        raise BaselineError(f"baseline {str(path)!r} names models that cannot be built: "
                            + "; ".join(unknown))
    return data


def check_baseline(
    path: str | Path, models: list[str] | None = None, rtol: float = 0.0,
    counted: dict[str, CostResult] | None = None,
) -> tuple[list[dict[str, Any]], list[Drift]]:
    """Compare fresh counts (or ``counted`` ones, by name) with the baseline. Returns every
    compared row, and the drifts."""
    if not math.isfinite(rtol) or rtol < 0:
        raise ValueError(f"rtol must be a finite number, zero or positive: rtol={rtol}")
    baseline = load_baseline(path)["models"]
    names = models or list(baseline)
    missing = [name for name in names if name not in baseline]
    if missing:
        raise BaselineError(f"baseline {str(path)!r} has no entry for {', '.join(missing)}; "
                            f"add it by updating the baseline")
    rows, drifts = [], []
    for name in names:
        expected = baseline[name]
        got = measure_baseline_entry(name, expected.get("input_size"),
                                     (counted or {}).get(name))
        pairs = [("model", metric, expected[metric], got[metric]) for metric in BASELINE_METRICS]
        stages = sorted(set(expected["stages"]) | set(got["stages"]))
        for stage in stages:
            for metric in BASELINE_METRICS:
                pairs.append((stage, metric, expected["stages"].get(stage, {}).get(metric, 0),
                              got["stages"].get(stage, {}).get(metric, 0)))
        for stage, metric, want, have in pairs:
            ok = abs(have - want) <= rtol * abs(want)
            drift = Drift(name, stage, metric, want, have)
            rows.append({"model": name, "stage": stage, "metric": metric, "expected": want,
                         "got": have, "delta_pct": drift.delta_pct, "ok": ok})
            if not ok:
                drifts.append(drift)
    return rows, drifts
